"""The Palmer Penguins data set as a CSV file: 344 rows, 8 columns, with missing values.

Columns: ``species``, ``island``, ``bill_length_mm``, ``bill_depth_mm``,
``flipper_length_mm``, ``body_mass_g``, ``sex``, ``year``. Missing values are written as
empty fields, which DuckDB and pandas read as NULL / NaN without options (pyarrow.csv
needs ``ConvertOptions(strings_can_be_null=True)`` for the empty ``sex`` values; its
numeric columns are fine). We avoid the upstream "NA" marker: DuckDB would then infer
the numeric columns as VARCHAR.

Example::

    >>> from examples.penguins import data
    >>> path = data.write("/tmp/penguins")        # '/tmp/penguins/penguins.csv'
"""

from __future__ import annotations

import argparse
import os
import uuid

COLUMNS: tuple[str, ...] = (
    "species", "island", "bill_length_mm", "bill_depth_mm",
    "flipper_length_mm", "body_mass_g", "sex", "year",
)
FILE_NAME = "penguins.csv"


def write(out_dir: str) -> str:
    """Write the raw Palmer Penguins data to ``out_dir/penguins.csv`` and return its path.

    The file is written under a temporary name and then renamed, so a reader never sees
    half of it. Integer measurements stay integers ("181", not "181.0") even where the
    column has missing values.

    >>> import pandas as pd
    >>> len(pd.read_csv(write("/tmp/penguins")))
    344
    """
    from palmerpenguins import load_penguins  # imported here: an optional dependency

    df = load_penguins()[list(COLUMNS)]
    # pandas holds these as float because of NaN; nullable Int64 keeps the raw integers.
    df = df.astype({"flipper_length_mm": "Int64", "body_mass_g": "Int64", "year": "int64"})
    os.makedirs(out_dir, exist_ok=True)
    path = os.path.join(out_dir, FILE_NAME)
    tmp = os.path.join(out_dir, f".{FILE_NAME}.{uuid.uuid4().hex}.tmp")
    try:
        df.to_csv(tmp, index=False, na_rep="")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def main(argv: list[str] | None = None) -> None:
    """CLI: ``python -m examples.penguins.data --out DIR``."""
    ap = argparse.ArgumentParser(description="Write the Palmer Penguins data as CSV.")
    ap.add_argument("--out", required=True)
    print(write(ap.parse_args(argv).out))


if __name__ == "__main__":
    main()
