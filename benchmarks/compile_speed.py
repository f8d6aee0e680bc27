"""Compile a Perch-shaped SavedModel to TFLite, float and dynamic-range quantised: accuracy and speed.

Perch cannot be downloaded here, so this builds the stand-in of ``tests/standins.py`` at a Perch-like size (1280-d embedding, 10,932 classes, four strided conv layers over a 128-band log-mel), runs it
on real 5 s chunks of a minicomp test soundscape, and times the SavedModel (TensorFlow, its default threads)
against the compiled graphs (TFLite runtime at 1 and 2 threads). Medians of ``--repeats`` runs after a warm-up.

    .venv/bin/python benchmarks/compile_speed.py [--chunks 48] [--batch 16] [--repeats 5] [--json out.json]

Results and the machine they came from: benchmarks/RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

from birdkit.audio import load_chunks
from birdkit.package import check as ck
from birdkit.package import compile as bc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from standins import StandInSpec, build_standin_encoder  # noqa: E402  (a test fixture, not the library)

MINICOMP = ROOT.parent / "shared" / "data" / "minicomp"
PERCH_LIKE = StandInSpec(mels=128, channels=(32, 64, 128, 256), embedding_dim=1280, n_classes=10_932)
SOUNDSCAPE_CHUNKS = 48  # a BirdCLEF 2024 test soundscape: 4 min, the unit of the paper's 9.4 s -> 1.2 s


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, default=48, help="real 5 s chunks to compare outputs on")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", default=None, help="also write the figures here")
    args = ap.parse_args()

    soundscape = sorted((MINICOMP / "test_soundscapes").glob("*.ogg"))[0]
    chunks = load_chunks(soundscape, PERCH_LIKE.sample_rate).chunks[: args.chunks]
    results: dict = {
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} logical CPUs",
        "spec": asdict(PERCH_LIKE),
        "input": f"{len(chunks)} chunks of {soundscape.name}",
        "batch": args.batch,
        "repeats": args.repeats,
    }
    with tempfile.TemporaryDirectory() as tmp:
        sm = build_standin_encoder(Path(tmp) / "saved_model", PERCH_LIKE)
        ref, call = ck.run_saved_model(sm, chunks, batch_size=args.batch)
        batch = np.ascontiguousarray(chunks[: args.batch])
        results["saved_model"] = {
            "s_per_chunk": ck.median_seconds(lambda: call(batch), args.repeats) / args.batch
        }
        for q in bc.QUANTIZE:
            t0 = time.perf_counter()
            r = bc.compile_saved_model(sm, Path(tmp) / f"perch_{q}.tflite", quantize=q)
            convert_s = time.perf_counter() - t0
            got = ck.run_signature(r.path, chunks, batch_size=args.batch)
            entry = {
                "size_mb": r.size / 1e6,
                "convert_s": convert_s,
                "select_tf_ops": r.select_tf_ops,
                "accuracy": ck.agreement(ref, got, {"embedding": "embedding", "logits": "logits"}),
            }
            for threads in (1, 2):
                runner = ck.signature_runner(r.path, args.batch, batch.shape[1], threads)
                entry[f"s_per_chunk_{threads}t"] = (
                    ck.median_seconds(lambda runner=runner: runner.run(batch), args.repeats) / args.batch
                )
            results[f"tflite_{q}"] = entry
    base = results["saved_model"]["s_per_chunk"]
    for key in ("saved_model", "tflite_none", "tflite_dynamic"):
        e = results[key]
        s = e.get("s_per_chunk", e.get("s_per_chunk_1t"))
        e["s_per_soundscape_4min"] = s * SOUNDSCAPE_CHUNKS
        e["speedup_vs_saved_model"] = base / s
    print(json.dumps(results, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
