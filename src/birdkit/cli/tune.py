"""`birdkit tune VALIDATION [--models DATASET | --passthrough birdnet] [--cooccurrence STORE ...] --apply DATASET`:
choose the post-processing (smoothing, file prior, blend, ensemble, co-occurrence prior) on labelled validation
soundscapes (`birdkit mix`), with a report."""

from __future__ import annotations

import argparse

from birdkit.cli.options import probability


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tune", help="choose post-processing on a labelled validation set (Optuna)")
    p.add_argument("validation", help="a folder with test_soundscapes/ + test_labels_5s.csv (`birdkit mix`)")
    p.add_argument("--models", default=None, help="exported dataset whose heads score (`birdkit export`)")
    p.add_argument("--passthrough", default=None, help="score with this encoder's own logits (birdnet)")
    p.add_argument("--trials", type=int, default=60, help="Optuna trials")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="reports/tune", help="where tune.md and tune.json go")
    p.add_argument("--apply", default=None, help="write the choice as this dataset's postprocess.json")
    p.add_argument(
        "--cooccurrence",
        nargs="+",
        default=None,
        metavar="STORE",
        help="stores of unlabelled soundscapes (`birdkit embed`): mine co-occurrence rules on their pseudo-labels "
        "and let the search weigh the co-occurrence prior (0 allowed)",
    )
    p.add_argument(
        "--cooccurrence-threshold",
        type=probability,
        default=0.5,
        help="a species is in a recording where the store's classifier gives it this probability (equation 1)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from birdkit.errors import OptionError
    from birdkit.infer.postprocess import describe
    from birdkit.workflows.tune import tune

    if not args.models and not args.passthrough:
        raise OptionError("give --models DATASET (exported heads) or --passthrough birdnet")
    r = tune(
        args.validation,
        args.models,
        args.passthrough,
        args.trials,
        args.seed,
        args.out,
        args.apply,
        cooccurrence=args.cooccurrence,
        cooccurrence_threshold=args.cooccurrence_threshold,
    )
    print(f"no post-processing: {r.baseline:.4f}; chosen {describe(r.best)}: {r.score:.4f}")
    for c in r.components:  # each lever's best validation score on and off: the ones that do not win are off
        on, off = (f"{c[k]:.4f}" if c[k] is not None else "-" for k in ("on", "off"))
        print(f"  {c['component']:24s} on {on}  off {off}  {'kept' if c['chosen'] else 'off'}")
    print(f"report: {r.report}" + (f"; applied to {args.apply}/postprocess.json" if args.apply else ""))
    return 0
