"""The training loop on arrays: Adam on mini-batches, validation after each epoch, the best state kept.

``train_head`` (:mod:`.train`) feeds it a store's split; the speed benchmark calls it directly on random data.
Everything it needs to know about the run is a :class:`~birdkit.heads.card.TrainConfig`.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.special import expit
from tqdm.auto import tqdm

from birdkit import metrics
from birdkit.heads import losses
from birdkit.heads import model as heads
from birdkit.heads.card import TrainConfig

log = logging.getLogger(__name__)


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
        try:  # AUC is rank-based: logits rank like probabilities
            return metrics.fast_competition_score(y, logits)
        except ValueError:  # a species positive in every validation window: no ranking to score
            return -loss
    if name == "f1":
        return metrics.fast_macro_f1(y, expit(logits))
    return -loss


def balanced_draw(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One epoch's row order under class-balanced sampling: ``len(groups)`` draws with replacement, every group
    (a folder species; soundscape rows form one group) drawn with the same total probability."""
    _, inverse, counts = np.unique(np.asarray(groups, dtype=str), return_inverse=True, return_counts=True)
    p = 1.0 / counts[inverse]
    return rng.choice(len(groups), size=len(groups), replace=True, p=p / p.sum())


@dataclass
class Batch:
    """One mini-batch of a fit: embeddings, targets, per-cell loss weights, residual base logits."""

    x: torch.Tensor
    y: torch.Tensor
    w: torch.Tensor | None
    b: torch.Tensor | None


def augment(batch: Batch, config: TrainConfig, rng: np.random.Generator, x_std: torch.Tensor | None) -> Batch:
    """The training-time regularisers, in this order: feature noise (std units per dimension), label smoothing
    (t -> t (1 - eps) + eps/2), mixup (the batch with a shuffled copy of itself, lam ~ Beta(alpha, alpha), in
    every tensor alike, so a residual head's base follows its embeddings). All off: the batch unchanged."""
    x, y, w, b = batch.x, batch.y, batch.w, batch.b
    if config.feature_noise and x_std is not None:
        noise = torch.from_numpy(rng.standard_normal(x.shape, dtype=np.float32))
        x = x + config.feature_noise * x_std * noise
    if config.label_smoothing:
        y = y * (1.0 - config.label_smoothing) + 0.5 * config.label_smoothing
    if config.mixup and len(x) > 1:
        lam = float(rng.beta(config.mixup, config.mixup))
        j = torch.from_numpy(rng.permutation(len(x)))

        def mix(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else lam * t + (1.0 - lam) * t.index_select(0, j)

        x, y, w, b = mix(x), mix(y), mix(w), mix(b)
    return Batch(x, y, w, b)  # type: ignore[arg-type]


def specs(config: TrainConfig, in_dim: int, out_dim: int) -> tuple[dict, dict]:
    """The card's ``head`` and ``loss`` entries for a config: what ``build_head`` and ``build_loss`` take."""
    head = heads.head_spec(config.head, in_dim, out_dim, config.hidden, config.dropout)
    loss = {"name": config.loss.lower(), **losses.loss_params(config.loss, **config.loss_params)}
    losses.build_loss(loss)  # a value the loss refuses (sigmoidF1's S=0) fails here, before any data is read
    return head, loss


def fit(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_val: np.ndarray | None,
    y_val: np.ndarray | None,
    config: TrainConfig,
    *,
    progress: bool = True,
    init_state: dict | None = None,
    base: tuple[np.ndarray, np.ndarray | None] | None = None,
    weight: np.ndarray | None = None,
    groups: np.ndarray | None = None,
) -> FitResult:
    """Adam on mini-batches; after each epoch score the validation windows and keep the best state.

    The head and loss are ``config``'s, sized by the arrays; ``config.labels`` and ``val_fraction`` are the
    caller's business (the arrays are already labelled and split). Stops after ``patience`` epochs without
    improvement (0 = never). Without validation windows the last epoch is kept. ``monitor``: roc_auc (the
    competition metric), f1 (macro-F1 at 0.5) or loss (validation loss); roc_auc and f1 fall back to loss when
    the validation labels have no positive at all.

    ``base`` (train, val): logits the head's output is added to (a residual head over its encoder's own
    logits). With a base, the starting state is epoch 0 and competes like any epoch: a correction that never
    beats the start on validation is not kept.

    ``y_train`` may be soft (in [0, 1]: pseudo-labels; every loss takes them). ``weight`` [n, S]: each training
    cell's weight in the loss (weak negatives); ``groups`` [n]: each row's group for ``config.balanced``
    sampling (default: all one group, i.e. uniform). The regularisers (:func:`augment`) apply to training
    batches only; validation always scores the plain embeddings against the plain labels.
    """
    if len(x_train) == 0:
        raise ValueError("no training windows")
    head_spec, loss_spec = specs(config, x_train.shape[1], y_train.shape[1])
    monitor = config.monitor
    has_val = x_val is not None and y_val is not None and len(x_val) > 0
    if has_val and monitor != "loss" and len(metrics.scored_columns(y_val)) == 0:
        log.warning("validation labels have no positive: monitoring validation loss instead of %s", monitor)
        monitor = "loss"
    t0 = time.perf_counter()
    n = len(x_train)
    # A batch of one breaks BatchNorm; a last single window is folded into the previous batch below.
    bs = max(1, min(config.batch_size or auto_batch_size(n), n))
    n_threads = config.threads or default_threads(bs, head_spec)
    epochs = config.epochs
    with torch_threads(n_threads):
        torch.manual_seed(config.seed)
        rng = np.random.default_rng(config.seed)
        head = heads.build_head(head_spec)
        if init_state is not None:
            head.load_state_dict(init_state)
        loss_fn = losses.build_loss(loss_spec)
        if hasattr(
            loss_fn, "binary_targets"
        ):  # 0/1 targets stay 0/1 in every batch: ASL's fast path, no check
            soft = config.label_smoothing or config.mixup or not np.isin(y_train, (0, 1)).all()
            loss_fn.binary_targets = not soft
        opt = _adam(head, config.lr, config.weight_decay)
        bt = bv = None
        if base is not None:
            bt = torch.from_numpy(np.ascontiguousarray(base[0], dtype=np.float32))
            bv = None if base[1] is None else np.asarray(base[1], dtype=np.float32)
        xt = torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32))
        yt = torch.from_numpy(np.ascontiguousarray(y_train, dtype=np.float32))
        wt = None if weight is None else torch.from_numpy(np.ascontiguousarray(weight, dtype=np.float32))
        x_std = xt.std(dim=0, keepdim=True) if config.feature_noise and n > 1 else None
        aug = np.random.default_rng([config.seed, 1])  # its own stream: options off leave the order unchanged
        grp = np.zeros(n, dtype=int) if groups is None else np.asarray(groups)
        if has_val:
            xv = np.ascontiguousarray(x_val, dtype=np.float32)
            yv_t = torch.from_numpy(np.ascontiguousarray(y_val, dtype=np.float32))
        starts = list(range(0, n, bs))
        if len(starts) > 1 and n - starts[-1] == 1:
            starts.pop()
        best = (-math.inf, 0, copy.deepcopy(head.state_dict()))
        history: list[dict] = []
        waited = 0
        if base is not None and has_val:  # epoch 0: the start (passthrough, for a zero correction)
            v_logits = heads.predict_logits(head, xv) + bv
            with torch.no_grad():
                v_loss = float(loss_fn(torch.from_numpy(v_logits), yv_t))
            best = (_monitor_value(monitor, y_val, v_logits, v_loss), 0, best[2])
            history.append({"epoch": 0, "val_loss": v_loss, f"val_{monitor}": best[0]})
        for epoch in range(1, epochs + 1):
            head.train()
            perm = torch.from_numpy(balanced_draw(grp, rng) if config.balanced else rng.permutation(n))
            total, seen = 0.0, 0
            bar = tqdm(
                range(len(starts)),
                desc=f"epoch {epoch}/{epochs}",
                unit="batch",
                disable=None if progress else True,  # None: off where stderr is no terminal (a log, CI)
                leave=False,
            )
            for b in bar:
                end = starts[b + 1] if b + 1 < len(starts) else n
                idx = perm[starts[b] : end]

                def pick(t: torch.Tensor | None, idx: torch.Tensor = idx) -> torch.Tensor | None:
                    return None if t is None else t.index_select(0, idx)

                batch = augment(Batch(pick(xt), pick(yt), pick(wt), pick(bt)), config, aug, x_std)  # type: ignore[arg-type]
                logits = head(batch.x)
                if batch.b is not None:
                    logits = logits + batch.b
                loss = loss_fn(logits, batch.y) if batch.w is None else loss_fn(logits, batch.y, batch.w)
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
                v_logits = heads.predict_logits(head, xv) + (bv if bv is not None else 0.0)
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
                if config.patience and waited >= config.patience:
                    break
        head.load_state_dict(best[2])
        head.eval()
    return FitResult(head, best[1], monitor, history, time.perf_counter() - t0, bs, n_threads)
