"""`birdkit compile SAVED_MODEL --out encoders/NAME.tflite [--quantize dynamic] [--check AUDIO]`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from birdkit.cli.options import positive_int
from birdkit.package.compile import DEFAULT_SIGNATURE, QUANTIZE, SELECT_TF_OPS
from birdkit.package.errors import CompileError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compile", help="TensorFlow SavedModel encoder -> TFLite (builtins, select TF ops if needed)"
    )
    p.add_argument("saved_model", help="SavedModel folder (saved_model.pb + variables/)")
    p.add_argument("--out", required=True, help="output .tflite; its card goes beside it as .json")
    p.add_argument("--signature", default=DEFAULT_SIGNATURE, help="signature to convert")
    p.add_argument(
        "--quantize", choices=QUANTIZE, default="none", help="dynamic: int8 weights (dynamic range)"
    )
    p.add_argument(
        "--select-tf-ops", choices=SELECT_TF_OPS, default="auto", help="auto: only where builtins fall short"
    )
    p.add_argument("--sample-rate", type=positive_int, default=32_000, help="the encoder's input sample rate")
    p.add_argument("--labels", default=None, help="text file, one logit class per line (for species mapping)")
    p.add_argument("--check", metavar="AUDIO", help="audio file or folder: compare with the SavedModel on it")
    p.add_argument("--check-chunks", type=positive_int, default=32, help="chunks to check on")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from birdkit.package.check import check_compiled, record_check
    from birdkit.package.compile import compile_saved_model

    if Path(args.out).is_dir():
        raise CompileError(
            f"--out {args.out}: is a folder; give a file name, e.g. {Path(args.out) / 'encoder.tflite'}"
        )
    if args.check and not Path(args.check).exists():
        raise CompileError(
            f"--check {args.check}: no such file or folder; give audio to compare on, or drop --check"
        )
    options = {k: getattr(args, k) for k in ("signature", "quantize", "select_tf_ops", "sample_rate")}
    r = compile_saved_model(args.saved_model, args.out, classes=_labels(args.labels), **options)
    flex = ", ".join(r.flex_ops) if r.flex_ops else "none"
    print(
        f"{r.path}: {r.size / 1e6:.2f} MB in {r.seconds:.1f} s, quantize {r.quantize}, select TF ops: {flex}"
    )
    if r.select_tf_ops:
        print(
            "  note: this graph needs an interpreter with the Flex delegate (tf.lite.Interpreter in a "
            "TensorFlow build that links it, as on Kaggle); ai_edge_litert cannot run it"
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


def _labels(path: str | None) -> list[str] | None:
    """The logit classes, one per line of ``--labels``."""
    if path is None:
        return None
    if not Path(path).is_file():
        raise CompileError(f"--labels {path}: no such file; give a text file with one class per line")
    return [ln.strip() for ln in Path(path).read_text().splitlines() if ln.strip()]


def _check_chunks(path: Path, sample_rate: int, n: int) -> np.ndarray:
    """Up to ``n`` 5 s chunks from an audio file or the files of a folder, at the encoder's rate."""
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
        raise CompileError(f"--check {path}: no audio to check on; give an audio file or a folder of them")
    return np.concatenate(got)[:n]
