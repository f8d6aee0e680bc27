"""Cost per 5 s window of the self-supervised encoder: its ONNX graph on onnxruntime (what the notebook runs)
against the same weights in torch, interleaved in one process so the machine's noise hits both alike.

    .venv/bin/python benchmarks/ssl_speed.py --model models/ssl [--windows 64] [--repeats 5] [--threads 1]

A model folder from `birdkit ssl pretrain`. Reports the median ms per window (batch 16, frontend included) for
each runtime, their ratio, and the ONNX parity against torch on the timed windows. The last line is
``onnx_ms=<float> torch_ms=<float> parity=<float>``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np

from birdkit.encoders.registry import get_encoder
from birdkit.ssl.artifacts import parity_waves


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    encs = {
        rt: get_encoder("ssl", model_path=a.model, runtime=rt, batch_size=16, num_threads=a.threads)
        for rt in ("onnx", "torch")
    }
    x = parity_waves(a.windows, seed=1) + 0.01 * np.random.default_rng(0).standard_normal(1).astype(
        np.float32
    )
    outs = {rt: e.embed(x[:16]).embeddings for rt, e in encs.items()}  # warm up
    times: dict[str, list[float]] = {rt: [] for rt in encs}
    for _ in range(a.repeats):
        for rt, e in encs.items():
            t0 = time.perf_counter()
            outs[rt] = e.embed(x).embeddings
            times[rt].append((time.perf_counter() - t0) / a.windows * 1e3)
    parity = float(np.abs(outs["onnx"] - outs["torch"]).max())
    med = {rt: statistics.median(v) for rt, v in times.items()}
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, threads={a.threads}")
    print(
        f"model {encs['onnx'].describe()['vit']} ({encs['onnx'].embedding_dim}-d), {a.windows} windows x {a.repeats}"
    )
    for rt in encs:
        print(f"  {rt:5s} median {med[rt]:.2f} ms/window  (runs: {', '.join(f'{v:.2f}' for v in times[rt])})")
    print(f"  torch / onnx = {med['torch'] / med['onnx']:.2f}")
    print(f"onnx_ms={med['onnx']:.3f} torch_ms={med['torch']:.3f} parity={parity:.2e}")


if __name__ == "__main__":
    main()
