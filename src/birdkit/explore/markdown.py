"""Tiny Markdown writers (pandas' to_markdown needs `tabulate`, which the kit does not ship)."""

from __future__ import annotations

import math

import pandas as pd


def fmt(v: object, digits: int = 3) -> str:
    """A table cell: floats rounded, NaN/None blank, pipes escaped."""
    if v is None or v is pd.NA:
        return ""
    if isinstance(v, float):
        if math.isnan(v):
            return ""
        return f"{v:.{digits}f}"
    return str(v).replace("|", "\\|")


def table(df: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table; numeric columns right-aligned."""
    if df.empty:
        return "_(empty)_\n"
    cols = [str(c) for c in df.columns]
    align = ["---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "| " + " | ".join(align) + " |"]
    for row in df.itertuples(index=False):
        lines.append("| " + " | ".join(fmt(v, digits) for v in row) + " |")
    return "\n".join(lines) + "\n"


def image(path: str, alt: str) -> str:
    return f"![{alt}]({path})\n"
