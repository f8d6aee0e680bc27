"""What a training row contributes beyond its label: its loss weights (weak negatives), its sampling group
(class-balanced sampling), and soft pseudo-labels for unlabelled soundscape rows (self-training).

Weak negatives (perch-hoplite, OpenSoundscape): a training clip is annotated with its folder species (and maybe
secondary labels); that the recordist named no other species does not say those are absent. So in a clip's
row, a 0 for any species other than its folder species counts with weight ``w`` in the loss; the folder
species' own cell (1 where the surrogate hears a call, 0 where it does not: equation 4) and every cell of a
soundscape row keep weight 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit

from birdkit.errors import OptionError
from birdkit.heads.card import TrainConfig
from birdkit.heads.residual import check_compatible, store_base
from birdkit.store import Embeddings

SOUNDSCAPE_GROUP = "(soundscape)"


def folder_species(frame: pd.DataFrame) -> list[str | None]:
    """Each row's folder (primary) species, None for soundscape rows."""
    col = frame["primary_label"] if "primary_label" in frame else pd.Series([None] * len(frame))
    return [None if p is None or (isinstance(p, float) and np.isnan(p)) else str(p) for p in col]


def weak_negative_weights(y: np.ndarray, frame: pd.DataFrame, species: list[str], w: float) -> np.ndarray:
    """float32 [n, S] loss weights: ``w`` on a clip's 0 cells outside its folder species' column, else 1."""
    y = np.asarray(y)
    out = np.ones(y.shape, dtype=np.float32)
    if w == 1.0:
        return out
    primary = folder_species(frame)
    clip = np.array([p is not None for p in primary], dtype=bool)
    pos = {s: j for j, s in enumerate(species)}
    own = np.zeros(y.shape, dtype=bool)
    for i, p in enumerate(primary):
        if p in pos:
            own[i, pos[p]] = True
    weak = clip[:, None] & (y <= 0) & ~own
    out[weak] = w
    return out


def sample_groups(frame: pd.DataFrame) -> np.ndarray:
    """Each row's group for class-balanced sampling: its folder species; soundscape rows form one group."""
    return np.array([p if p is not None else SOUNDSCAPE_GROUP for p in folder_species(frame)], dtype=object)


def soft_targets(logits: np.ndarray, power: float) -> np.ndarray:
    """float32 [n, S] soft pseudo-labels σ(logits) ** power (BirdCLEF 2025's power transform: power > 1 keeps
    confident calls and pushes doubtful ones toward 0). A species the encoder lacks (logit -inf or NaN) gets 0."""
    p = expit(np.nan_to_num(np.asarray(logits, dtype=np.float64), nan=-np.inf, posinf=np.inf, neginf=-np.inf))
    return (p**power).astype(np.float32)


@dataclass
class TrainingRows:
    """What the fit trains on: the kept clips' rows, then any soundscape rows with their soft targets."""

    x: np.ndarray
    y: np.ndarray  # float32 targets in [0, 1]
    base: np.ndarray  # the encoder's logits (a residual head's base)
    weight: np.ndarray | None  # per-cell loss weights (weak negatives), None: all 1
    groups: np.ndarray  # class-balanced sampling groups


def training_rows(
    emb: Embeddings,
    y: np.ndarray,
    mask: np.ndarray,
    config: TrainConfig,
    soundscapes: tuple[Embeddings, np.ndarray] | None = None,
) -> TrainingRows:
    frame = emb.frame.loc[mask]
    weight = None
    if config.weak_negatives < 1.0:
        weight = weak_negative_weights(y[mask], frame, emb.species, config.weak_negatives)
    rows = TrainingRows(
        emb.embeddings[mask], y[mask].astype(np.float32), store_base(emb)[mask], weight, sample_groups(frame)
    )
    if soundscapes is None:
        return rows
    s_emb, s_y = soundscapes
    check_compatible(s_emb, emb, "--soundscapes")
    s_y = np.asarray(s_y, dtype=np.float32)
    if s_y.shape != (len(s_emb), len(emb.species)) or not ((s_y >= 0) & (s_y <= 1)).all():
        raise OptionError(
            f"{s_emb.root}: soundscape targets must be [{len(s_emb)}, {len(emb.species)}] in [0, 1], "
            f"got {s_y.shape}"
        )
    m = len(s_emb)
    return TrainingRows(
        np.concatenate([rows.x, s_emb.embeddings]),
        np.concatenate([rows.y, s_y]),
        np.concatenate([rows.base, store_base(s_emb)]),
        None if weight is None else np.concatenate([weight, np.ones_like(s_y)]),
        np.concatenate([rows.groups, np.full(m, SOUNDSCAPE_GROUP, dtype=object)]),
    )


def describe_soft(soundscapes: tuple[Embeddings, np.ndarray]) -> dict:
    s_emb, s_y = soundscapes
    return {
        "store": Path(s_emb.root).name,
        "windows": len(s_emb),
        "mean_target": round(float(np.mean(s_y)), 6) if len(s_y) else 0.0,
    }
