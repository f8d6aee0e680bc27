"""Where the report's sections put their files and numbers, and the small formatting they share."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from birdkit.io import atomic_write_bytes


@dataclass
class ReportOutput:
    """Where the sections put their files and numbers."""

    out: Path
    figures: list[Path] = field(default_factory=list)
    tables: list[Path] = field(default_factory=list)
    summary: dict = field(default_factory=dict)

    def save_table(self, df: pd.DataFrame, name: str) -> Path:
        path = self.out / name
        if name.endswith(".parquet"):
            atomic_write_bytes(path, _parquet_bytes(df))
        else:
            atomic_write_bytes(path, df.to_csv(index=False).encode())
        self.tables.append(path)
        return path


def _parquet_bytes(df: pd.DataFrame) -> bytes:
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    return buf.getvalue()


def pct(v: float) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
