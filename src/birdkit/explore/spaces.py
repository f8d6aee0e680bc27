"""Output spaces compared side by side (the poster's next step): each encoder's embedding, and a plain baseline
(the mean log-mel spectrogram of the window), on the very same windows.

Every space goes through one rule before it is scored, so no space wins by its size or scale: each dimension
standardised, then PCA to ``COMPARE_DIMS`` (fit on the compared windows, no labels). On those vectors: k-means
purity and AMI (L2-normalised, as every k-means in explore) against the folder species (train windows) and
against the surrogate's (BirdNET's) pseudo-labels (every window it hears a call in), and a linear probe
(logistic regression) whose accuracy is measured on recordings it never saw (folds grouped by file), so a space
that only recognises recordings gets no credit.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GroupKFold
from sklearn.preprocessing import StandardScaler
from threadpoolctl import threadpool_limits

from birdkit.audio import CHUNK_SECONDS, load_chunks
from birdkit.explore import clusters as cl
from birdkit.ssl.mel import log_mel

# the mean log-mel; named "pca" as every space is reduced by PCA (the name tests and old reports use)
BASELINE = "mel-pca"
COMPARE_DIMS = 32
PROBE_FOLDS = 5
MIN_CLASS = 2  # a label needs this many windows to be probed


def mel_baseline(frames: list[pd.DataFrame], roots: list[Path]) -> np.ndarray:
    """Mean log-mel over time (64 bands) of each row's 5 s window: rows of all ``frames`` in order (``roots``:
    each frame's split folder, where its ``file`` column is relative to)."""
    parts = []
    for frame, root in zip(frames, roots, strict=True):
        feats = np.zeros((len(frame), 64), np.float32)
        start = frame["start_s"].to_numpy()
        for file, rows in frame.groupby("file", sort=False).indices.items():
            chunks = load_chunks(root / str(file), 32_000).chunks
            idx = np.minimum((start[rows] // CHUNK_SECONDS).astype(int), len(chunks) - 1)
            feats[rows] = log_mel(chunks[idx]).mean(axis=2)
        parts.append(feats)
    return np.concatenate(parts)


def reduce(x: np.ndarray, dims: int = COMPARE_DIMS, seed: int = 0) -> np.ndarray:
    """The rule every space passes before scoring: standardise each dimension, PCA to ``dims``."""
    z = StandardScaler().fit_transform(np.asarray(x, dtype=np.float64))
    return PCA(n_components=min(dims, *z.shape), random_state=seed).fit_transform(z).astype(np.float32)


def probe(x: np.ndarray, labels: np.ndarray, groups: np.ndarray, seed: int = 0) -> dict:
    """Linear probe accuracy on held-out recordings (GroupKFold by file) over labels with >= MIN_CLASS windows."""
    y = np.asarray(labels, dtype=object)
    ok = np.array([isinstance(v, str) for v in y])
    vals, counts = np.unique(y[ok].astype(str), return_counts=True)
    keep = ok & np.isin(y.astype(str), vals[counts >= MIN_CLASS])
    x, y, g = x[keep], y[keep].astype(str), np.asarray(groups)[keep]
    folds = min(PROBE_FOLDS, len(np.unique(g)))
    if folds < 2 or len(np.unique(y)) < 2:
        return {"windows": int(len(y)), "labels": int(len(np.unique(y))), "accuracy": float("nan")}
    correct = 0
    with threadpool_limits(1), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for tr, te in GroupKFold(n_splits=folds).split(x, y, g):
            sc = StandardScaler().fit(x[tr])
            clf = LogisticRegression(max_iter=300, C=1.0, random_state=seed).fit(sc.transform(x[tr]), y[tr])
            correct += int((clf.predict(sc.transform(x[te])) == y[te]).sum())
    majority = float(pd.Series(y).value_counts().iloc[0] / len(y))
    return {
        "windows": int(len(y)),
        "labels": int(len(np.unique(y))),
        "accuracy": correct / len(y),
        "majority": majority,
    }


def compare(
    spaces: dict[str, np.ndarray],
    folder: np.ndarray,
    pseudo: np.ndarray,
    files: np.ndarray,
    k: int,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per (space, labels): k-means(k) purity, random purity, AMI, and the linear probe's accuracy, all
    on each space after :func:`reduce`."""
    rows = []
    for name, full in spaces.items():
        x = reduce(full, COMPARE_DIMS, seed)
        c = cl.kmeans(x, k, len(x), seed).assignments
        for target, lab in (("folder species", folder), ("BirdNET pseudo-labels", pseudo)):
            s = cl.score(lab, c, seed)
            if s["windows"] < 10:
                continue
            p = probe(x, lab, files, seed)
            rows.append(
                {
                    "space": name,
                    "dims": full.shape[1],
                    "labels vs": target,
                    "windows": s["windows"],
                    "classes": s["labels"],
                    "k": k,
                    "purity": s["purity"],
                    "random purity": s["random_purity"],
                    "AMI": s["ami"],
                    "probe accuracy": p["accuracy"],
                    "probe majority": p.get("majority", float("nan")),
                }
            )
    return pd.DataFrame(rows)
