"""Sources and sinks: data files, the Examples layout."""

from sluice.io.examples import read_split, split_files, splits
from sluice.io.files import FileSource

__all__ = ["FileSource", "read_split", "split_files", "splits"]
