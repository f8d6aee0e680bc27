"""The files a run scores, and what comes back for each: rows and probabilities, or the reason there are none."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from birdkit.competition import Competition
from birdkit.errors import OptionError


@dataclass(frozen=True)
class FileJob:
    index: int
    path: str
    size: int

    @property
    def stem(self) -> str:
        return Path(self.path).stem


@dataclass
class FileResult:
    job: FileJob
    row_ids: list[str] = field(default_factory=list)
    probs: np.ndarray | None = None  # [rows, species] float64; NaN where no model predicts the species
    error: str | None = None
    duration_s: float = 0.0
    times: dict = field(default_factory=dict)
    setup_wall: float | None = None  # a worker's first result carries how long its interpreters took to build


def file_jobs(comp: Competition, split: str, limit: int | None) -> list[FileJob]:
    """The first ``limit`` files of ``split`` (all with None; a negative limit is refused, never wrapped)."""
    if limit is not None and limit < 0:
        raise OptionError(f"--limit {limit}: give 1 or more files (or leave it out for all)")
    files = comp.audio_files(split)
    if limit is not None:
        files = files[:limit]
    return [FileJob(i, str(p), p.stat().st_size) for i, p in enumerate(files)]


def same_stems(jobs: list[FileJob]) -> dict[str, list[str]]:
    """Files whose names differ only in folder or extension (``a.mp3``, ``a.wav``): their row ids would repeat."""
    by: dict[str, list[str]] = {}
    for j in jobs:
        by.setdefault(j.stem, []).append(j.path)
    return {k: v for k, v in by.items() if len(v) > 1}
