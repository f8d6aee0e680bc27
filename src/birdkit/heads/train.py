"""Train a head on an embedding store: pseudo-labels, a recording-level split, Adam, early stopping, a card.

``train_head`` is what `birdkit train`, `birdkit sweep` and the demo call. ``fit`` is the loop on arrays, which
the speed benchmark calls directly. A model folder holds ``head.pt`` (state_dict), ``card.json`` and
``per_species_val.csv`` (the per-species validation table).

The split is by recording: all windows of a file fall on one side, since neighbouring windows of one recording
are near-duplicates and would make the validation score a memorization score.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from scipy.special import expit
from tqdm.auto import tqdm

from birdkit import __version__, metrics
from birdkit.heads import losses
from birdkit.heads import model as heads
from birdkit.io import atomic_write_bytes, atomic_write_json
from birdkit.store import Embeddings, StoreError, load
from birdkit.store.labels import LABELS_FILE, LabelSpec, labels_for, read_labels

log = logging.getLogger(__name__)

MONITORS = ("roc_auc", "f1", "loss")


# ----------------------------------------------------------------------------------------------- the split


def split_by_recording(
    files: Sequence[str], val_fraction: float = 0.2, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks (train, val) over windows such that no recording has windows on both sides.

    Recordings are shuffled with ``seed`` and the first ``round(val_fraction * n)`` go to validation (at least
    one, and at least one left for training, when there are two or more recordings).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction {val_fraction}: must lie in [0, 1)")
    files = np.asarray([str(f) for f in files], dtype=object)
    unique = np.array(sorted(set(files.tolist())), dtype=object)
    n = len(unique)
    n_val = round(val_fraction * n)
    n_val = min(max(n_val, 1), n - 1) if val_fraction > 0 and n >= 2 else 0
    perm = np.random.default_rng(seed).permutation(n)
    val_files = set(unique[perm[:n_val]].tolist())
    val = np.fromiter((f in val_files for f in files), dtype=bool, count=len(files))
    return ~val, val


# ------------------------------------------------------------------------------------------- the fit loop


def auto_batch_size(n_train: int) -> int:
    """The paper's 1,000 on large sets, smaller on small ones so an epoch still has about 20 steps.

    With 1,000 a minicomp-sized set (~600 windows) would take one step per epoch and learn nothing in 20.
    """
    return int(np.clip(n_train // 20, 32, 1000))


@dataclass
class FitResult:
    """The best head (by the monitor) and how training went."""

    head: torch.nn.Module
    best_epoch: int
    monitor: str
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    batch_size: int = 0
    threads: int = 0


def default_threads(batch_size: int, head_spec: dict) -> int:
    """One thread for small matmuls, else up to two.

    On a busy 2-core machine a second torch thread on a small head spends its time waiting at OpenMP
    barriers: a minicomp-sized fit measured 0.5 s with one thread and 8 s with two. A paper-sized batch
    (1,000 x 1,024 x 182) gains from the second (59 s -> 39 s on two idle cores). The choice depends on the
    shapes and the core count only, never on the load, so a rerun gives the same numbers; pass ``threads=1``
    on a machine others are busy on.
    """
    macs = batch_size * int(head_spec["in_dim"]) * int(head_spec.get("hidden") or head_spec["out_dim"])
    return 1 if macs < 20_000_000 else min(2, os.cpu_count() or 1)


@contextmanager
def torch_threads(n: int):
    """Run with ``n`` torch threads, then restore the previous setting."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(old)


def _adam(head: torch.nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam, fused where this torch build has the CPU kernel (about 2x faster a step, same maths)."""
    try:
        return torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay, fused=True)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(head.parameters(), lr=lr, weight_decay=weight_decay)


def _monitor_value(name: str, y: np.ndarray, logits: np.ndarray, loss: float) -> float:
    if name == "roc_auc":
        return metrics.fast_competition_score(y, logits)  # AUC is rank-based: logits rank like probabilities
    if name == "f1":
        return metrics.fast_macro_f1(y, expit(logits))
    return -loss


def fit(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    head_spec: dict,
    loss_spec: dict,
    *,
    epochs: int = 20,
    batch_size: int | None = None,
    lr: float = 2e-3,
    weight_decay: float = 0.0,
    patience: int = 5,
    monitor: str = "roc_auc",
    seed: int = 0,
    threads: int | None = None,
    progress: bool = True,
    init_state: dict | None = None,
) -> FitResult:
    """Adam on mini-batches; after each epoch score the validation windows and keep the best state.

    Stops after ``patience`` epochs without improvement (0 = never). Without validation windows the last
    epoch is kept. ``monitor``: roc_auc (the competition metric), f1 (macro-F1 at 0.5) or loss (validation
    loss); roc_auc and f1 fall back to loss when the validation labels have no positive at all.
    """
    if monitor not in MONITORS:
        raise ValueError(f"monitor {monitor!r}: choose one of {', '.join(MONITORS)}")
    if len(x_train) == 0:
        raise ValueError("no training windows")
    has_val = x_val is not None and y_val is not None and len(x_val) > 0
    if has_val and monitor != "loss" and len(metrics.scored_columns(y_val)) == 0:
        log.warning("validation labels have no positive: monitoring validation loss instead of %s", monitor)
        monitor = "loss"
    t0 = time.perf_counter()
    n = len(x_train)
    # A batch of one breaks BatchNorm; a last single window is folded into the previous batch below.
    bs = max(1, min(batch_size or auto_batch_size(n), n))
    n_threads = threads or default_threads(bs, head_spec)
    with torch_threads(n_threads):
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        head = heads.build_head(head_spec)
        if init_state is not None:
            head.load_state_dict(init_state)
        loss_fn = losses.build_loss(loss_spec)
        opt = _adam(head, lr, weight_decay)
        xt = torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32))
        yt = torch.from_numpy(np.ascontiguousarray(y_train, dtype=np.float32))
        if has_val:
            xv = np.ascontiguousarray(x_val, dtype=np.float32)
            yv_t = torch.from_numpy(np.ascontiguousarray(y_val, dtype=np.float32))
        starts = list(range(0, n, bs))
        if len(starts) > 1 and n - starts[-1] == 1:
            starts.pop()
        best = (-math.inf, 0, copy.deepcopy(head.state_dict()))
        history: list[dict] = []
        waited = 0
        for epoch in range(1, epochs + 1):
            head.train()
            perm = torch.from_numpy(rng.permutation(n))
            total, seen = 0.0, 0
            bar = tqdm(
                range(len(starts)),
                desc=f"epoch {epoch}/{epochs}",
                unit="batch",
                disable=not progress,
                leave=False,
            )
            for b in bar:
                end = starts[b + 1] if b + 1 < len(starts) else n
                idx = perm[starts[b] : end]
                logits = head(xt.index_select(0, idx))
                loss = loss_fn(logits, yt.index_select(0, idx))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
                if b % 20 == 0:
                    bar.set_postfix(loss=f"{total / seen:.4g}")
            bar.close()
            row: dict = {"epoch": epoch, "train_loss": total / seen}
            if has_val:
                v_logits = heads.predict_logits(head, xv)
                with torch.no_grad():
                    row["val_loss"] = float(loss_fn(torch.from_numpy(v_logits), yv_t))
                row[f"val_{monitor}"] = _monitor_value(monitor, y_val, v_logits, row["val_loss"])
                score = row[f"val_{monitor}"]
            else:
                score = float(epoch)  # no validation: the last epoch wins
            history.append(row)
            if progress:
                tqdm.write(
                    "  ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items())
                )
            if score > best[0] + 1e-6:
                best = (score, epoch, copy.deepcopy(head.state_dict()))
                waited = 0
            else:
                waited += 1
                if patience and waited >= patience:
                    break
        head.load_state_dict(best[2])
        head.eval()
    return FitResult(head, best[1], monitor, history, time.perf_counter() - t0, bs, n_threads)


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


def score_on_truth(head: torch.nn.Module, store: Embeddings, truth: pd.DataFrame, species: list[str]) -> dict:
    """Competition score of a head on a store's windows (e.g. test soundscapes) against ``row_id, labels``."""
    if store.species != species:
        raise StoreError(
            f"{store.root}: its species differ from the training store's; embed it with the same data"
        )
    prob = expit(heads.predict_logits(head, store.embeddings))
    sub = submission_frame(store.frame["row_id"], prob, species)
    truth = truth[["row_id", "labels"]].fillna({"labels": ""})
    score = metrics.score_submission(sub, truth)  # raises, naming rows, when the store lacks some
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


def data_fingerprint(emb: Embeddings, labels: np.ndarray) -> str:
    """sha256 of what the head learns from: encoder, species, row ids, embeddings and labels."""
    h = hashlib.sha256()
    h.update(
        json.dumps({"encoder": emb.meta.get("encoder"), "species": emb.species}, sort_keys=True).encode()
    )
    h.update("\n".join(emb.frame["file"].astype(str) + "/" + emb.frame["row_id"].astype(str)).encode())
    h.update(memoryview(np.ascontiguousarray(emb.embeddings, dtype=np.float32)).cast("B"))
    h.update(np.packbits(np.asarray(labels, dtype=bool), axis=None).tobytes())
    return "sha256:" + h.hexdigest()


def resolve_labels(emb: Embeddings, spec: LabelSpec | None) -> tuple[np.ndarray, dict]:
    """The training labels and how they were made: the given spec; else labels.parquet; else the defaults."""
    if spec is None and (Path(emb.root) / LABELS_FILE).exists():
        y, meta = read_labels(emb)
        return y, {**meta["spec"], "source": LABELS_FILE}
    if spec is None:
        spec = LabelSpec()
        log.info("%s: no %s; using default labels %s", emb.root, LABELS_FILE, spec)
    return labels_for(emb, spec), {**spec.to_dict(), "source": "computed"}


def save_model(out: Path, head: torch.nn.Module, card: dict, per_species: pd.DataFrame | None = None) -> None:
    """Write head.pt, card.json (and the per-species table) atomically."""
    out.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    torch.save(head.state_dict(), buf)
    atomic_write_bytes(out / heads.WEIGHTS, buf.getvalue())
    if per_species is not None:
        atomic_write_bytes(out / "per_species_val.csv", per_species.to_csv(index=False).encode())
    atomic_write_json(out / heads.CARD, _jsonable(card))


def _jsonable(obj: object) -> object:
    """NaN -> None so card.json stays strict JSON."""
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return None if math.isnan(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


# ----------------------------------------------------------------------------------------------- the entry


INITS = ("random", "birdnet")


def initial_state(emb: Embeddings, spec: dict, init: str) -> dict | None:
    """The head's starting weights: PyTorch's random init, or BirdNET's own classifier rows.

    ``birdnet`` starts a linear head at BirdNET's prediction for each competition species (its last layer is
    linear in the 1024-d embedding), so fine-tuning on a few hundred clips starts from the surrogate's 0.92
    instead of learning it again; species BirdNET lacks keep a random row.
    """
    if init == "random":
        return None
    if init != "birdnet":
        raise ValueError(f"init {init!r}: choose one of {', '.join(INITS)}")
    encoder = (emb.meta.get("encoder") or {}).get("name")
    index = emb.meta.get("logits_index")
    if spec["kind"] != "linear" or encoder != "birdnet" or index is None:
        raise ValueError(
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
    emb_dir: str | Path | Embeddings,
    out: str | Path,
    *,
    loss: str = "asl",
    loss_params: dict | None = None,
    head: str = "linear",
    hidden: int | None = None,
    dropout: float = 0.0,
    labels: LabelSpec | None = None,
    epochs: int = 20,
    batch_size: int | None = None,
    lr: float = 2e-3,
    weight_decay: float = 0.0,
    patience: int = 5,
    monitor: str = "roc_auc",
    val_fraction: float = 0.2,
    seed: int = 0,
    threads: int | None = None,
    test: tuple[str | Path | Embeddings, pd.DataFrame] | None = None,
    name: str | None = None,
    progress: bool = True,
    init: str = "random",
) -> dict:
    """Train a head on a store and write ``out/{head.pt, card.json, per_species_val.csv}``; return the card.

    ``labels``: a LabelSpec to make labels in memory; None reads the store's labels.parquet, or makes the
    defaults (ŷ_species at 0.5) when there is none. ``test``: (store, ``row_id, labels`` ground truth) to score
    held-out windows, e.g. test soundscapes, with the competition metric.
    """
    emb = emb_dir if isinstance(emb_dir, Embeddings) else load(emb_dir)
    out = Path(out)
    y, label_info = resolve_labels(emb, labels)
    train_mask, val_mask = split_by_recording(emb.frame["file"], val_fraction, seed)
    spec = heads.head_spec(head, emb.embeddings.shape[1], len(emb.species), hidden, dropout)
    lspec = {"name": loss.lower(), **losses.loss_params(loss, **(loss_params or {}))}
    init_state = initial_state(emb, spec, init)
    result = fit(
        emb.embeddings[train_mask],
        y[train_mask],
        emb.embeddings[val_mask],
        y[val_mask],
        spec,
        lspec,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        patience=patience,
        monitor=monitor,
        seed=seed,
        threads=threads,
        progress=progress,
        init_state=init_state,
    )
    model_metrics: dict = {
        "best_epoch": result.best_epoch,
        "epochs_run": len(result.history),
        "monitor": result.monitor,
        "train_seconds": round(result.seconds, 3),
        "history": result.history,
        "train": {
            "windows": int(train_mask.sum()),
            "recordings": int(emb.frame.loc[train_mask, "file"].nunique()),
            "positives": int(y[train_mask].sum()),
        },
    }
    per_species = None
    if val_mask.any():
        v_logits = heads.predict_logits(result.head, emb.embeddings[val_mask])
        model_metrics["val"] = {
            **evaluate(y[val_mask], v_logits),
            "recordings": int(emb.frame.loc[val_mask, "file"].nunique()),
        }
        per_species = metrics.per_species(y[val_mask], expit(v_logits), emb.species)
    if test is not None:
        t_store, truth = test
        t_emb = t_store if isinstance(t_store, Embeddings) else load(t_store)
        model_metrics["test"] = score_on_truth(result.head, t_emb, truth, emb.species)
    card = {
        "name": name or out.name,
        "species": emb.species,
        "encoder": emb.meta.get("encoder"),
        "embedding_dim": int(emb.embeddings.shape[1]),
        "head": spec,
        "loss": lspec,
        "labels": label_info,
        "hyperparameters": {
            "optimizer": "adam",
            "lr": lr,
            "weight_decay": weight_decay,
            "batch_size": result.batch_size,
            "threads": result.threads,
            "epochs": epochs,
            "patience": patience,
            "monitor": monitor,
            "val_fraction": val_fraction,
            "split": "by recording",
            "init": init,
        },
        "metrics": model_metrics,
        "data_fingerprint": data_fingerprint(emb, y),
        "training_store": {
            "name": Path(emb.root).name,
            # local only: `birdkit export` checks parity on this store, then cuts the path to a name
            "path": str(Path(emb.root).resolve()),
            "split": emb.meta.get("split"),
            "windows": len(emb),
        },
        "seed": seed,
        "created_by": f"birdkit {__version__}",
    }
    save_model(out, result.head, card, per_species)
    return json.loads(json.dumps(_jsonable(card)))
