"""Fixtures shared by the unit tests."""

from __future__ import annotations

import pytest

from sluice.metadata.testing import backend_id, backend_urls, fresh_store


@pytest.fixture(params=backend_urls(), ids=backend_id)
def store(request, tmp_path):
    """A fresh MetadataStore on SQLite, and on each PostgreSQL URL in SLUICE_TEST_POSTGRES_URL."""
    s = fresh_store(request.param, tmp_path)
    yield s
    s.close()
