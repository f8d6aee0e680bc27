"""Scores: the competition metric and the secondary ones. The inference side calls the same functions.

The competition metric is macro ROC-AUC over the species columns that have at least one positive
(BirdCLEF 2024's rule; columns with no positive have no defined AUC and are skipped).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from birdkit.errors import BirdkitError


def scored_columns(y_true: np.ndarray) -> np.ndarray:
    """Indices of species with at least one positive."""
    return np.flatnonzero(np.asarray(y_true).sum(axis=0) > 0)


def competition_score(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Macro ROC-AUC over the columns that have a positive; NaN when none has."""
    y_true = np.asarray(y_true)
    cols = scored_columns(y_true)
    if len(cols) == 0:
        return float("nan")
    return float(roc_auc_score(y_true[:, cols], np.asarray(y_score)[:, cols], average="macro"))


def fast_competition_score(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """``competition_score`` by the rank formula, for monitoring every epoch; equal to it up to rounding.

    scikit-learn loops over columns with an argsort each (about 6 s for 43,000 windows x 182 species on 2 cores),
    which would dominate a 20-epoch fit. Here each column's negatives are sorted at once (``np.sort`` is SIMD)
    and each positive counts the negatives below it, ties as one half: the Mann-Whitney form of ROC-AUC.
    Reported figures still come from ``competition_score``.
    """
    y = np.asarray(y_true) > 0
    s = np.asarray(y_score)
    if not np.issubdtype(s.dtype, np.floating):
        s = s.astype(np.float64)
    cols = scored_columns(y)
    if len(cols) == 0:
        return float("nan")
    n = y.shape[0]
    yt = np.ascontiguousarray(y[:, cols].T)
    st = np.ascontiguousarray(s[:, cols].T)
    # Positives become NaN, which np.sort puts last: each row's first n_neg entries are its sorted negatives.
    neg_sorted = np.sort(np.where(yt, np.nan, st), axis=1)
    aucs = []
    for k in range(len(cols)):
        pos = st[k, yt[k]]
        n_pos = len(pos)
        n_neg = n - n_pos
        if n_neg == 0:
            raise ValueError("only one class present in a scored column; ROC-AUC is undefined there")
        neg = neg_sorted[k, :n_neg]
        lo = np.searchsorted(neg, pos, side="left")
        hi = np.searchsorted(neg, pos, side="right")
        aucs.append((lo.sum() + 0.5 * (hi - lo).sum()) / (n_pos * n_neg))
    return float(np.mean(aucs))


def fast_macro_f1(y_true: np.ndarray, y_prob: np.ndarray, threshold: float = 0.5) -> float:
    """``macro_f1`` from column sums, for monitoring every epoch; equal to it (F1 of a column with no
    prediction and no positive never occurs, as only columns with a positive count)."""
    y = np.asarray(y_true) > 0
    cols = scored_columns(y)
    if len(cols) == 0:
        return float("nan")
    y = y[:, cols]
    pred = np.asarray(y_prob)[:, cols] > threshold
    tp = (y & pred).sum(axis=0)
    fp = (~y & pred).sum(axis=0)
    fn = (y & ~pred).sum(axis=0)
    return float(np.mean(2 * tp / (2 * tp + fp + fn)))


def macro_f1(y_true: np.ndarray, y_prob: np.ndarray, threshold: float = 0.5) -> float:
    """Macro F1 at a probability threshold, over the columns that have a positive."""
    cols = scored_columns(y_true)
    if len(cols) == 0:
        return float("nan")
    pred = (np.asarray(y_prob)[:, cols] > threshold).astype(int)
    return float(f1_score(np.asarray(y_true)[:, cols], pred, average="macro", zero_division=0))


def class_map(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Class-wise mean average precision over the columns that have a positive."""
    cols = scored_columns(y_true)
    if len(cols) == 0:
        return float("nan")
    return float(
        average_precision_score(np.asarray(y_true)[:, cols], np.asarray(y_score)[:, cols], average="macro")
    )


def per_species(
    y_true: np.ndarray, y_score: np.ndarray, species: list[str], threshold: float = 0.5
) -> pd.DataFrame:
    """One row per species: positives, AUC, AP, F1 (NaN where a species has no positive)."""
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score)
    rows = []
    for j, s in enumerate(species):
        t, p = y_true[:, j], y_score[:, j]
        pos = int(t.sum())
        ok = 0 < pos < len(t)
        rows.append(
            {
                "species": s,
                "positives": pos,
                "roc_auc": float(roc_auc_score(t, p)) if ok else np.nan,
                "average_precision": float(average_precision_score(t, p)) if pos else np.nan,
                "f1": float(f1_score(t, (p > threshold).astype(int), zero_division=0)) if pos else np.nan,
            }
        )
    return pd.DataFrame(rows)


def labels_matrix(labels: pd.Series, species: list[str]) -> np.ndarray:
    """Space-separated label strings (test_labels_5s.csv) -> 0/1 matrix in ``species`` order."""
    pos = {s: j for j, s in enumerate(species)}
    y = np.zeros((len(labels), len(species)), dtype=np.int8)
    for i, v in enumerate(labels.fillna("")):
        for code in str(v).split():
            if code in pos:
                y[i, pos[code]] = 1
    return y


class ScoreError(BirdkitError, ValueError):
    """A submission and a ground truth that cannot be scored together; the message says what differs."""


def align(submission: pd.DataFrame, truth: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """The ground truth's rows of a submission: (0/1 labels, scores, species), in the truth's row order.

    Every truth row must be in the submission exactly once (Kaggle fails a submission that lacks one); rows the
    truth does not have are ignored, as Kaggle ignores them."""
    if "row_id" not in submission.columns or "row_id" not in truth.columns:
        raise ScoreError("both the submission and the ground truth need a row_id column")
    if "labels" not in truth.columns:
        raise ScoreError("the ground truth needs a labels column (space-separated species codes)")
    species = [c for c in submission.columns if c != "row_id"]
    if not species:
        raise ScoreError("the submission has no species columns after row_id")
    sub = submission.assign(row_id=submission["row_id"].astype(str))
    dup = sub.loc[sub["row_id"].duplicated(), "row_id"]
    if len(dup):
        raise ScoreError(f"the submission repeats {dup.nunique()} row ids, e.g. {dup.iloc[0]}")
    sub = sub.set_index("row_id")
    ids = truth["row_id"].astype(str)
    missing = ids[~ids.isin(sub.index)]
    if len(missing):
        raise ScoreError(
            f"the submission lacks rows the ground truth has: {len(missing)} of {len(ids)}, "
            f"e.g. {missing.head(3).tolist()}"
        )
    values = sub.loc[ids, species].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
    if not np.isfinite(values).all():
        raise ScoreError("the submission has empty, non-numeric or infinite values in the scored rows")
    return labels_matrix(truth["labels"].reset_index(drop=True), species), values, species


def score_submission(submission: pd.DataFrame, truth: pd.DataFrame) -> float:
    """Competition score of a submission frame against ``row_id, labels`` ground truth."""
    y, scores, _ = align(submission, truth)
    return competition_score(y, scores)
