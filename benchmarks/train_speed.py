"""Training speed at the paper's scale: a linear head, ASL, 20 epochs on 217,000 random windows x 1,024 (182 species).

    .venv/bin/python benchmarks/train_speed.py [--repeats 3] [--windows 217000] [--threads 2]

The data go through ``birdkit.heads.fit.fit`` exactly as ``train_head`` passes them: an 80/20 split by (synthetic)
recording, batches of 1,000 (the paper's), the validation ROC-AUC after every epoch, the best state kept.
Early stopping is off so all epochs run. ``seconds`` is the median fit time (data generation excluded);
``peak_rss_mb`` is the process's peak resident memory, data included. Target: <= 60 s and <= 4 GB on 2 cores.
The last line of output is ``seconds=<float> peak_rss_mb=<float>``.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time

import numpy as np


def synthetic(
    windows: int, dim: int, species: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Embeddings, pseudo-labels (about half the windows with one species) and a recording per 20 windows."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((windows, dim), dtype=np.float32)
    y = np.zeros((windows, species), dtype=bool)
    called = rng.random(windows) < 0.5
    y[np.flatnonzero(called), rng.integers(0, species, called.sum())] = True
    files = np.arange(windows) // 20
    return x, y, files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--windows", type=int, default=217_000)
    ap.add_argument("--dim", type=int, default=1024)
    ap.add_argument("--species", type=int, default=182)
    ap.add_argument("--epochs", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: birdkit's choice)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--progress", action="store_true", help="show the per-epoch bars")
    args = ap.parse_args()

    import torch

    from birdkit.heads.card import TrainConfig
    from birdkit.heads.fit import fit
    from birdkit.heads.train import split_by_recording

    t0 = time.perf_counter()
    x, y, files = synthetic(args.windows, args.dim, args.species)
    train, val = split_by_recording(files, 0.2, 0)
    x_train, y_train, x_val, y_val = x[train], y[train], x[val], y[val]
    del x, y
    print(
        f"data: {args.windows} windows x {args.dim}, {args.species} species, {time.perf_counter() - t0:.1f} s to make"
    )
    print(
        f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
        f"train {len(x_train)} / val {len(x_val)} windows"
    )
    times = []
    for r in range(args.repeats):
        config = TrainConfig(
            loss="asl", head="linear", epochs=args.epochs, batch_size=args.batch_size, patience=0, seed=r,
            threads=args.threads,
        )  # fmt: skip
        res = fit(x_train, y_train, x_val, y_val, config, progress=args.progress)
        times.append(res.seconds)
        last = res.history[-1]
        print(
            f"run {r + 1}: {res.seconds:.2f} s, {len(res.history)} epochs, batch {res.batch_size}, "
            f"{len(x_train) * len(res.history) / res.seconds:,.0f} windows/s, last val_roc_auc {last['val_roc_auc']:.4f}"
        )
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(f"seconds={statistics.median(times):.2f} peak_rss_mb={peak_mb:.1f}")


if __name__ == "__main__":
    main()
