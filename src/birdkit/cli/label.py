"""`birdkit label EMB_DIR [--surrogate STORE] [--threshold 0.5] [--folder-labels MODE] [--secondary-labels]`."""

from __future__ import annotations

import argparse

from birdkit.cli.options import non_negative_int


def add_label_options(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    """The options that make labels (shared with `birdkit train`); ``defaults=False`` leaves them None."""
    g = p.add_argument_group("labels (the paper's equations 1-4)")
    g.add_argument(
        "--threshold", type=float, default=0.5 if defaults else None, help="p_threshold on σ(logits) (0.5)"
    )
    mode = g.add_mutually_exclusive_group()
    mode.add_argument(
        "--folder-labels",
        choices=("call", "none", "all"),
        default="call" if defaults else None,
        help="call: ŷ_species, the folder species on windows with a call (eq. 4, default); none: ŷ only; "
        "all: ŷ plus the folder species on every window of a train clip (weak labels; use it when the "
        "surrogate does not know the species, as in the synthetic demo)",
    )
    mode.add_argument(
        "--no-folder-labels",
        dest="folder_labels",
        action="store_const",
        const="none",
        help="same as --folder-labels none: ŷ only",
    )
    g.add_argument(
        "--secondary-labels",
        action="store_true",
        default=False if defaults else None,
        help="the folder one-hot also holds the clip's secondary_labels",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "label", help="pseudo multi-labels from the surrogate's logits -> EMB_DIR/labels.parquet"
    )
    p.add_argument("emb_dir", help="embedding store folder (from `birdkit embed`)")
    add_label_options(p)
    p.add_argument(
        "--surrogate",
        metavar="STORE",
        help="take the pseudo-labels from this store's logits (e.g. emb/perch), joined by row_id, instead of "
        "EMB_DIR's own; any encoder with logits can be the surrogate",
    )
    p.add_argument(
        "--top", type=non_negative_int, default=0, help="list only the N most labelled species (default: all)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from birdkit.store import load
    from birdkit.store.labels import LabelSpec, label_store

    spec = LabelSpec(threshold=args.threshold, folder=args.folder_labels, secondary=args.secondary_labels)
    emb = load(args.emb_dir)
    surrogate = load(args.surrogate) if args.surrogate else None
    path, summary = label_store(emb, spec, surrogate)
    source = f", from {args.surrogate}'s logits" if surrogate is not None else ""
    print(f"{path}: labels {spec.name} (threshold {spec.threshold}, folder labels: {spec.folder}{source})")
    print(summary.format(top=args.top))
    return 0
