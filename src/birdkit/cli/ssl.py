"""`birdkit ssl pretrain DATA --splits unlabeled_soundscapes train_audio --out models/ssl`: our own encoder."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import fields

from birdkit.competition import SPLITS
from birdkit.ssl.pooling import DEFAULT_POOL, POOLS

DEFAULT_MINUTES = 5.0


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ssl", help="self-supervised encoder: pretrain a small ViT on unlabelled audio")
    ssl_sub = p.add_subparsers(dest="ssl_command", required=True)
    t = _command(
        ssl_sub,
        "pretrain",
        run,
        "pretrain (or resume) a ViT on log-mel patches; writes encoder.tflite for `--encoder ssl`",
        "Masked-patch reconstruction (mae), joint embedding with an EMA target (jepa) or VICReg on every 5 s "
        "window of the splits. Run the same command again after a kill to resume.",
    )
    t.add_argument("data_dir", help="competition folder (BirdCLEF layout)")
    t.add_argument("--splits", nargs="+", default=["unlabeled_soundscapes", "train_audio"], choices=SPLITS)
    t.add_argument("--out", required=True, help="model folder (checkpoint, encoder.tflite, loss_curve.png)")
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
    t.add_argument("--pool", default=DEFAULT_POOL, choices=POOLS, help=f"embedding pooling ({DEFAULT_POOL})")
    t.add_argument("--no-progress", action="store_true")
    e = _command(
        ssl_sub,
        "export",
        run_export,
        "write a model folder's encoder.tflite/.onnx/.json again from encoder.pt (another --pool)",
        "Rebuild the graphs of a pretrained model from its weights, parity-checked against torch: to change "
        "the pooling, or to add encoder.tflite to a model made before the TFLite export.",
    )
    e.add_argument("model", help="model folder written by `birdkit ssl pretrain`")
    e.add_argument("--pool", default=None, choices=POOLS, help="embedding pooling (default: the model's own)")
    e.add_argument("--no-onnx", action="store_true", help="write the TFLite graph only")


def _command(
    sub: argparse._SubParsersAction, name: str, run: Callable, help: str, description: str
) -> argparse.ArgumentParser:
    c = sub.add_parser(name, help=help, description=description)
    c.set_defaults(run=run)
    return c


def run(args: argparse.Namespace) -> int:
    from birdkit.ssl.pretrain import PretrainConfig, pretrain

    given = {f.name: getattr(args, f.name) for f in fields(PretrainConfig) if hasattr(args, f.name)}
    if args.minutes is None and args.epochs is None:
        given["minutes"] = DEFAULT_MINUTES
    cfg = PretrainConfig(**given)
    r = pretrain(
        args.data_dir,
        args.out,
        cfg,
        args.cache,
        args.threads,
        args.checkpoint_every,
        not args.no_progress,
        args.pool,
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


def run_export(args: argparse.Namespace) -> int:
    from birdkit.ssl.artifacts import reexport

    card = reexport(args.model, args.pool, onnx=not args.no_onnx)
    graphs = ", ".join(
        f"{card[k]['file']} (parity {card[k]['parity_max_abs']:.1e})" for k in ("tflite", "onnx") if k in card
    )
    print(f"{args.model}: pool {card['pool']}, {card['embedding_dim']}-d; {graphs}")
    return 0
