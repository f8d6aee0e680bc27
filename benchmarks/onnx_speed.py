"""The ONNX encoder's loop overhead: everything but ``session.run``, as a share of a window's time.

Builds the Perch 2.0 stand-in of ``tests/standins.py`` (Perch 2.0's names and shapes; 14,795 classes by
default), then calls ``ONNXEncoder.embed`` on a soundscape's worth of 5 s chunks with its session wrapped so that
each ``session.run`` is timed inside the same call: overhead = (embed time - time in session.run) / embed time,
measured per call, so a noisy machine slows both sides alike. Also reported, interleaved: bare ``session.run`` on
the same batches pre-sliced. The stand-in's graph is far cheaper than Perch 2.0's, so the share measured here is
an upper bound of what the real model sees.

    .venv/bin/python benchmarks/onnx_speed.py [--chunks 48] [--batch 16] [--repeats 9] [--classes 14795]

Results and the machine they came from: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from birdkit.encoders import get_encoder

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from standins import Perch2Spec, build_perch2_onnx  # noqa: E402  (a test fixture, not the library)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=48, help="5 s chunks per call (48: a 4-minute soundscape)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--classes", type=int, default=14_795, help="stand-in logits (Perch 2.0: 14,795)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = build_perch2_onnx(Path(tmp) / "perch2.onnx", Perch2Spec(n_classes=args.classes))
        enc = get_encoder("perch", model_path=model, batch_size=args.batch)
        runner = enc.backend._runner
        x = (0.1 * np.random.default_rng(0).normal(size=(args.chunks, 160_000))).astype(np.float32)
        batches = [np.ascontiguousarray(x[i : i + args.batch]) for i in range(0, len(x), args.batch)]
        feed, outs = runner.input_name, runner.outputs

        class Timed:
            """The session, with the seconds spent in ``run`` added up."""

            def __init__(self, session: object) -> None:
                self.session, self.seconds = session, 0.0

            def run(self, *a: object, **k: object) -> object:
                t = time.perf_counter()
                try:
                    return self.session.run(*a, **k)
                finally:
                    self.seconds += time.perf_counter() - t

        session = runner.session

        def bare() -> None:
            for b in batches:
                session.run(outs, {feed: b})

        def full() -> None:
            enc.embed(x)

        bare(), full()  # warm-up
        t_full, t_bare, shares = [], [], []
        timed = Timed(session)
        runner.session = timed
        for _ in range(args.repeats):
            timed.seconds = 0.0
            t = time.perf_counter()
            full()
            t_full.append(time.perf_counter() - t)
            shares.append(1 - timed.seconds / t_full[-1])
            t = time.perf_counter()
            bare()
            t_bare.append(time.perf_counter() - t)
        runner.session = session
    f, b, share = float(np.median(t_full)), float(np.median(t_bare)), float(np.median(shares))
    per = 1000 / args.chunks
    print(f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}")
    print(
        f"stand-in: Perch 2.0 names/shapes, {args.classes} classes; {args.chunks} chunks, batch {args.batch}"
    )
    print("| measure | median s / call | ms / 5 s window |")
    print("|---|---|---|")
    print(f"| ONNXEncoder.embed | {f:.4f} | {f * per:.2f} |")
    print(f"| bare session.run | {b:.4f} | {b * per:.2f} |")
    print(f"loop overhead, timed inside each call: median {100 * share:.2f}% (max {100 * max(shares):.2f}%)")
    print(f"difference of the medians above: {100 * (f - b) / f:.2f}% (noisy: two separate timings)")


if __name__ == "__main__":
    main()
