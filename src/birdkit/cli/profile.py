"""`birdkit profile --data-dir DIR [--models DIR] [--files 20]`: the inference path once per configuration."""

from __future__ import annotations

import argparse


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile", help="time the inference path per configuration on the first N soundscapes (Table 7)"
    )
    p.add_argument("--data-dir", required=True, help="competition folder with test_soundscapes/")
    p.add_argument("--models", default=None, help="exported model folder: adds the head configurations")
    p.add_argument("--files", type=int, default=20, help="first N soundscapes (the paper used 20)")
    p.add_argument("--workers", type=int, default=1, help="scoring processes per configuration (default 1)")
    p.add_argument("--split", default="test_soundscapes", help="folder of the competition to run on")
    p.add_argument("--out", default="profile.json", help="profiles JSON (default: profile.json)")
    p.add_argument("--table", default=None, help="also write the table as Markdown here")
    p.add_argument("--only", default=None, help="comma-separated configuration names to run (default: all)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from birdkit.io import atomic_write_bytes
    from birdkit.profile import table
    from birdkit.workflows.profile import configurations, profile_configurations, select

    configs = select(configurations(args.models), args.only)
    profiles = profile_configurations(
        args.data_dir, args.models, args.files, args.workers, args.out, args.split, configs, progress=True
    )
    text = table(profiles)
    print(text)
    p = profiles[0]
    print(
        f"\n{p.files} files, {p.audio_s / 60:.1f} min of audio per configuration, {p.cores} cores, "
        f"{p.workers} worker(s); estimates for {p.test_files} x 4-min soundscapes against {p.budget_min:.0f} min"
    )
    print(f"profiles: {args.out}")
    if args.table:
        atomic_write_bytes(Path(args.table), (text + "\n").encode())
        print(f"table: {args.table}")
    return 0
