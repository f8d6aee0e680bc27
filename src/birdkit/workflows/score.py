"""`birdkit score`: a submission file against ground truth, with the metric functions training reports.

The truth is ``test_labels_5s.csv`` of a competition folder (``row_id, labels``), or any file of that shape. The
scores are those of :mod:`birdkit.metrics`: the competition metric (macro ROC-AUC over species with a positive),
macro-F1 at a threshold, class-wise mAP, and one row per species.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from birdkit import metrics
from birdkit.competition import Competition
from birdkit.errors import BirdkitError, OptionError

TRUTH_FILE = "test_labels_5s.csv"


class ScoreInputError(BirdkitError):
    """A submission or truth file that cannot be read; the message names it and the fix."""


@dataclass
class ScoreReport:
    submission: Path
    truth: Path
    rows: int  # truth rows scored
    extra_rows: int  # submission rows the truth does not have (ignored, as Kaggle ignores them)
    scored_species: int  # species with a positive in the truth
    unknown_labels: list[str]  # truth labels that are not submission columns (not scored)
    competition: float
    macro_f1: float
    cmap: float
    per_species: pd.DataFrame
    threshold: float

    def summary(self) -> str:
        lines = [
            f"{self.submission}: {self.rows} rows scored against {self.truth}, {self.scored_species} species with "
            "a positive",
            f"  competition metric (macro ROC-AUC): {self.competition:.4f}",
            f"  macro-F1 at {self.threshold:g}: {self.macro_f1:.4f}",
            f"  cmAP: {self.cmap:.4f}",
        ]
        if self.extra_rows:
            lines.append(f"  {self.extra_rows} submission rows are not in the truth (ignored)")
        if self.unknown_labels:
            lines.append(
                f"  {len(self.unknown_labels)} truth labels are not submission columns (not scored): "
                + " ".join(self.unknown_labels[:10])
            )
        return "\n".join(lines)

    def species_table(self) -> str:
        t = self.per_species.dropna(subset=["average_precision"]).sort_values("roc_auc")
        return t.to_string(index=False, float_format=lambda v: f"{v:.3f}")


def truth_path(data_dir: str | Path | None, truth: str | Path | None) -> Path:
    """``--truth`` if given, else the competition's test_labels_5s.csv."""
    if truth is not None:
        p = Path(truth)
        if not p.is_file():
            raise OptionError(f"--truth {p}: no such file; give a CSV with row_id and labels columns")
        return p
    if data_dir is None:
        raise OptionError("give --data-dir (its test_labels_5s.csv is the truth) or --truth FILE")
    p = Competition(data_dir).path(TRUTH_FILE)
    if not p.is_file():
        raise OptionError(
            f"{p}: missing, so there is nothing to score against; give --truth FILE (row_id, labels)"
        )
    return p


def read_csv(path: Path, what: str, **kw) -> pd.DataFrame:
    """A CSV, or an error naming it."""
    if not path.is_file():
        raise ScoreInputError(f"{path}: no such {what} file; give the path of one")
    try:
        return pd.read_csv(path, **kw)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError) as exc:
        raise ScoreInputError(f"{path}: not a readable CSV {what} ({exc}); write it again") from None


def score_file(
    submission: str | Path,
    data_dir: str | Path | None = None,
    truth: str | Path | None = None,
    threshold: float = 0.5,
) -> ScoreReport:
    """Score ``submission`` against the truth; with ``data_dir``, its columns must be the competition's."""
    sub_path, t_path = Path(submission), truth_path(data_dir, truth)
    sub = read_csv(sub_path, "submission", dtype={"row_id": str})
    gt = read_csv(t_path, "truth", dtype={"row_id": str, "labels": str}, keep_default_na=False)
    if data_dir is not None and list(sub.columns[1:]) != list(Competition(data_dir).species):
        raise ScoreInputError(
            f"{sub_path}: its species columns are not sample_submission.csv's of {data_dir} (in that order); "
            "score it against the competition it was made for"
        )
    try:
        y, scores, species = metrics.align(sub, gt)
    except metrics.ScoreError as exc:
        raise ScoreInputError(f"{sub_path} against {t_path}: {exc}") from None
    known = set(species)
    unknown = sorted({c for v in gt["labels"] for c in str(v).split()} - known)
    return ScoreReport(
        submission=sub_path,
        truth=t_path,
        rows=len(y),
        extra_rows=int(len(sub) - len(y)),
        scored_species=int(len(metrics.scored_columns(y))),
        unknown_labels=unknown,
        competition=metrics.competition_score(y, scores),
        macro_f1=metrics.macro_f1(y, scores, threshold),
        cmap=metrics.class_map(y, scores),
        per_species=metrics.per_species(y, scores, species, threshold),
        threshold=threshold,
    )


def labels_exist(data_dir: str | Path, split: str) -> bool:
    """Whether ``infer`` can score what it wrote: the test split of a folder with its labels."""
    return split == "test_soundscapes" and (Path(data_dir) / TRUTH_FILE).is_file()


__all__ = ["ScoreInputError", "ScoreReport", "labels_exist", "score_file", "truth_path"]
