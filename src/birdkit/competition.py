"""The BirdCLEF folder layout: metadata, taxonomy, sample submission and the species list.

``Competition.species`` is the one place species order comes from: the columns of ``sample_submission.csv``
when it exists (that is what Kaggle scores), else the ``train_audio`` folder names, sorted.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import pandas as pd

from birdkit.audio import AUDIO_SUFFIXES
from birdkit.errors import BirdkitError

SPLITS = ("train_audio", "unlabeled_soundscapes", "test_soundscapes")


class CompetitionError(BirdkitError):
    """A competition folder that lacks something; the message names the path and the fix."""


@dataclass
class Competition:
    root: Path
    _cache: dict = field(default_factory=dict, repr=False)

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        if not self.root.is_dir():
            raise CompetitionError(
                f"{self.root}: not a folder. Give a BirdCLEF competition folder "
                "(train_audio/, train_metadata.csv, sample_submission.csv, ...), or run `birdkit demo` "
                "to generate one."
            )

    def path(self, name: str) -> Path:
        return self.root / name

    def require(self, name: str) -> Path:
        p = self.path(name)
        if not p.exists():
            raise CompetitionError(f"{p}: missing. A BirdCLEF competition folder has it at the top level.")
        return p

    @cached_property
    def species(self) -> list[str]:
        sub = self.path("sample_submission.csv")
        if sub.exists():
            return _submission_species(sub)
        train = self.path("train_audio")
        if train.is_dir():
            return sorted(d.name for d in train.iterdir() if d.is_dir())
        raise CompetitionError(
            f"{self.root}: no sample_submission.csv and no train_audio/ to take the species list from"
        )

    @cached_property
    def taxonomy(self) -> pd.DataFrame:
        """eBird taxonomy rows for the competition species (SPECIES_CODE, PRIMARY_COM_NAME, SCI_NAME)."""
        p = self.require("eBird_Taxonomy_v2021.csv")
        df = pd.read_csv(p)
        missing = {"SPECIES_CODE", "PRIMARY_COM_NAME", "SCI_NAME"} - set(df.columns)
        if missing:
            raise CompetitionError(f"{p}: missing columns {sorted(missing)}")
        return df

    @cached_property
    def metadata(self) -> pd.DataFrame:
        """train_metadata.csv with secondary_labels parsed to lists."""
        p = self.require("train_metadata.csv")
        df = pd.read_csv(p)
        if "secondary_labels" in df.columns:
            df["secondary_labels"] = df["secondary_labels"].map(_parse_list)
        return df

    def audio_files(self, split: str) -> list[Path]:
        """Audio files of a split, sorted by relative path so every run sees the same order."""
        if split not in SPLITS:
            raise CompetitionError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
        d = self.path(split)
        if not d.is_dir():
            raise CompetitionError(f"{d}: missing. Expected the competition's {split}/ folder.")
        return sorted((p for p in d.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES), key=lambda p: str(p))

    def relative(self, path: Path, split: str) -> str:
        """A file's name inside its split (``<code>/<id>.ogg`` for train), stored instead of local paths."""
        return path.relative_to(self.path(split)).as_posix()

    def folder_species(self, rel: str) -> str | None:
        """The species folder of a train_audio file, None elsewhere."""
        parts = rel.split("/")
        return parts[0] if len(parts) > 1 else None

    @cached_property
    def secondary_labels(self) -> dict[str, list[str]]:
        """train_audio relative filename -> secondary labels, empty when there is no metadata."""
        if not self.path("train_metadata.csv").exists():
            return {}
        md = self.metadata
        if "secondary_labels" not in md.columns:
            return {}
        return dict(zip(md["filename"], md["secondary_labels"], strict=True))

    def test_labels(self) -> pd.DataFrame:
        """Ground truth ``row_id, labels`` (space-separated codes) where a folder has it."""
        p = self.require("test_labels_5s.csv")
        df = pd.read_csv(p, dtype={"labels": str}, keep_default_na=False)
        return df


def _submission_species(path: Path) -> list[str]:
    """The species columns of sample_submission.csv, read from its header as written (pandas would rename a
    repeated column to ``acafly.1`` and invent a species)."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            header = next(csv.reader(f), [])
    except (OSError, UnicodeDecodeError) as exc:
        raise CompetitionError(f"{path}: cannot be read ({exc}); download the competition again") from None
    cols = [c.strip() for c in header]
    fix = "download the competition again (`birdkit kaggle download`) or restore the file"
    if not cols or cols[0] != "row_id":
        found = f"found {cols[0]!r}" if cols else "the file is empty"
        raise CompetitionError(f"{path}: the first column must be row_id, {found}; {fix}")
    species = cols[1:]
    if not species:
        raise CompetitionError(f"{path}: no species columns after row_id; {fix}")
    repeated = sorted({c for c in species if species.count(c) > 1})
    if repeated:
        raise CompetitionError(f"{path}: species columns repeated: {', '.join(repeated)}; {fix}")
    if "" in species:
        raise CompetitionError(f"{path}: a species column has no name; {fix}")
    return species


def _parse_list(v: object) -> list[str]:
    if isinstance(v, list):
        return v
    if not isinstance(v, str) or not v.strip() or v.strip() == "[]":
        return []
    inner = v.strip().strip("[]")
    return [s.strip().strip("'\"") for s in inner.split(",") if s.strip().strip("'\"")]
