"""argparse types that refuse values no run can use, with a message that names the fix (argparse adds the
option's name): a count that must be positive, a number that must be finite and positive."""

from __future__ import annotations

import argparse
import math


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number; give {low} or more") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"{value}: give {low} or more")
    return value


def positive_int(text: str) -> int:
    """An integer >= 1 (files, workers, threads, batch sizes, epochs)."""
    return _int_at_least(text, 1)


def non_negative_int(text: str) -> int:
    """An integer >= 0 (0 meaning "all" or "none", as the option's help says)."""
    return _int_at_least(text, 0)


def positive_float(text: str) -> float:
    """A finite number > 0 (minutes, seconds)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number; give a positive number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text}: give a finite number greater than 0")
    return value


def out_folder(path: str | None, flag: str = "--out") -> None:
    """Refuse an output folder that is an existing file, before any work is done."""
    from pathlib import Path

    from birdkit.errors import OptionError

    if path and Path(path).exists() and not Path(path).is_dir():
        raise OptionError(f"{flag} {path}: is a file; give a folder (it is created)")


def probability(text: str) -> float:
    """A number strictly between 0 and 1 (thresholds)."""
    value = positive_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"{text}: give a number between 0 and 1")
    return value
