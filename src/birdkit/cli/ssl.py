"""`birdkit ssl pretrain DATA --splits unlabeled_soundscapes train_audio --out models/ssl`: our own encoder."""

from __future__ import annotations

import argparse
from dataclasses import fields

from birdkit.competition import SPLITS

DEFAULT_MINUTES = 5.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ssl", help="self-supervised encoder: pretrain a small ViT on unlabelled audio")
    ssl_sub = p.add_subparsers(dest="ssl_command", required=True)
    t = ssl_sub.add_parser(
        "pretrain",
        help="pretrain (or resume) a ViT on log-mel patches; writes encoder.onnx for `--encoder ssl`",
        description="Masked-patch reconstruction (mae), joint embedding with an EMA target (jepa) or VICReg on "
        "every 5 s window of the splits. Run the same command again after a kill to resume.",
    )
    t.add_argument("data_dir", help="competition folder (BirdCLEF layout)")
    t.add_argument("--splits", nargs="+", default=["unlabeled_soundscapes", "train_audio"], choices=SPLITS)
    t.add_argument("--out", required=True, help="model folder (checkpoint, encoder.onnx, loss_curve.png)")
    t.add_argument("--objective", default="mae", choices=["mae", "jepa", "vicreg"])
    t.add_argument("--mask-ratio", type=float, default=0.6, help="share of patches hidden, 0.3-0.8 (0.6)")
    t.add_argument("--norm-pix", action="store_true", help="mae: reconstruct each patch standardised")
    t.add_argument("--size", default="small", choices=["tiny", "small", "base"], help="ViT size (small)")
    budget = t.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=None, help="training time budget (default 5)")
    budget.add_argument("--epochs", type=int, default=None, help="passes over the windows")
    t.add_argument("--batch-size", type=int, default=32)
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--limit", type=int, default=None, help="first N files of each split")
    t.add_argument("--threads", type=int, default=2, help="torch threads")
    t.add_argument("--checkpoint-every", type=float, default=30.0, help="seconds between checkpoints (30)")
    t.add_argument("--cache", default=None, help="log-mel cache folder (default OUT/cache)")
    t.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from birdkit.ssl.pretrain import PretrainConfig, pretrain

    given = {f.name: getattr(args, f.name) for f in fields(PretrainConfig) if hasattr(args, f.name)}
    if args.minutes is None and args.epochs is None:
        given["minutes"] = DEFAULT_MINUTES
    cfg = PretrainConfig(**given)
    r = pretrain(
        args.data_dir, args.out, cfg, args.cache, args.threads, args.checkpoint_every, not args.no_progress
    )
    resumed = f" (resumed at step {r.resumed_from})" if r.resumed_from else ""
    print(
        f"{r.out}: {cfg.objective} {cfg.size} on {r.windows} windows, {r.steps} steps ({r.epochs:.1f} epochs) "
        f"in {r.seconds:.0f} s{resumed}; loss {r.first_loss:.4f} -> {r.last_loss:.4f}"
    )
    print(
        f"  embed with: birdkit embed {args.data_dir} --encoder ssl --model {r.out} --split train_audio --out ..."
    )
    return 0
