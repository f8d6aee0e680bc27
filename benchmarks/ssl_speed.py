"""Cost per 5 s window of the self-supervised encoder: its TFLite graph on the kit's TFLite runtime (what the
notebook runs), its ONNX graph on onnxruntime and the same weights in torch, interleaved in one process so the
machine's noise hits all alike.

    .venv/bin/python benchmarks/ssl_speed.py --model models/ssl [--windows 64] [--repeats 5] [--threads 1]

A model folder from `birdkit ssl pretrain` (`birdkit ssl export` adds the TFLite graph to an older one).
Reports the median ms per window (batch 16, frontend included) for each runtime, the ratios to TFLite, and the
largest difference from torch on the timed windows. The last line is
``tflite_ms=<float> onnx_ms=<float> torch_ms=<float> tflite_parity=<float> onnx_parity=<float>``.
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

RUNTIMES = ("tflite", "onnx", "torch")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--windows", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    encs = {
        rt: get_encoder("ssl", model_path=a.model, runtime=rt, batch_size=16, num_threads=a.threads)
        for rt in RUNTIMES
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
    parity = {rt: float(np.abs(outs[rt] - outs["torch"]).max()) for rt in ("tflite", "onnx")}
    med = {rt: statistics.median(v) for rt, v in times.items()}
    d = encs["tflite"].describe()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cpus, threads={a.threads}")
    print(f"model {d['vit']}, pool {d['pool']} ({d['embedding_dim']}-d), {a.windows} windows x {a.repeats}")
    for rt in encs:
        runs = ", ".join(f"{v:.2f}" for v in times[rt])
        print(
            f"  {rt:6s} median {med[rt]:.2f} ms/window = {med[rt] / med['tflite']:.2f}x tflite  (runs: {runs})"
        )
    print(
        f"tflite_ms={med['tflite']:.3f} onnx_ms={med['onnx']:.3f} torch_ms={med['torch']:.3f} "
        f"tflite_parity={parity['tflite']:.2e} onnx_parity={parity['onnx']:.2e}"
    )


if __name__ == "__main__":
    main()
