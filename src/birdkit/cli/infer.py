"""`birdkit infer --data-dir DIR --out submission.csv [--models DIR] [--passthrough birdnet] [--workers N]`.

A run that fails before it scores (a wrong path, a broken model, a bad option) leaves ``--out`` as it was. Files
that cannot be read still get their rows (the prior), listed at the end; exit code 1 says some did.
"""

from __future__ import annotations

import argparse
import sys

from birdkit.cli.options import positive_float, positive_int
from birdkit.profile import BUDGET_MIN


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "infer", help="competition soundscapes -> submission.csv, profiled against the CPU budget"
    )
    p.add_argument(
        "--data-dir",
        required=True,
        help="competition folder: test_soundscapes/, sample_submission.csv, taxonomy",
    )
    p.add_argument(
        "--out", default="submission.csv", help="submission file to write (default: submission.csv)"
    )
    p.add_argument(
        "--models", default=None, help="exported model folder (`birdkit export`): heads/, encoders/"
    )
    p.add_argument(
        "--passthrough",
        default=None,
        metavar="ENCODER",
        help="score with ENCODER's own logits, no head (birdnet)",
    )
    p.add_argument(
        "--workers", type=positive_int, default=None, help="scoring processes (default: one per core)"
    )
    p.add_argument("--profile", default=None, help="write the run's profile JSON here")
    p.add_argument("--split", default="test_soundscapes", help="folder of the competition to score")
    p.add_argument("--limit", type=positive_int, default=None, help="first N files only")
    p.add_argument(
        "--windows", default=None, help="BirdNET windows: paper ([0,3]+[2,5] s) or centre ([1,4] s)"
    )
    p.add_argument(
        "--budget-min", type=positive_float, default=BUDGET_MIN, help="time limit the guard predicts against"
    )
    p.add_argument("--no-guard", action="store_true", help="never switch to the fastest configuration")
    p.add_argument(
        "--no-overlap", action="store_true", help="with one worker, decode inline instead of ahead"
    )
    p.add_argument(
        "--allow-missing-species",
        action="store_true",
        help="score with heads that lack some submission species (their columns get the prior)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from birdkit.errors import OptionError
    from birdkit.infer import InferConfig, run_inference
    from birdkit.workflows.score import labels_exist, score_file

    if args.profile and Path(args.profile).is_dir():
        raise OptionError(f"--profile {args.profile}: is a folder; give a file name, e.g. profile.json")
    config = InferConfig(
        args.data_dir,
        args.out,
        models=args.models,
        passthrough=args.passthrough,
        workers=args.workers,
        profile=args.profile,
        split=args.split,
        limit=args.limit,
        windows=args.windows,
        budget_min=args.budget_min,
        guard=not args.no_guard,
        overlap=not args.no_overlap,
        progress=not args.quiet,
        fallback=False,  # a usage error is not Kaggle: leave --out as it was
        allow_missing_species=args.allow_missing_species,
    )
    r = run_inference(config)
    print(f"{r.submission}: {len(r.frame)} rows x {r.frame.shape[1] - 1} species")
    print(r.profile.summary())
    print(r.table)
    print(r.profile.stage_table())
    if r.unmapped:
        print(f"  {len(r.unmapped)} species the encoder cannot predict (scored 0): {' '.join(r.unmapped)}")
    if r.missing_species:
        print(
            f"WARNING: {len(r.missing_species)} species no head predicts; their columns hold the prior: "
            + " ".join(r.missing_species),
            file=sys.stderr,
        )
    if labels_exist(args.data_dir, args.split) and args.limit is None:
        print(score_file(r.submission, args.data_dir).summary())
    failed = [e for e in r.errors if not e.get("partial")]
    for e in r.errors:
        kind = "rows with the prior" if not e.get("partial") else "rows as listed"
        print(f"  {kind} ({e['rows']}): {e['file']}: {e['error']}", file=sys.stderr)
    if failed:
        print(
            f"birdkit infer: {len(failed)} file(s) got the prior instead of predictions (listed above); "
            f"{r.submission} is complete and valid",
            file=sys.stderr,
        )
        return 1
    return 0
