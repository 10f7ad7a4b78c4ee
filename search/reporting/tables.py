"""CSV tables the benchmarks write and read back (reference sets, scores): read with the
file named in every error, since they are long-lived files a user may truncate or swap."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pandas as pd

__all__ = ["read_table"]


def read_table(path: Path, columns: Iterable[str], what: str) -> pd.DataFrame:
    """``path`` as a DataFrame holding at least ``columns``; a truncated, binary, empty or
    foreign file is a ``ValueError`` that names it as not being a ``what``."""
    try:
        rows = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"{path}: not a readable {what} ({reason})") from None
    missing = set(columns) - set(rows.columns)
    if missing:
        raise ValueError(f"{path}: not a {what} (it lacks {', '.join(sorted(missing))})")
    return rows
