"""`birdkit demo [--data-dir DIR] [--out DIR]`: the recommended recipe, end to end, on generated (or given) data."""

from __future__ import annotations

import argparse

from birdkit.cli.options import out_folder, positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run every stage on a generated mini competition (or --data-dir)")
    p.add_argument("--data-dir", default=None, help="a BirdCLEF competition folder; default: generate one")
    p.add_argument("--out", default="demo_out", help="where everything is written")
    p.add_argument(
        "--workers", type=positive_int, default=None, help="encoder processes (default: one per core)"
    )
    p.add_argument("--no-explore", action="store_true", help="skip the exploration report")
    p.add_argument("--trials", type=int, default=40, help="Optuna trials choosing the post-processing")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from birdkit.workflows.demo import run_demo

    out_folder(args.out)

    run_demo(args.out, args.data_dir, args.workers, explore=not args.no_explore, trials=args.trials)
    return 0
