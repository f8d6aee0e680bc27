"""`birdkit mix DATA_DIR --out MIX_DIR`: a labelled validation set of training clips in real soundscape background."""

from __future__ import annotations

import argparse


def _pair(kind: type) -> object:
    def parse(text: str) -> tuple:
        try:
            parts = [kind(v) for v in text.split(",")]
        except ValueError:
            parts = []
        if len(parts) != 2:
            raise argparse.ArgumentTypeError(f"{text!r}: give two comma-separated numbers, LO,HI")
        return tuple(parts)

    return parse


def add_parser(sub: argparse._SubParsersAction) -> None:
    from birdkit.mix import MixConfig

    d = MixConfig()
    p = sub.add_parser("mix", help="mix training clips into unlabeled soundscapes: a labelled validation set")
    p.add_argument("data_dir", help="the competition folder (train_audio/, unlabeled_soundscapes/)")
    p.add_argument("--out", required=True, help="the validation folder to write (a competition folder)")
    p.add_argument("--files", type=int, default=d.files, help="soundscapes to write")
    p.add_argument("--seconds", type=int, default=d.seconds, help="length of each soundscape")
    p.add_argument("--species", type=_pair(int), default=d.species, help="species per soundscape, LO,HI")
    p.add_argument("--calls", type=_pair(int), default=d.calls, help="calls of a passing species, LO,HI")
    p.add_argument("--singers", type=float, default=d.singers, help="share of species singing a bout")
    p.add_argument("--snr-db", type=_pair(float), default=d.snr_db, help="call SNR range in dB, LO,HI")
    p.add_argument("--holdout", type=float, default=d.holdout, help="share of each species' clips to mix")
    p.add_argument("--seed", type=int, default=d.seed)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from birdkit.mix import MixConfig, mix

    # every MixConfig field has its option of the same name (call_seconds keeps its default)
    config = MixConfig(**{f.name: getattr(args, f.name) for f in fields(MixConfig) if hasattr(args, f.name)})
    table = mix(args.data_dir, args.out, config)
    print(
        f"{args.out}: {config.files} soundscapes of {config.seconds} s, {len(table)} calls of "
        f"{table['species'].nunique() if len(table) else 0} species; labels in test_labels_5s.csv"
    )
    return 0
