"""Residual heads and labelled validation windows: what lets a trained head only add to its encoder.

A residual head's output is a correction added to the encoder's own logits for each species (the store's
``logits``, which inference recomputes from the same encoder: :func:`birdkit.heads.model.base_logits`). It
starts at zero, i.e. exactly passthrough, and :func:`birdkit.heads.fit.fit` keeps the start unless an epoch
beats it on validation. Validation that means something is labelled soundscapes (a `birdkit mix` set, embedded
like any split), never the surrogate's pseudo-labels on held-out clips.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from birdkit import metrics
from birdkit.errors import OptionError
from birdkit.heads import model as heads
from birdkit.heads.card import TrainConfig
from birdkit.store import Embeddings, StoreError, load


def has_base(emb: Embeddings) -> bool:
    index = emb.meta.logits_index
    return index is not None and any(int(i) >= 0 for i in index)


def resolve_residual(emb: Embeddings, config: TrainConfig) -> bool:
    """``auto``: residual where the store has its encoder's logits for some species and no other start was
    asked for (an explicit ``--init`` keeps the plain head it names)."""
    if config.residual == "off" or (config.residual == "auto" and config.init != "auto"):
        return False
    if config.residual == "on" and config.init == "birdnet":
        raise OptionError(
            "--residual on with --init birdnet would count BirdNET's classifier twice; pick one"
        )
    if not has_base(emb):
        if config.residual == "on":
            raise OptionError(
                f"{emb.root}: --residual on needs a store with its encoder's logits mapped to the species "
                "(BirdNET); use --residual off"
            )
        return False
    return True


def residual_spec(spec: dict, emb: Embeddings) -> dict:
    return {**spec, "base_index": [int(i) for i in emb.meta.logits_index or []]}


def zero_state(spec: dict, seed: int) -> dict:
    torch.manual_seed(seed)
    return heads.zero_last_layer(heads.build_head(spec))


def store_base(emb: Embeddings) -> np.ndarray:
    """The store's encoder logits as a residual base: 0 where the encoder lacks the species."""
    lg = np.asarray(emb.logits, dtype=np.float32)
    return np.where(np.isfinite(lg) & (lg > -1e30), lg, 0.0).astype(np.float32)


def check_compatible(other: Embeddings, emb: Embeddings, option: str) -> None:
    if other.embeddings.shape[1] != emb.embeddings.shape[1] or other.species != emb.species:
        raise StoreError(
            f"{other.root}: {other.embeddings.shape[1]}-d embeddings of {len(other.species)} species, but "
            f"{emb.root} has {emb.embeddings.shape[1]}-d of {len(emb.species)}; give a {option} embedded "
            "with the same encoder and competition"
        )


def labelled_windows(
    store: str | Path | Embeddings, truth: pd.DataFrame, emb: Embeddings
) -> tuple[Embeddings, np.ndarray, np.ndarray]:
    """A labelled soundscape store's rows that have ground truth: (store, rows, labels [n, S])."""
    v = store if isinstance(store, Embeddings) else load(store)
    check_compatible(v, emb, "--validation-store")
    labels = dict(zip(truth["row_id"].astype(str), truth["labels"].fillna("").astype(str), strict=True))
    rows = np.flatnonzero(v.frame["row_id"].astype(str).isin(labels).to_numpy())
    if len(rows) == 0:
        raise StoreError(f"{v.root}: none of its rows has a label in the validation truth; embed that set")
    y = metrics.labels_matrix(
        pd.Series([labels[r] for r in v.frame["row_id"].astype(str).iloc[rows]]), emb.species
    )
    return v, rows, y
