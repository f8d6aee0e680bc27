"""Embedding stores read for exploration: one `Dataset` per (encoder, split), with the labels every section uses.

Species predictions (equation (1)) come from each store's logits; a window's *label* for maps and cluster scores is
its folder species for train clips and otherwise its pseudo-label (the most likely of the predicted species), so
soundscapes, which have no folder, are scored against what the surrogate hears.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from birdkit import store
from birdkit.competition import SPLITS
from birdkit.explore.errors import ExploreError
from birdkit.store import StoreMeta, labels

TRAIN_SPLIT = "train_audio"


@dataclass
class Dataset:
    """One store: a split embedded by one encoder, rows aligned with `embeddings` and `logits`."""

    encoder: str
    split: str
    frame: pd.DataFrame
    embeddings: np.ndarray
    logits: np.ndarray
    species: list[str]
    root: Path
    level: str = "window"  # or "recording" after `by_recording`

    @property
    def is_train(self) -> bool:
        return self.split == TRAIN_SPLIT

    def __len__(self) -> int:
        return len(self.frame)

    def predicted(self, threshold: float) -> np.ndarray:
        """Equation (1) on this store's logits, bool [n, S]."""
        return labels.predicted(self.logits, threshold)

    def has_logits(self) -> bool:
        """False for an encoder whose store carries no usable surrogate logits (all -inf)."""
        return bool(np.isfinite(self.logits).any())


def load_datasets(paths: list[str | Path]) -> list[Dataset]:
    """Read stores, in encoder order of first appearance then split order (train first).

    Stores must share one species order, since tables compare them column by column; the same encoder and split
    given twice is an error rather than a silent double count.
    """
    if not paths:
        raise ExploreError("no embedding store given; pass one or more folders written by `birdkit embed`")
    out: list[Dataset] = []
    seen: dict[tuple[str, str], Path] = {}
    describes: dict[str, dict] = {}
    for p in paths:
        e = store.load(p)
        name = _distinct_name(e.meta, describes)
        split = _split(e)
        if (name, split) in seen:
            raise ExploreError(
                f"{p}: a second {name} store of {split} (the first is {seen[name, split]}); give each once"
            )
        seen[name, split] = Path(p)
        if out and e.species != out[0].species:
            raise ExploreError(
                f"{p}: its species list differs from {out[0].root}'s; explore stores of one competition together"
            )
        out.append(Dataset(name, split, e.frame, e.embeddings, e.logits, e.species, Path(p)))
    enc_order = list(dict.fromkeys(d.encoder for d in out))
    split_rank = {s: i for i, s in enumerate(SPLITS)}
    return sorted(
        out, key=lambda d: (enc_order.index(d.encoder), split_rank.get(d.split, len(SPLITS)), d.split)
    )


def _distinct_name(meta: StoreMeta, describes: dict[str, dict]) -> str:
    """The encoder's name; two differently configured runs of one encoder get `name#2` and are compared."""
    name, i = meta.encoder_name, 2
    while name in describes and describes[name] != meta.encoder:
        name, i = f"{meta.encoder_name}#{i}", i + 1
    describes[name] = meta.encoder
    return name


def _split(e: store.Embeddings) -> str:
    if e.meta.split:
        return e.meta.split
    return str(e.frame["split"].iloc[0]) if len(e.frame) else "unknown"


def encoders(datasets: list[Dataset]) -> list[str]:
    return list(dict.fromkeys(d.encoder for d in datasets))


def pseudo_labels(logits: np.ndarray, y_hat: np.ndarray, species: list[str]) -> np.ndarray:
    """The most likely predicted species of each window, None where nothing is predicted (object [n])."""
    masked = np.where(y_hat, np.nan_to_num(logits, neginf=-1e30), -np.inf)
    best = np.argmax(masked, axis=1)
    sp = np.asarray(species, dtype=object)
    return np.where(y_hat.any(axis=1), sp[best], None)


def by_recording(ds: Dataset) -> Dataset:
    """One row per file, as the paper's Figure 5: mean of the embeddings, max of the logits."""
    codes, uniques = pd.factorize(ds.frame["file"], sort=True)
    n = len(uniques)
    counts = np.bincount(codes, minlength=n).astype(np.float32)
    emb = np.zeros((n, ds.embeddings.shape[1]), dtype=np.float64)
    np.add.at(emb, codes, ds.embeddings)
    emb = (emb / counts[:, None]).astype(np.float32)
    logits = np.full((n, ds.logits.shape[1]), -np.inf, dtype=np.float32)
    np.maximum.at(logits, codes, ds.logits)
    g = ds.frame.groupby(codes, sort=True)
    frame = g.first().reset_index(drop=True)
    frame["start_s"] = g["start_s"].min().to_numpy()
    frame["end_s"] = g["end_s"].max().to_numpy()
    frame["row_id"] = frame["file"]
    return replace(ds, frame=frame, embeddings=emb, logits=logits, level="recording")


def label_source(datasets: list[Dataset]) -> list[Dataset]:
    """The stores whose logits label every section: the first encoder that has logits (the surrogate)."""
    for enc in encoders(datasets):
        group = [d for d in datasets if d.encoder == enc]
        if any(d.has_logits() for d in group):
            return group
    return []


def _key(frame: pd.DataFrame) -> pd.Index:
    return pd.MultiIndex.from_arrays([frame["file"].astype(str), frame["start_s"].astype(np.float64)])


def labels_and_calls(ds: Dataset, source: list[Dataset], threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row: folder species or pseudo-label (None: no call), and whether the surrogate hears a call.

    A store without logits (e.g. a general audio encoder) borrows the surrogate's predictions for the same
    windows, matched on file and start, as the paper labels EnCodec windows with the Bird Vocalization model.
    """
    src = next((s for s in source if s.split == ds.split), None)
    if ds.has_logits() or src is None:
        y_hat = ds.predicted(threshold)
        pseudo = pseudo_labels(ds.logits, y_hat, ds.species)
    else:
        if ds.level == "recording" and src.level != "recording":
            src = by_recording(src)
        idx = _key(src.frame).get_indexer(_key(ds.frame))
        y_src = src.predicted(threshold)
        pseudo_src = pseudo_labels(src.logits, y_src, src.species)
        y_hat = np.where((idx >= 0)[:, None], y_src[np.maximum(idx, 0)], False)
        pseudo = np.where(idx >= 0, pseudo_src[np.maximum(idx, 0)], None)
    folder = ds.frame["primary_label"].to_numpy(dtype=object)
    has_folder = np.array([isinstance(v, str) and v != "" for v in folder])
    return np.where(has_folder, folder, pseudo), labels.has_call(y_hat)
