"""`birdkit train EMB_DIR --loss asl --head linear --out models/NAME`."""

from __future__ import annotations

import argparse

from birdkit.cli.label import add_label_options


def parse_params(items: list[str] | None) -> dict:
    """``KEY=VALUE`` strings -> dict, numbers as floats."""
    out: dict = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--param {item!r}: expected KEY=VALUE, e.g. --param gamma_neg=2")
        try:
            out[key.strip()] = float(value)
        except ValueError:
            out[key.strip()] = value.strip()
    return out


def add_training_options(p: argparse.ArgumentParser) -> None:
    """Optimisation options shared with `birdkit sweep`."""
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=20)
    g.add_argument("--batch-size", type=int, default=None, help="default: n_train/20 within [32, 1000]")
    g.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    g.add_argument("--weight-decay", type=float, default=0.0)
    g.add_argument(
        "--patience", type=int, default=5, help="epochs without improvement before stopping; 0: never"
    )
    g.add_argument(
        "--monitor", choices=("roc_auc", "f1", "loss"), default="roc_auc", help="validation metric"
    )
    g.add_argument("--val-fraction", type=float, default=0.2, help="share of recordings held out")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--threads", type=int, default=None, help="torch threads (default: min(2, cores))")
    g.add_argument(
        "--test-store",
        nargs="+",
        default=[],
        help="store(s) of held-out windows to score, e.g. test soundscapes",
    )
    g.add_argument(
        "--truth", default=None, help="their ground truth CSV (row_id, labels), e.g. test_labels_5s.csv"
    )


def training_kwargs(args: argparse.Namespace) -> dict:
    return {
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "lr": args.lr,
        "weight_decay": args.weight_decay,
        "patience": args.patience,
        "monitor": args.monitor,
        "val_fraction": args.val_fraction,
        "seed": args.seed,
        "threads": args.threads,
    }


def read_truth(args: argparse.Namespace):
    import pandas as pd

    if args.test_store and not args.truth:
        raise SystemExit("--test-store needs --truth (the row_id,labels CSV, e.g. test_labels_5s.csv)")
    if not args.truth:
        return None
    return pd.read_csv(args.truth, dtype={"labels": str}, keep_default_na=False)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a head on an embedding store -> models/NAME/{head.pt,card.json}")
    p.add_argument("emb_dir", help="embedding store folder (labels.parquet from `birdkit label` if present)")
    p.add_argument("--out", required=True, help="model folder, e.g. models/birdnet-asl")
    p.add_argument("--name", default=None, help="model name in the card (default: the folder name)")
    p.add_argument("--loss", choices=("bce", "asl", "sigmoidf1", "focal"), default="asl")
    p.add_argument(
        "--param",
        action="append",
        metavar="KEY=VALUE",
        help="loss parameter, repeatable: asl gamma_pos (1) gamma_neg (4) clip (0.05); "
        "sigmoidf1 S (-30) E (0) on (probability|logits); focal gamma (2) alpha (-1: none)",
    )
    p.add_argument("--head", choices=("linear", "mlp"), default="linear")
    p.add_argument("--hidden", type=int, default=None, help="mlp hidden units (64, 128, 256; default 256)")
    p.add_argument("--dropout", type=float, default=0.0, help="mlp dropout")
    p.add_argument(
        "--init",
        choices=("random", "birdnet"),
        default="random",
        help="linear heads on BirdNET stores: start from BirdNET's own classifier rows",
    )
    add_label_options(p, defaults=False)
    add_training_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except ValueError as exc:  # a bad option value: say which, no traceback
        raise SystemExit(f"birdkit train: error: {exc}") from exc


def _run(args: argparse.Namespace) -> int:
    from birdkit.heads.train import train_head
    from birdkit.store.labels import LabelSpec

    spec = None
    if any(v is not None for v in (args.threshold, args.folder_labels, args.secondary_labels)):
        spec = LabelSpec(
            threshold=0.5 if args.threshold is None else args.threshold,
            folder=args.folder_labels or "call",
            secondary=bool(args.secondary_labels),
        )
    truth = read_truth(args)
    if len(args.test_store) > 1:
        raise SystemExit("birdkit train: error: give one --test-store (birdkit sweep takes one per encoder)")
    test = (args.test_store[0], truth) if args.test_store else None
    card = train_head(
        args.emb_dir,
        args.out,
        loss=args.loss,
        loss_params=parse_params(args.param),
        head=args.head,
        hidden=args.hidden,
        dropout=args.dropout,
        labels=spec,
        test=test,
        name=args.name,
        init=args.init,
        **training_kwargs(args),
    )
    m = card["metrics"]
    lab = card["labels"]
    print(
        f"{args.out}: {card['head']['kind']} head, {card['loss']['name']} loss, labels {lab['folder']} "
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
    return 0


def _f(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.4f}"
