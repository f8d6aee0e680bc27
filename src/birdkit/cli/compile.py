"""`birdkit compile SAVED_MODEL --out encoders/NAME.tflite [--quantize dynamic] [--check AUDIO]`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from birdkit.package.compile import QUANTIZE, SELECT_TF_OPS


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compile", help="TensorFlow SavedModel encoder -> TFLite (builtins, select TF ops if needed)"
    )
    p.add_argument("saved_model", help="SavedModel folder (saved_model.pb + variables/)")
    p.add_argument("--out", required=True, help="output .tflite; its card goes beside it as .json")
    p.add_argument("--signature", default="serving_default", help="signature to convert")
    p.add_argument(
        "--quantize", choices=QUANTIZE, default="none", help="dynamic: int8 weights (dynamic range)"
    )
    p.add_argument(
        "--select-tf-ops",
        choices=SELECT_TF_OPS,
        default="auto",
        help="auto: builtins, falling back to SELECT_TF_OPS when an op has no builtin kernel",
    )
    p.add_argument("--sample-rate", type=int, default=32_000, help="the encoder's input sample rate")
    p.add_argument("--labels", default=None, help="text file, one logit class per line (for species mapping)")
    p.add_argument(
        "--check",
        default=None,
        metavar="AUDIO",
        help="audio file or folder: compare with the SavedModel (accuracy, speed) on its 5 s chunks",
    )
    p.add_argument("--check-chunks", type=int, default=32, help="chunks to check on")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from birdkit.package.compile import CompileError, check_compiled, compile_saved_model, record_check

    classes = None
    if args.labels:
        classes = [ln.strip() for ln in Path(args.labels).read_text().splitlines() if ln.strip()]
    try:
        r = compile_saved_model(
            args.saved_model,
            args.out,
            signature=args.signature,
            quantize=args.quantize,
            select_tf_ops=args.select_tf_ops,
            sample_rate=args.sample_rate,
            classes=classes,
        )
    except CompileError as exc:
        print(f"birdkit compile: error: {exc}", file=sys.stderr)
        return 2
    print(
        f"{r.path}: {r.size / 1e6:.2f} MB in {r.seconds:.1f} s, quantize {r.quantize}, "
        f"select TF ops: {', '.join(r.flex_ops) if r.flex_ops else 'none'}"
    )
    if r.select_tf_ops:
        print(
            "  note: this graph needs an interpreter with the Flex delegate (tf.lite.Interpreter in a TensorFlow "
            "build that links it, as on Kaggle); ai_edge_litert cannot run it"
        )
    if args.check:
        chunks = _check_chunks(Path(args.check), args.sample_rate, args.check_chunks)
        if r.select_tf_ops:
            print("  check skipped: no Flex-capable interpreter here")
            return 0
        c = check_compiled(args.saved_model, r.path, chunks, signature=args.signature)
        record_check(r.path, c)
        print(json.dumps({k: c[k] for k in ("accuracy", "seconds_per_chunk", "speedup")}, indent=2))
    return 0


def _check_chunks(path: Path, sample_rate: int, n: int):
    """Up to ``n`` 5 s chunks from an audio file or the files of a folder, at the encoder's rate."""
    import numpy as np

    from birdkit.audio import AUDIO_SUFFIXES, load_chunks

    files = (
        [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    )
    got = []
    for f in files:
        got.append(load_chunks(f, sample_rate).chunks)
        if sum(len(c) for c in got) >= n:
            break
    if not got:
        raise SystemExit(f"{path}: no audio to check on")
    return np.concatenate(got)[:n]
