"""`birdkit export MODELS... --out submission/dataset [--id OWNER/SLUG]`: trained heads -> Kaggle dataset folder."""

from __future__ import annotations

import argparse

from birdkit.package.export import DEFAULT_LICENSE, DEFAULT_SLUG, DEFAULT_TITLE, PLACEHOLDER_OWNER


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
    p.add_argument(
        "models",
        nargs="*",
        help="model folders (head.pt + card.json), or a folder of them; none with --encoder NAME: a passthrough "
        "dataset (the encoder alone, for `infer --passthrough NAME` and `tune --passthrough NAME`)",
    )
    p.add_argument("--out", default="submission/dataset", help="dataset folder to (re)write")
    p.add_argument(
        "--id",
        dest="dataset_id",
        metavar="OWNER/SLUG",
        help=f"default: USERNAME/{DEFAULT_SLUG} when Kaggle credentials name you (KAGGLE_USERNAME or kaggle.json); "
        f"without them {PLACEHOLDER_OWNER}/{DEFAULT_SLUG}, which `kaggle publish` refuses until you pass --id",
    )
    p.add_argument("--title", default=DEFAULT_TITLE, help="dataset title, 6-50 characters")
    p.add_argument(
        "--license", dest="license_name", metavar="NAME", default=DEFAULT_LICENSE, help="one licence"
    )
    p.add_argument(
        "--parity-store", help="store to check TFLite = PyTorch on (default: each card's training store)"
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
    from pathlib import Path

    from birdkit.errors import OptionError
    from birdkit.package.export import export

    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise OptionError(
            f"--out {args.out}: is a file; give a folder for the dataset (it is created or replaced)"
        )
    compiled, names = parse_encoders(args.encoder)
    if not args.models and not (compiled or names):
        raise OptionError(
            "give at least one model folder (made by `birdkit train`), or --encoder NAME for a passthrough "
            "dataset without heads"
        )
    options = {k: getattr(args, k) for k in ("dataset_id", "title", "license_name", "parity_store")}
    r = export(args.models, args.out, encoders=compiled, include_encoders=names, **options)
    for h in r.heads:
        print(
            f"heads/{h.name}.tflite: {h.in_dim} -> {h.out_dim} logits on {h.encoder}, parity max |diff| "
            f"{h.parity_max_abs:.2e} (tolerance {h.parity_tolerance:.1e}) on {h.parity_inputs}"
        )
    print(f"encoders: {', '.join(r.encoders) or 'none'}")
    for w in getattr(r, "wheels", []) or []:
        print(f"wheels/{Path(w).name}: installed offline by the notebook when its Python lacks it")
    print(f"{r.out}: {r.files} files, {r.bytes / 1e6:.1f} MB, dataset id {r.dataset_id}")
    if r.dataset_id.startswith(PLACEHOLDER_OWNER + "/"):
        print(
            f"note: no Kaggle username was found (no KAGGLE_USERNAME, no kaggle.json), so the id has the owner "
            f"{PLACEHOLDER_OWNER}; export again with --id YOUR_KAGGLE_USERNAME/{r.dataset_id.split('/', 1)[1]} "
            "before `birdkit kaggle publish`"
        )
    print(f"next: birdkit kaggle publish {r.out} --dry-run")
    return 0
