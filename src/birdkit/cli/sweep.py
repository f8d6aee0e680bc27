"""`birdkit sweep EMB_DIR [EMB_DIR ...] --out reports/sweep`: the paper's loss / ASL / sigmoidF1 / encoder grids."""

from __future__ import annotations

import argparse

from birdkit.cli.options import positive_int
from birdkit.cli.train import add_config_options, add_test_options, config_from_args, read_truth


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sweep", help="the paper's grids (Tables 3-5) -> results.csv and results.md")
    p.add_argument(
        "emb_dirs", nargs="+", help="embedding stores, one per encoder (the first runs every grid)"
    )
    p.add_argument("--out", default="reports/sweep", help="results and models folder")
    p.add_argument(
        "--grids",
        default="loss,asl,sigmoidf1,encoders",
        help="comma-separated subset of loss,asl,sigmoidf1,encoders",
    )
    p.add_argument(
        "--label-modes",
        default="none,call",
        help="comma-separated folder-label modes to cross with (none: ŷ, call: ŷ_species, all: weak labels)",
    )
    p.add_argument(
        "--max-runs", type=positive_int, default=None, help="stop after the first N runs of the plan"
    )
    add_config_options(p, "training")  # the grids set the head, loss and labels
    add_test_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from birdkit.workflows.sweep import run_sweep

    grids = [g.strip() for g in args.grids.split(",") if g.strip()]
    modes = [m.strip() for m in args.label_modes.split(",") if m.strip()]
    df = run_sweep(
        args.emb_dirs,
        args.out,
        config_from_args(args),
        grids=grids,
        label_modes=modes,
        tests=args.test_store,
        truth=read_truth(args),
        max_runs=args.max_runs,
    )
    print(f"{args.out}/results.csv, results.md: {len(df)} runs")
    cols = [c for c in ("name", "val_f1", "val_roc_auc", "test_roc_auc") if c in df and df[c].notna().any()]
    print(df[cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    return 0
