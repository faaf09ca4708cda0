"""write_behind: Parquet writing overlapped with scanning must keep order and surface errors."""

import pytest

from sluice.engine.local import write_behind


def test_every_item_is_written_in_order():
    out: list[int] = []
    write_behind(iter(range(1000)), out.append)
    assert out == list(range(1000))


def test_a_failing_write_stops_the_producer_and_raises_in_the_caller():
    produced: list[int] = []

    def items():
        for i in range(1000):
            produced.append(i)
            yield i

    def write(i: int) -> None:
        if i == 3:
            raise ValueError("disk full")

    with pytest.raises(ValueError, match="disk full"):
        write_behind(items(), write)
    assert len(produced) < 1000  # bounded look-ahead: the producer stopped early


def test_a_failing_producer_raises_after_the_writer_is_joined():
    written: list[int] = []

    def items():
        yield 1
        raise KeyError("bad batch")

    with pytest.raises(KeyError):
        write_behind(items(), written.append)
    assert written == [1]
