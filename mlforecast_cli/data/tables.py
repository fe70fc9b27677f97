"""Read a data file (CSV, optionally compressed, or Parquet) into a DataFrame."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import DataError, one_line

__all__ = ["read_table"]

_CSV_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.zip", ".csv.xz", ".tsv")
_PARQUET_SUFFIXES = (".parquet", ".pq")


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (optionally compressed) or Parquet file into a DataFrame.

    The format comes from the suffix; an unknown suffix is sniffed (Parquet magic bytes,
    else text as CSV). Raises :class:`DataError` when the file is missing, empty,
    unreadable or neither CSV nor Parquet.
    """
    p = Path(path)
    if not p.exists():
        raise DataError(
            f"data file not found: {p} (working directory {Path.cwd()}); check the path"
        )
    if p.is_dir():
        raise DataError(f"{p} is a folder, not a data file; give a .csv or .parquet file")
    if p.stat().st_size == 0:
        raise DataError(
            f"data file {p} is empty; give a CSV or Parquet file with a header and rows"
        )
    name = p.name.lower()
    if name.endswith(_PARQUET_SUFFIXES):
        kind = "parquet"
    elif name.endswith(_CSV_SUFFIXES):
        kind = "csv"
    else:
        kind = _sniff(p)
    try:
        if kind == "parquet":
            frame = pd.read_parquet(p)
        else:
            frame = pd.read_csv(p, sep="\t" if name.endswith(".tsv") else ",")
    except ImportError as exc:
        raise DataError(
            f"cannot read Parquet file {p}: {one_line(exc)}; install pyarrow (pip install "
            "pyarrow) or convert it to CSV"
        ) from exc
    except UnicodeDecodeError as exc:
        raise DataError(
            f"cannot read {p} as CSV: it is not text (UTF-8); give a CSV or Parquet file"
        ) from exc
    except pd.errors.EmptyDataError as exc:
        raise DataError(
            f"data file {p} has no columns; give a CSV or Parquet file with a header and rows"
        ) from exc
    except Exception as exc:  # parser errors of pandas/pyarrow: report, never a traceback
        what = one_line(exc)
        raise DataError(
            f"cannot read {p} as {kind.upper() if kind == 'csv' else 'Parquet'}: {what}; give a "
            "valid CSV or Parquet file"
        ) from exc
    if frame.shape[1] == 0 or frame.shape[0] == 0:
        raise DataError(
            f"data file {p} has no rows; give a file with a header and at least one row per time "
            "point"
        )
    if (
        kind == "csv"
        and frame.shape[1] == 1
        and "," not in str(frame.columns[0])
        and _looks_binary(p)
    ):
        raise DataError(
            f"{p} is not a CSV or Parquet file (binary content); give a .csv or .parquet file"
        )
    return frame


def _looks_binary(p: Path) -> bool:
    import gzip

    opener = gzip.open if p.name.lower().endswith(".gz") else open
    try:
        with opener(p, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return True
    return b"\x00" in head


def _sniff(p: Path) -> str:
    with open(p, "rb") as fh:
        head = fh.read(4096)
    if head.startswith(b"PAR1"):
        return "parquet"
    if b"\x00" in head or head.startswith(b"\x1f\x8b"):
        raise DataError(
            f"{p} is not a CSV or Parquet file (binary content); give a .csv or .parquet file"
        )
    try:
        head.decode("utf-8")
    except UnicodeDecodeError:
        # a multi-byte character may be cut at the end of the sample
        try:
            head[:-4].decode("utf-8")
        except UnicodeDecodeError:
            raise DataError(
                f"{p} is not a CSV or Parquet file (not UTF-8 text); give a .csv or .parquet file"
            ) from None
    return "csv"
