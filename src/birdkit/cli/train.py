"""`birdkit train EMB_DIR --loss asl --head linear --out models/NAME`.

The training options are generated from :class:`~birdkit.heads.card.TrainConfig`'s fields (their help text
is kept there); an option not given stays out of the namespace, so the defaults live in the dataclass alone.
"""

from __future__ import annotations

import argparse
import types
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Any

from birdkit.cli.label import add_label_options
from birdkit.cli.options import out_folder
from birdkit.errors import OptionError
from birdkit.heads.card import ModelCard, TrainConfig


def parse_params(items: list[str] | None) -> dict:
    """``KEY=VALUE`` strings -> dict, numbers as floats."""
    out: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise OptionError(f"--param {item!r}: expected KEY=VALUE, e.g. --param gamma_neg=2")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            out[key.strip()] = value.strip()
    return out


def _value_type(annotation: Any) -> type:
    """``int | None`` -> int: what argparse converts the option's text to."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if isinstance(annotation, types.UnionType) and len(args) == 1:
        return args[0]
    return typing.get_origin(annotation) or annotation


def add_config_options(p: argparse.ArgumentParser, group: str, title: str | None = None) -> None:
    """One option per TrainConfig field of ``group`` (``model`` or ``training``), named ``--field-name``."""
    hints = typing.get_type_hints(TrainConfig)
    g = p.add_argument_group(title or group)
    for f in fields(TrainConfig):
        if f.metadata.get("group") != group:
            continue
        kind = _value_type(hints[f.name])
        shown = "" if f.default is MISSING or f.default is None else f" (default: {f.default})"
        kwargs: dict[str, Any] = {"help": f.metadata["help"] + shown, "default": argparse.SUPPRESS}
        if kind is dict:  # KEY=VALUE pairs, repeatable
            kwargs.update(action="append", metavar=f.metadata.get("metavar"))
        elif kind is bool:  # a switch: off unless given
            kwargs.update(action="store_true", help=f.metadata["help"])
        else:
            kwargs.update(type=kind, choices=f.metadata.get("choices"))
        g.add_argument(f.metadata.get("flag") or "--" + f.name.replace("_", "-"), dest=f.name, **kwargs)


def config_from_args(args: argparse.Namespace, **given: Any) -> TrainConfig:
    """The TrainConfig of the options on the command line (plus ``given``); the rest keep their defaults."""
    for f in fields(TrainConfig):
        if f.name in vars(args) and f.name not in given:
            value = getattr(args, f.name)
            given[f.name] = parse_params(value) if isinstance(value, list) else value
    return TrainConfig(**given)


def add_test_options(p: argparse.ArgumentParser) -> None:
    """Held-out windows to score each head on (shared with `birdkit sweep`)."""
    g = p.add_argument_group("held-out scoring")
    g.add_argument(
        "--test-store",
        nargs="+",
        default=[],
        help="store(s) of held-out windows to score, e.g. test soundscapes",
    )
    g.add_argument(
        "--truth", default=None, help="their ground truth CSV (row_id, labels), e.g. test_labels_5s.csv"
    )


def read_truth(args: argparse.Namespace):
    import pandas as pd

    if args.test_store and not args.truth:
        raise OptionError("--test-store needs --truth (the row_id,labels CSV, e.g. test_labels_5s.csv)")
    if not args.truth:
        return None
    if not Path(args.truth).is_file():
        raise OptionError(
            f"--truth {args.truth}: no such file; give the row_id,labels CSV (test_labels_5s.csv)"
        )
    return pd.read_csv(args.truth, dtype={"labels": str}, keep_default_na=False)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a head on an embedding store -> models/NAME/{head.pt,card.json}")
    add_training_inputs(p)
    p.set_defaults(run=run)


def add_training_inputs(p: argparse.ArgumentParser) -> None:
    """The store, model folder, validation, config and held-out options (shared with `birdkit selftrain`)."""
    p.add_argument("emb_dir", help="embedding store folder (labels.parquet from `birdkit label` if present)")
    p.add_argument("--out", required=True, help="model folder, e.g. models/birdnet-asl")
    p.add_argument("--name", default=None, help="model name in the card (default: the folder name)")
    g = p.add_argument_group("validation that means something (labelled soundscapes, e.g. `birdkit mix`)")
    for flag, metavar, text in (
        (
            "--validation-store",
            "EMB_DIR",
            "store of labelled soundscapes (an embedded mix) that picks the best epoch",
        ),
        ("--validation-truth", "CSV", "its row_id,labels CSV (default: MIX_DIR/test_labels_5s.csv)"),
        ("--exclude-mix", "MIX_DIR", "leave out the recordings this `birdkit mix` set drew from"),
    ):
        g.add_argument(flag, default=None, metavar=metavar, help=text)
    add_config_options(p, "model", "head and loss")
    add_label_options(p, defaults=False)
    add_config_options(p, "training")
    add_test_options(p)


def training_inputs(args: argparse.Namespace) -> dict[str, Any]:
    """The config, held-out test, excluded recordings and validation set the options name."""
    from birdkit.store.labels import LabelSpec

    labels = None
    if any(v is not None for v in (args.threshold, args.folder_labels, args.secondary_labels)):
        labels = LabelSpec(
            threshold=0.5 if args.threshold is None else args.threshold,
            folder=args.folder_labels or "call",
            secondary=bool(args.secondary_labels),
        )
    config = config_from_args(args, labels=labels)
    truth = read_truth(args)
    if len(args.test_store) > 1:
        raise OptionError("--test-store: give one (birdkit sweep takes one per encoder)")
    test = (args.test_store[0], truth) if args.test_store else None
    exclude: set[str] = set()
    if args.exclude_mix:
        from birdkit.mix import mixed_clips

        exclude = mixed_clips(args.exclude_mix)
    validation = None
    if args.validation_store:
        import pandas as pd

        where = args.validation_truth or (
            f"{args.exclude_mix}/test_labels_5s.csv" if args.exclude_mix else None
        )
        if not where:
            raise OptionError("--validation-store needs --validation-truth (or --exclude-mix MIX_DIR)")
        validation = (args.validation_store, pd.read_csv(where, dtype={"labels": str}, keep_default_na=False))
    return {"config": config, "test": test, "exclude_files": exclude, "validation": validation}


def run(args: argparse.Namespace) -> int:
    from birdkit.heads.train import train_head

    out_folder(args.out)
    inputs = training_inputs(args)
    card = train_head(args.emb_dir, args.out, inputs.pop("config"), name=args.name, **inputs)
    print_card(args.out, card)
    return 0


def print_card(out: str, card: ModelCard) -> None:
    """What `train` and `selftrain` print about the head they wrote."""
    m, lab = card.metrics, card.labels
    residual = " residual over the encoder's logits," if card.head.get("base_index") is not None else ""
    print(
        f"{out}: {card.head['kind']}{residual} head, {card.loss['name']} loss, labels {lab['folder']} "
        f"(threshold {lab['threshold']}, {lab['source']}); best epoch {m['best_epoch']} of {m['epochs_run']}, "
        f"{m['train_seconds']:.1f} s"
    )
    for part in ("val", "test"):
        if part in m:
            r = m[part]
            print(
                f"  {part}: ROC-AUC {_f(r['roc_auc'])}  macro-F1 {_f(r['f1'])}  mAP {_f(r['map'])}  "
                f"({r['windows']} windows, {r['scored_species']} species scored)"
            )
    val = m.get("val", {})
    if "passthrough" in val and val["roc_auc"] is not None:
        verdict = "kept the start: no epoch beat passthrough" if m["best_epoch"] == 0 else "above passthrough"
        print(f"  passthrough on the same windows: {_f(val['passthrough'])} ({verdict})")
    if val.get("set", "").startswith("held-out clips"):
        print(
            "  note: validated on pseudo-labels from the surrogate itself; give --validation-store (a `birdkit "
            "mix` set) for a score that means something"
        )


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"
