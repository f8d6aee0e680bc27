"""EnCodec's cost per 4-minute soundscape (48 chunks of 5 s at 24 kHz), with random weights of the real 24 kHz
architecture (no checkpoint can be downloaded here; the cost does not depend on the weights).

    .venv/bin/python benchmarks/encodec_speed.py [--repeats 3]

Prints CPU seconds per 4-minute soundscape, median over repeats, for each bandwidth and embedding kind, one
torch thread (as each inference worker runs).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from birdkit.encoders.encodec import EncodecEncoder, import_encodec

CHUNKS = 48  # a 4-minute soundscape


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = Path(tmp) / "encodec_24khz-random.th"
        torch.save(import_encodec().EncodecModel.encodec_model_24khz(pretrained=False).state_dict(), ckpt)
        x = np.random.default_rng(0).normal(0, 0.1, (CHUNKS, 5 * 24_000)).astype(np.float32)
        for bandwidth in (1.5, 3.0):
            for features in ("latent", "codes"):
                enc = EncodecEncoder(ckpt, bandwidth=bandwidth, features=features)
                enc.embed(x[:2])  # warm-up
                runs = []
                for _ in range(args.repeats):
                    t = time.process_time()
                    out = enc.embed(x)
                    runs.append(time.process_time() - t)
                print(
                    f"bandwidth={bandwidth} features={features} dim={out.embeddings.shape[1]} "
                    f"cpu_s_per_4min={statistics.median(runs):.2f} runs={[round(r, 2) for r in runs]}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
