"""`birdkit infer --data-dir DIR --out submission.csv [--models DIR] [--passthrough birdnet] [--workers N]`."""

from __future__ import annotations

import argparse

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
    p.add_argument("--workers", type=int, default=None, help="scoring processes (default: one per core)")
    p.add_argument("--profile", default=None, help="write the run's profile JSON here")
    p.add_argument("--split", default="test_soundscapes", help="folder of the competition to score")
    p.add_argument("--limit", type=int, default=None, help="first N files only")
    p.add_argument(
        "--windows", default=None, help="BirdNET windows: paper ([0,3]+[2,5] s) or centre ([1,4] s)"
    )
    p.add_argument(
        "--budget-min", type=float, default=BUDGET_MIN, help="time limit the guard predicts against"
    )
    p.add_argument("--no-guard", action="store_true", help="never switch to the fastest configuration")
    p.add_argument(
        "--no-overlap", action="store_true", help="with one worker, decode inline instead of ahead"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from birdkit.infer import InferConfig, run_inference

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
    )
    r = run_inference(config)
    print(f"{r.submission}: {len(r.frame)} rows x {r.frame.shape[1] - 1} species")
    print(r.profile.summary())
    print(r.table)
    print(r.profile.stage_table())
    for e in r.errors:
        print(f"  prior rows ({e['rows']}): {e['file']}: {e['error']}")
    if r.unmapped:
        print(f"  {len(r.unmapped)} species the encoder cannot predict (scored 0): {' '.join(r.unmapped)}")
    if r.profile.guard.get("switched"):
        s = r.profile.guard["switched"]
        print(f"  budget guard switched after {s['after_files']} files: {s['from']} -> {s['to']}")
    if r.error:
        print(f"birdkit infer: error: {r.error}; {r.submission} holds the prior for the rows not scored")
        return 1
    return 0
