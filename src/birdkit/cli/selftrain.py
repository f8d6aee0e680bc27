"""`birdkit selftrain EMB_DIR --soundscapes STORE --out DIR --rounds 2 --power 2 --validation-store VAL ...`.

Noisy-student self-training on unlabelled soundscapes (:mod:`birdkit.heads.selftrain`): the training options are
`birdkit train`'s; the student's noise is ``--mixup``, ``--feature-noise`` or ``--dropout``.
"""

from __future__ import annotations

import argparse

from birdkit.cli.options import out_folder, positive_float, positive_int
from birdkit.cli.train import add_training_inputs, print_card, training_inputs
from birdkit.errors import OptionError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "selftrain",
        help="noisy-student self-training on unlabelled soundscapes -> DIR/{head.pt,card.json,round*/}",
    )
    add_training_inputs(p)
    g = p.add_argument_group("self-training")
    g.add_argument(
        "--soundscapes",
        required=True,
        metavar="STORE",
        help="store of unlabelled soundscapes (e.g. `birdkit embed DATA --split unlabeled_soundscapes`)",
    )
    g.add_argument(
        "--rounds", type=positive_int, default=2, help="rounds after round 0 (the clips alone); round 1's teacher is "
        "the encoder's own classifier, later rounds' the previous round's head (default: 2)",
    )  # fmt: skip
    g.add_argument(
        "--power",
        type=positive_float,
        default=1.0,
        help="soft pseudo-label = probability ** power (default: 1)",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from birdkit.heads.selftrain import self_train

    out_folder(args.out)
    inputs = training_inputs(args)
    if inputs["validation"] is None:
        raise OptionError(
            "selftrain chooses its epochs and rounds on labelled soundscapes: give --validation-store (and "
            "--validation-truth or --exclude-mix); make a set with `birdkit mix`"
        )
    card = self_train(
        args.emb_dir,
        args.soundscapes,
        args.out,
        inputs.pop("config"),
        rounds=args.rounds,
        power=args.power,
        name=args.name,
        **inputs,
    )
    print_card(args.out, card)
    for r in card.metrics["selftrain"]["rounds"]:
        v = r["val_roc_auc"]
        chosen = "  <- chosen" if r["round"] == card.metrics["selftrain"]["chosen"] else ""
        print(
            f"  round {r['round']} (teacher: {r['teacher']}): validation {'n/a' if v is None else f'{v:.4f}'}{chosen}"
        )
    return 0
