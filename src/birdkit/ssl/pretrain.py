"""`birdkit ssl pretrain`: the resumable training loop, on a time or epoch budget.

The state (weights, optimiser, step, seconds trained, loss history) is written atomically every
``checkpoint_s`` and at the end, so a killed run continues from its last checkpoint when given the same
command; batch order is a function of (seed, epoch), so a resumed run sees the batches an unbroken one would.
When the budget is spent the encoder files are written (:mod:`birdkit.ssl.artifacts`).
"""

from __future__ import annotations

import io
import logging
import math
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from birdkit.errors import OptionError
from birdkit.io import atomic_write_bytes
from birdkit.ssl.data import load_windows
from birdkit.ssl.model import ViT, ViTConfig
from birdkit.ssl.objectives import build, check_objective
from birdkit.ssl.pooling import DEFAULT_POOL, check_pool

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
WARMUP_STEPS = 20


@dataclass
class PretrainConfig:
    objective: str = "mae"
    mask_ratio: float = 0.6
    norm_pix: bool = False  # mae: reconstruct each patch standardised (the MAE paper's variant)
    size: str = "small"
    batch_size: int = 32
    lr: float = 1e-3
    seed: int = 0
    minutes: float | None = None  # a budget of training time (resumed runs count what was done before)
    epochs: int | None = None
    splits: list[str] = field(default_factory=lambda: ["unlabeled_soundscapes", "train_audio"])
    limit: int | None = None  # files per split (tests, quick looks)

    def check(self) -> None:
        if (self.minutes is None) == (self.epochs is None):
            raise OptionError("give exactly one budget: --minutes N or --epochs N")
        if (self.minutes is not None and self.minutes <= 0) or (self.epochs is not None and self.epochs < 1):
            raise OptionError("--minutes must be > 0 and --epochs >= 1")
        if self.batch_size < 2:
            raise OptionError("--batch-size must be at least 2")
        check_objective(self.objective, self.mask_ratio)
        ViTConfig.named(self.size)

    def identity(self) -> dict:
        """What a checkpoint must agree on to be resumed (the budget may change)."""
        d = asdict(self)
        return {
            k: d[k]
            for k in ("objective", "mask_ratio", "norm_pix", "size", "batch_size", "seed", "splits", "limit")
        }


@dataclass
class PretrainReport:
    out: Path
    windows: int
    steps: int
    epochs: float
    seconds: float
    first_loss: float  # mean of the first 10 steps
    last_loss: float  # mean of the last 10 steps
    resumed_from: int
    files: dict = field(default_factory=dict)


def _save(path: Path, state: dict) -> None:
    buf = io.BytesIO()
    torch.save(state, buf)
    atomic_write_bytes(path, buf.getvalue())


def _resume(path: Path, cfg: PretrainConfig) -> dict | None:
    if not path.exists():
        return None
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state["config"] != cfg.identity():
        raise OptionError(
            f"{path}: a checkpoint of another run ({state['config']}); give a new --out, or delete it to restart"
        )
    return state


@contextmanager
def _interrupt_at_step_end() -> Iterator[list[bool]]:
    """Ctrl-C ends the loop at the next step boundary (so the checkpoint is consistent), not mid-update; the
    yielded list turns truthy when it was pressed. A second Ctrl-C interrupts at once."""
    flag: list[bool] = []
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum: int, frame: object) -> None:
        flag.append(True)
        signal.signal(signal.SIGINT, previous)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


def pretrain(
    data_dir: str | Path,
    out: str | Path,
    cfg: PretrainConfig,
    cache: str | Path | None = None,
    threads: int = 2,
    checkpoint_s: float = 30.0,
    progress: bool = True,
    pool: str = DEFAULT_POOL,
) -> PretrainReport:
    """Train (or resume) in ``out``; write the checkpoint, the loss curve and the encoder files (embedding pooled
    by ``pool``) there."""
    from birdkit.ssl.artifacts import write_artifacts

    cfg.check()
    pool = check_pool(pool)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(threads)
    mels, fe = load_windows(data_dir, cfg.splits, cache or out / "cache", cfg.limit, progress=progress)
    n = len(mels)
    if n < cfg.batch_size:
        raise OptionError(f"{data_dir}: {n} windows, fewer than --batch-size {cfg.batch_size}")
    torch.manual_seed(cfg.seed)
    vit = ViT(ViTConfig.named(cfg.size), fe)
    model = build(cfg.objective, vit, cfg.mask_ratio, cfg.norm_pix)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=0.05)
    state = _resume(out / CHECKPOINT, cfg)
    step, seconds, history = 0, 0.0, []
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        step, seconds, history = state["step"], state["seconds"], state["history"]
        torch.set_rng_state(state["torch_rng"])
        log.info("%s: resuming at step %d (%.0f s trained)", out / CHECKPOINT, step, seconds)
    resumed_from = step
    per_epoch = n // cfg.batch_size
    total = cfg.epochs * per_epoch if cfg.epochs is not None else None
    budget_s = cfg.minutes * 60.0 if cfg.minutes is not None else math.inf

    def snapshot() -> None:
        _save(
            out / CHECKPOINT,
            {
                "config": cfg.identity(),
                "model": model.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "seconds": seconds,
                "history": history,
                "torch_rng": torch.get_rng_state(),
                "frontend": fe.to_json(),
                "vit": vit.cfg.to_json(),
            },
        )

    bar = tqdm(total=total, initial=step, desc=f"ssl {cfg.objective}", unit="step", disable=not progress)
    model.train()
    last_save = time.perf_counter()
    with _interrupt_at_step_end() as stop:
        while (total is None or step < total) and seconds < budget_s and not stop:
            t0 = time.perf_counter()
            epoch, i = divmod(step, per_epoch)
            order = np.random.default_rng([cfg.seed, epoch]).permutation(n)
            batch = np.sort(order[i * cfg.batch_size : (i + 1) * cfg.batch_size])
            spec = (torch.from_numpy(np.asarray(mels[batch], dtype=np.float32))[:, None] - fe.mean) / fe.std
            for g in opt.param_groups:
                g["lr"] = cfg.lr * min(1.0, (step + 1) / WARMUP_STEPS)
            loss = model(spec)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            model.after_step()
            step += 1
            seconds += time.perf_counter() - t0
            history.append((step, round(seconds, 3), loss.item()))
            bar.update(1)
            bar.set_postfix(loss=f"{history[-1][2]:.4f}", epoch=epoch)
            if time.perf_counter() - last_save >= checkpoint_s:
                snapshot()
                last_save = time.perf_counter()
    bar.close()
    snapshot()
    if stop:
        raise KeyboardInterrupt
    files = write_artifacts(out, vit, fe, cfg, history, mels, pool)
    losses = [h[2] for h in history]
    return PretrainReport(
        out,
        n,
        step,
        step / per_epoch,
        seconds,
        float(np.mean(losses[:10])) if losses else float("nan"),
        float(np.mean(losses[-10:])) if losses else float("nan"),
        resumed_from,
        files,
    )
