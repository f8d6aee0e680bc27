"""`birdkit kaggle download|publish|push [--dry-run]`: the Kaggle CLI, called as a subprocess."""

from __future__ import annotations

import argparse
import sys

from birdkit.kaggle import COMPETITION, DEFAULT_KERNEL_TITLE


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "kaggle", help="download the competition, publish the model dataset, push the notebook"
    )
    ks = p.add_subparsers(dest="kaggle_command", required=True)

    d = ks.add_parser("download", help=f"kaggle competitions download {COMPETITION}, unzip, check the layout")
    d.add_argument("--out", default=f"data/{COMPETITION}", help="folder to unzip into")
    d.add_argument("--competition", default=COMPETITION)
    d.add_argument("--keep-zip", action="store_true", help="keep the zip after unzipping")
    d.add_argument("--dry-run", action="store_true", help="print the kaggle command, run nothing")
    d.set_defaults(run=run_download)

    u = ks.add_parser("publish", help="kaggle datasets create (first time) / version (after) of an export")
    u.add_argument(
        "dataset", nargs="?", default="submission/dataset", help="exported folder (`birdkit export`)"
    )
    u.add_argument("-m", "--message", default="birdkit export", help="version notes")
    u.add_argument(
        "--create", dest="mode", action="store_const", const="create", help="force `datasets create`"
    )
    u.add_argument(
        "--new-version", dest="mode", action="store_const", const="version", help="force `version`"
    )
    u.add_argument("--public", action="store_true", help="create the dataset public (default private)")
    u.add_argument(
        "--dry-run", action="store_true", help="print the kaggle command and files, upload nothing"
    )
    u.set_defaults(run=run_publish, mode="auto")

    k = ks.add_parser(
        "push", help="write kernel-metadata.json beside the inference notebook; kaggle kernels push"
    )
    k.add_argument("--dataset", default="submission/dataset", help="exported folder the notebook mounts")
    k.add_argument("--kernel-dir", default=None, help="kernel folder (default: beside the dataset, kernel/)")
    k.add_argument("--notebook", default=None, help="notebook to push (default notebooks/inference.ipynb)")
    k.add_argument("--kernel-id", default=None, help="OWNER/SLUG (default: dataset owner / slug of --title)")
    k.add_argument("--title", default=DEFAULT_KERNEL_TITLE)
    k.add_argument(
        "--dry-run", action="store_true", help="write the kernel folder, print the command, push nothing"
    )
    k.set_defaults(run=run_push)


def run_download(args: argparse.Namespace) -> int:
    from birdkit.kaggle.download import download

    r = download(args.out, args.competition, dry_run=args.dry_run, keep_zip=args.keep_zip)
    if args.dry_run:
        return 0
    print(f"{r.out}: {r.extracted} files extracted, {r.skipped} already there")
    if r.layout_problems:
        print("layout problems:\n  " + "\n  ".join(r.layout_problems), file=sys.stderr)
        return 1
    print(f"layout ok: {r.species} species, {r.recordings} training recordings")
    return 0


def run_publish(args: argparse.Namespace) -> int:
    from birdkit.kaggle import publish

    r = publish(args.dataset, args.message, mode=args.mode, public=args.public, dry_run=args.dry_run)
    if r.ran:
        print(f"published {r.dataset_id} ({r.action}): https://www.kaggle.com/datasets/{r.dataset_id}")
    return 0


def run_push(args: argparse.Namespace) -> int:
    from birdkit.kaggle import push

    options = {k: getattr(args, k) for k in ("notebook", "kernel_id", "title", "dry_run")}
    r = push(args.dataset, args.kernel_dir, **options)
    if r.ran:
        print(f"pushed {r.kernel_id}: https://www.kaggle.com/code/{r.kernel_id}")
    return 0
