"""Helpers to run one test suite over every metadata backend (SQLite, PostgreSQL).

``SLUICE_TEST_POSTGRES_URL`` holds zero or more SQLAlchemy URLs (comma
separated) of scratch PostgreSQL databases; the store tests then run on each
of them as well as on a SQLite file. The tables of a scratch database are
dropped before each test.

Example (a pytest fixture)::

    @pytest.fixture(params=backend_urls(), ids=backend_id)
    def store(request, tmp_path):
        s = fresh_store(request.param, tmp_path)
        yield s
        s.close()
"""

from __future__ import annotations

import os
from pathlib import Path

from sluice.metadata.db import create_engine
from sluice.metadata.schema import metadata
from sluice.metadata.store import MetadataStore

POSTGRES_ENV = "SLUICE_TEST_POSTGRES_URL"
SQLITE = "sqlite"


def backend_urls() -> list[str]:
    """``"sqlite"`` (a fresh file per test) plus the PostgreSQL URLs from the environment."""
    extra = [u.strip() for u in os.environ.get(POSTGRES_ENV, "").split(",") if u.strip()]
    return [SQLITE, *extra]


def backend_id(url: str) -> str:
    """A short test id: ``sqlite`` or the URL's backend name."""
    return url if url == SQLITE else url.split(":", 1)[0].split("+", 1)[0]


def store_url(url: str, tmp_path: Path) -> str:
    """The URL a test (and its worker processes) should open: a file under ``tmp_path`` for SQLite."""
    return str(tmp_path / "metadata.db") if url == SQLITE else url


def fresh_store(url: str, tmp_path: Path) -> MetadataStore:
    """An empty store on ``url`` (``"sqlite"``: a new file under ``tmp_path``)."""
    target = store_url(url, tmp_path)
    if url != SQLITE:
        engine = create_engine(target)
        metadata.drop_all(engine)  # scratch database: start from nothing
        engine.dispose()
    return MetadataStore.open(target)
