"""Train a head on an embedding store: pseudo-labels, a recording-level split, Adam, early stopping, a card.

``train_head`` is what `birdkit train`, `birdkit sweep` and the demo call; it labels and splits the store, then
hands the arrays to :func:`~birdkit.heads.fit.fit`. A model folder holds ``head.pt`` (state_dict), ``card.json`` and
``per_species_val.csv`` (the per-species validation table).

The split is by recording: all windows of a file fall on one side, since neighbouring windows of one recording
are near-duplicates and would make the validation score a memorization score.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from scipy.special import expit

from birdkit import __version__, metrics
from birdkit.errors import OptionError
from birdkit.heads import model as heads
from birdkit.heads.card import CARD, INITS, ModelCard, TrainConfig
from birdkit.heads.fit import fit, specs
from birdkit.heads.residual import (
    check_compatible,
    labelled_windows,
    residual_spec,
    resolve_residual,
    store_base,
    zero_state,
)
from birdkit.heads.targets import describe_soft, training_rows
from birdkit.io import atomic_write_bytes, atomic_write_json
from birdkit.store import Embeddings, StoreError, load
from birdkit.store.labels import LABELS_FILE, LabelSpec, labels_for, read_labels

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------- the split


def split_by_recording(
    files: Sequence[str], val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, val) over windows such that no recording has windows on both sides.

    Recordings are shuffled with ``seed`` and the first ``round(val_fraction * n)`` go to validation (at least
    one, and at least one left for training, when there are two or more recordings).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise OptionError(f"--val-fraction {val_fraction}: must lie in [0, 1)")
    files = np.asarray([str(f) for f in files], dtype=object)
    unique = np.array(sorted(set(files.tolist())), dtype=object)
    n = len(unique)
    n_val = round(val_fraction * n)
    n_val = min(max(n_val, 1), n - 1) if val_fraction > 0 and n >= 2 else 0
    perm = np.random.default_rng(seed).permutation(n)
    val_files = set(unique[perm[:n_val]].tolist())
    val = np.fromiter((f in val_files for f in files), dtype=bool, count=len(files))
    return ~val, val


# -------------------------------------------------------------------------------------- evaluation, cards


def evaluate(y_true: np.ndarray, logits: np.ndarray) -> dict:
    """The reported metrics (scikit-learn, the functions the inference side uses) on labels vs head logits."""
    prob = expit(logits)
    return {
        "roc_auc": metrics.competition_score(y_true, prob),
        "f1": metrics.macro_f1(y_true, prob),
        "map": metrics.class_map(y_true, prob),
        "windows": int(len(y_true)),
        "scored_species": int(len(metrics.scored_columns(y_true))),
        "positives": int(np.asarray(y_true).sum()),
    }


def submission_frame(row_ids: Sequence[str], prob: np.ndarray, species: list[str]) -> pd.DataFrame:
    """``row_id`` + one probability column per species, the competition's submission layout."""
    sub = pd.DataFrame(np.asarray(prob, dtype=np.float64), columns=species)
    sub.insert(0, "row_id", list(row_ids))
    return sub


def score_on_truth(
    head: torch.nn.Module,
    store: Embeddings,
    truth: pd.DataFrame,
    species: list[str],
    spec: dict | None = None,
) -> dict:
    """Competition score of a head on a store's windows (e.g. test soundscapes) against ``row_id, labels``."""
    if store.species != species:
        raise StoreError(
            f"{store.root}: its species differ from the training store's; embed it with the same data"
        )
    truth = truth[["row_id", "labels"]].fillna({"labels": ""})
    missing = sorted(set(truth["row_id"]) - set(store.frame["row_id"]))
    if missing:
        raise StoreError(
            f"{store.root}: lacks {len(missing)} row(s) of the ground truth, e.g. {missing[:3]}; finish "
            "`birdkit embed` on it, or give the --truth of that data"
        )
    logits = heads.predict_logits(head, store.embeddings)
    if spec is not None and heads.is_residual(spec):
        logits = logits + store_base(store)
    prob = expit(logits)
    sub = submission_frame(store.frame["row_id"], prob, species)
    score = metrics.score_submission(sub, truth)
    merged = truth.merge(sub, on="row_id", how="left")
    y = metrics.labels_matrix(merged["labels"], species)
    p = merged[species].to_numpy()
    return {
        "roc_auc": score,
        "f1": metrics.macro_f1(y, p),
        "map": metrics.class_map(y, p),
        "windows": int(len(merged)),
        "scored_species": int(len(metrics.scored_columns(y))),
        "store": Path(store.root).name,  # a name, never a local path (cards travel to Kaggle)
    }


def data_fingerprint(emb: Embeddings, labels: np.ndarray, *extra: np.ndarray) -> str:
    """sha256 of what the head learns from: encoder, species, row ids, embeddings and labels (and ``extra``
    arrays: soundscape rows and their soft targets)."""
    h = hashlib.sha256()
    h.update(json.dumps({"encoder": emb.meta.encoder, "species": emb.species}, sort_keys=True).encode())
    h.update("\n".join(emb.frame["file"].astype(str) + "/" + emb.frame["row_id"].astype(str)).encode())
    h.update(memoryview(np.ascontiguousarray(emb.embeddings, dtype=np.float32)).cast("B"))
    h.update(np.packbits(np.asarray(labels, dtype=bool), axis=None).tobytes())
    for a in extra:
        h.update(memoryview(np.ascontiguousarray(a, dtype=np.float32)).cast("B"))
    return "sha256:" + h.hexdigest()


def resolve_labels(emb: Embeddings, spec: LabelSpec | None) -> tuple[np.ndarray, dict]:
    """The training labels and how they were made: the given spec; else labels.parquet; else the defaults."""
    if spec is None and (Path(emb.root) / LABELS_FILE).exists():
        y, meta = read_labels(emb)
        surrogate = {"surrogate": meta["surrogate"]} if meta.get("surrogate") else {}
        return y, {**meta["spec"], "source": LABELS_FILE, **surrogate}
    if spec is None:
        spec = LabelSpec()
        log.info("%s: no %s; using default labels %s", emb.root, LABELS_FILE, spec)
    return labels_for(emb, spec), {**spec.to_dict(), "source": "computed"}


def save_model(
    out: Path, head: torch.nn.Module, card: ModelCard, per_species: pd.DataFrame | None = None
) -> None:
    """Write head.pt, card.json (and the per-species table) atomically."""
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(head.state_dict(), buf)
    atomic_write_bytes(out / heads.WEIGHTS, buf.getvalue())
    if per_species is not None:
        atomic_write_bytes(out / "per_species_val.csv", per_species.to_csv(index=False).encode())
    atomic_write_json(out / CARD, card.to_json())


# ----------------------------------------------------------------------------------------------- the entry


def resolve_init(emb: Embeddings, spec: dict, init: str = "auto") -> str:
    """``auto``: BirdNET's classifier where it can start the head (a linear head on a BirdNET store that records
    its species mapping), else random."""
    if init != "auto":
        return init
    ok = spec["kind"] == "linear" and emb.meta.encoder_name == "birdnet" and emb.meta.logits_index is not None
    return "birdnet" if ok else "random"


def initial_state(emb: Embeddings, spec: dict, init: str) -> dict | None:
    """The head's starting weights: PyTorch's random init, or BirdNET's own classifier rows.

    ``birdnet`` starts a linear head at BirdNET's prediction for each competition species (its last layer is
    linear in the 1024-d embedding), so fine-tuning on a few hundred clips starts from the surrogate's 0.92
    instead of learning it again; species BirdNET lacks keep a random row.
    """
    encoder, index = emb.meta.encoder_name, emb.meta.logits_index
    if init == "auto":
        init = resolve_init(emb, spec)
    if init == "random":
        return None
    if init != "birdnet":
        raise OptionError(f"--init {init!r}: choose one of {', '.join(INITS)}")
    if spec["kind"] != "linear" or encoder != "birdnet" or index is None:
        raise OptionError(
            f"{emb.root}: --init birdnet needs a linear head on a BirdNET store that records its species mapping "
            f"(head {spec['kind']}, encoder {encoder}, mapping {'present' if index is not None else 'missing'}); "
            "re-embed with this birdkit version or use --init random"
        )
    from birdkit.encoders.birdnet import classifier

    w, b = classifier()
    head = heads.build_head(spec)
    state = {k: v.clone() for k, v in head.state_dict().items()}
    idx = np.asarray(index)
    ok = np.flatnonzero(idx >= 0)
    state["0.weight"][ok] = torch.from_numpy(w[idx[ok]])
    state["0.bias"][ok] = torch.from_numpy(b[idx[ok]])
    return state


def train_head(
    store: str | Path | Embeddings,
    out: str | Path,
    config: TrainConfig,
    *,
    test: tuple[str | Path | Embeddings, pd.DataFrame] | None = None,
    name: str | None = None,
    progress: bool = True,
    exclude_files: set[str] | frozenset[str] = frozenset(),
    validation: tuple[str | Path | Embeddings, pd.DataFrame] | None = None,
    soundscapes: tuple[Embeddings, np.ndarray] | None = None,
) -> ModelCard:
    """Train a head on a store and write ``out/{head.pt, card.json, per_species_val.csv}``; return the card.

    ``config.labels``: a LabelSpec to make labels in memory; None reads the store's labels.parquet, or makes
    the defaults (ŷ_species at 0.5) when there is none. ``test``: (store, ``row_id, labels`` ground truth) to
    score held-out windows, e.g. test soundscapes, with the competition metric. ``exclude_files``: recordings
    to leave out of training and validation alike (the clips a `birdkit mix` validation set drew from).
    ``validation``: (store, ``row_id, labels``) of labelled soundscapes (a `birdkit mix` set) that pick the best
    epoch instead of held-out clips with pseudo-labels; every kept clip then trains. ``soundscapes``: (store,
    soft targets [m, S] in [0, 1]) of unlabelled soundscape rows to train on beside the clips (self-training,
    :mod:`birdkit.heads.selftrain`); the clips keep their labels.
    """
    emb = store if isinstance(store, Embeddings) else load(store)
    out = Path(out)
    spec, loss_spec = specs(config, emb.embeddings.shape[1], len(emb.species))  # bad options fail first
    if resolve_residual(emb, config):
        spec = residual_spec(spec, emb)
        init_state = zero_state(spec, config.seed)
    else:
        init_state = initial_state(emb, spec, config.init)
    y, label_info = resolve_labels(emb, config.labels)
    t_emb = None
    if test is not None:  # a held-out store that cannot be scored fails now, not after training
        t_emb = test[0] if isinstance(test[0], Embeddings) else load(test[0])
        check_compatible(t_emb, emb, "--test-store")
    keep = ~emb.frame["file"].astype(str).isin(set(exclude_files)).to_numpy()
    if validation is not None:  # labelled soundscapes validate; every kept clip trains
        v_emb, v_rows, y_val = labelled_windows(validation[0], validation[1], emb)
        train_mask, val_mask = keep, np.zeros(len(emb), dtype=bool)
        x_val = v_emb.embeddings[v_rows]
        b_val = store_base(v_emb)[v_rows]
    else:
        train_mask, val_mask = split_by_recording(emb.frame["file"], config.val_fraction, config.seed)
        train_mask, val_mask = train_mask & keep, val_mask & keep
        x_val, y_val, b_val = emb.embeddings[val_mask], y[val_mask], store_base(emb)[val_mask]
    if not train_mask.any():
        raise StoreError(f"{emb.root}: no windows to train on; run `birdkit embed` into it first")
    if not y[train_mask].any():
        raise StoreError(
            f"{emb.root}: no positive label in the {int(train_mask.sum())} training windows ({label_info}); a "
            "head would learn nothing. Lower --threshold, or label with --folder-labels call or all"
        )
    x, frame = emb.embeddings, emb.frame
    residual = heads.is_residual(spec)
    if not residual:
        b_val = np.zeros_like(y_val, dtype=np.float32)
    rows = training_rows(emb, y, train_mask, config, soundscapes)
    extra: tuple[np.ndarray, ...] = ()
    if soundscapes is not None:
        label_info = {**label_info, "soundscapes": describe_soft(soundscapes)}
        extra = (soundscapes[0].embeddings, soundscapes[1])
    result = fit(
        rows.x,
        rows.y,
        x_val,
        y_val,
        config,
        progress=progress,
        init_state=init_state,
        base=(rows.base, b_val) if residual else None,
        weight=rows.weight,
        groups=rows.groups,
    )
    model_metrics: dict[str, Any] = {
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "monitor": result.monitor,
        "train_seconds": round(result.seconds, 3),
        "history": result.history,
        "train": {
            "windows": int(train_mask.sum()),
            "recordings": int(frame.loc[train_mask, "file"].nunique()),
            "positives": int(y[train_mask].sum()),
            "soundscape_windows": len(rows.x) - int(train_mask.sum()),
        },
    }
    per_species = None
    if len(x_val):
        v_logits = heads.predict_logits(result.head, x_val) + b_val
        model_metrics["val"] = {
            **evaluate(y_val, v_logits),
            "set": "labelled soundscapes" if validation is not None else "held-out clips, pseudo-labels",
            "recordings": int(frame.loc[val_mask, "file"].nunique()) if validation is None else None,
        }
        if residual:  # the start (zero correction): what the head must beat
            model_metrics["val"]["passthrough"] = evaluate(y_val, b_val)["roc_auc"]
        per_species = metrics.per_species(y_val, expit(v_logits), emb.species)
    if test is not None and t_emb is not None:
        model_metrics["test"] = score_on_truth(result.head, t_emb, test[1], emb.species, spec)
    card = ModelCard(
        name=name or out.name,
        species=emb.species,
        encoder=emb.meta.encoder,
        embedding_dim=int(x.shape[1]),
        head=spec,
        loss=loss_spec,
        labels=label_info,
        # what was asked, with what auto-sizing chose: from_json of this reruns the same training
        hyperparameters={
            **config.to_json(),
            "init": config.init if residual else resolve_init(emb, spec, config.init),
            "batch_size": result.batch_size,
            "threads": result.threads,
            "optimizer": "adam",
            "split": "by recording",
        },
        metrics=model_metrics,
        data_fingerprint=data_fingerprint(emb, y, *extra),
        training_store={
            "name": Path(emb.root).name,
            # local only: `birdkit export` checks parity on this store, then cuts the path to a name
            "path": str(Path(emb.root).resolve()),
            "split": emb.meta.split,
            "windows": len(emb),
        },
        seed=config.seed,
        created_by=f"birdkit {__version__}",
    )
    save_model(out, result.head, card, per_species)
    return ModelCard.from_json(card.to_json())  # as load_head reads it back: strict JSON values
