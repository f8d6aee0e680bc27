"""`birdkit score SUBMISSION --data-dir DATA [--truth FILE]`: the competition metric of a submission file."""

from __future__ import annotations

import argparse

from birdkit.cli.options import probability

HELP = "a submission against ground truth: competition metric, macro-F1, cmAP, per species"
# (flags, options) of each argument, in the order --help lists them
ARGUMENTS = [
    (("submission",), {"help": "submission CSV (row_id + species columns)"}),
    (("--data-dir",), {"help": "competition folder: its test_labels_5s.csv is the truth"}),
    (("--truth",), {"help": "ground truth CSV (row_id, labels) instead"}),
    (("--threshold",), {"type": probability, "default": 0.5, "help": "probability threshold of macro-F1"}),
    (("--species",), {"action": "store_true", "help": "also print the per-species table"}),
    (("--out",), {"help": "also write the per-species table as CSV here"}),
]


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("score", help=HELP, description=HELP)
    for flags, options in ARGUMENTS:
        p.add_argument(*flags, **options)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from birdkit.errors import OptionError
    from birdkit.io import atomic_write_text
    from birdkit.workflows.score import score_file

    if args.out and Path(args.out).is_dir():
        raise OptionError(
            f"--out {args.out}: is a folder; give a file name, e.g. {Path(args.out) / 'species.csv'}"
        )
    r = score_file(args.submission, args.data_dir, args.truth, args.threshold)
    print(r.summary())
    if args.species:
        print(r.species_table())
    if args.out:
        atomic_write_text(Path(args.out), r.per_species.to_csv(index=False))
        print(f"per-species table: {args.out}")
    return 0
