"""`birdkit export MODELS... --out submission/dataset [--id OWNER/SLUG]`: trained heads -> Kaggle dataset folder."""

from __future__ import annotations

import argparse
import sys

from birdkit.package.export import DEFAULT_LICENSE, DEFAULT_TITLE


def parse_encoders(items: list[str] | None) -> tuple[dict[str, str], list[str]]:
    """``NAME=PATH.tflite`` (a compiled encoder) or ``NAME`` (a built-in one, e.g. birdnet) -> (compiled, names)."""
    compiled: dict[str, str] = {}
    names: list[str] = []
    for item in items or []:
        name, sep, path = item.partition("=")
        if sep:
            compiled[name.strip()] = path.strip()
        else:
            names.append(name.strip())
    return compiled, names


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="trained heads -> TFLite + encoders + kit = a Kaggle dataset folder")
    p.add_argument("models", nargs="+", help="model folders (head.pt + card.json), or a folder of them")
    p.add_argument("--out", default="submission/dataset", help="dataset folder to (re)write")
    p.add_argument(
        "--id",
        dest="dataset_id",
        default=None,
        help="Kaggle dataset id OWNER/SLUG (default: your Kaggle username / birdkit-models)",
    )
    p.add_argument("--title", default=DEFAULT_TITLE, help="dataset title, 6-50 characters")
    p.add_argument(
        "--license", default=DEFAULT_LICENSE, help="one Kaggle licence name (BirdNET is CC BY-NC-SA 4.0)"
    )
    p.add_argument(
        "--parity-store",
        default=None,
        help="embedding store to check TFLite = PyTorch on (default: each card's training store)",
    )
    p.add_argument(
        "--encoder",
        action="append",
        default=[],
        metavar="NAME[=FILE.tflite]",
        help="a compiled encoder for heads on NAME (`birdkit compile`), or a built-in one to include",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from birdkit.kaggle import KaggleError
    from birdkit.package.compile import CompileError
    from birdkit.package.export import ExportError, export

    compiled, names = parse_encoders(args.encoder)
    try:
        r = export(
            args.models,
            args.out,
            dataset_id=args.dataset_id,
            title=args.title,
            license_name=args.license,
            parity_store=args.parity_store,
            encoders=compiled,
            include_encoders=names,
        )
    except (ExportError, KaggleError, CompileError) as exc:
        print(f"birdkit export: error: {exc}", file=sys.stderr)
        return 2
    for h in r.heads:
        print(
            f"heads/{h.name}.tflite: {h.in_dim} -> {h.out_dim} logits on {h.encoder}, parity max |diff| "
            f"{h.parity_max_abs:.2e} (tolerance {h.parity_tolerance:.1e}) on {h.parity_inputs}"
        )
    print(f"encoders: {', '.join(r.encoders) or 'none'}")
    print(f"{r.out}: {r.files} files, {r.bytes / 1e6:.1f} MB, dataset id {r.dataset_id}")
    print(f"next: birdkit kaggle publish {r.out} --dry-run")
    return 0
