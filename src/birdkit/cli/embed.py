"""`birdkit embed DATA_DIR --encoder birdnet --split train_audio --out DIR`."""

from __future__ import annotations

import argparse

from birdkit.competition import SPLITS
from birdkit.encoders.options import add_encoder_arguments, encoder_options


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("embed", help="audio -> embedding store (Parquet), resumable")
    p.add_argument("data_dir", help="competition folder (BirdCLEF layout)")
    add_encoder_arguments(p)
    p.add_argument("--split", default="train_audio", choices=SPLITS)
    p.add_argument(
        "--out", required=True, help="store folder or URL (file://, s3://, gs://); an existing store resumes"
    )
    p.add_argument(
        "--workers", type=int, default=1, help="encoder processes (with --engine dask: a local cluster's)"
    )
    p.add_argument(
        "--engine",
        default="local",
        choices=["local", "dask"],
        help="local: a pool of processes here; dask: a Dask cluster (--scheduler, or a local one of --workers)",
    )
    p.add_argument("--scheduler", default=None, help="Dask scheduler address, e.g. tcp://HOST:8786")
    p.add_argument(
        "--wait",
        action="store_true",
        help="when another run is writing the store, wait for it instead of refusing",
    )
    p.add_argument(
        "--repair", action="store_true", help="move unreadable shards aside and embed their files again"
    )
    p.add_argument("--limit", type=int, default=None, help="first N files only")
    p.add_argument(
        "--shard-files", type=int, default=64, help="files per Parquet shard (what a kill can cost)"
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from birdkit.store.embed import embed_split

    options = encoder_options(args)
    how = ("workers", "limit", "shard_files", "engine", "scheduler", "wait", "repair")
    r = embed_split(
        args.data_dir, args.split, args.out, args.encoder, options, **{k: getattr(args, k) for k in how}
    )
    print(
        f"{r.out}: {r.files_done} files embedded ({r.files_skipped} already there), {r.rows} rows, "
        f"{r.audio_s / 3600:.3f} h of audio in {r.seconds:.1f} s, {len(r.errors)} unreadable"
    )
    for e in r.errors:
        print(f"  unreadable: {e['file']}: {e['error']}")
    if r.unmapped:
        print(f"  {len(r.unmapped)} species the encoder cannot predict: {' '.join(r.unmapped)}")
    return 0
