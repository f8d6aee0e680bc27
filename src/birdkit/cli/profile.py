"""`birdkit profile --data-dir DIR [--models DIR] [--files 20] [--out profile/]`: the inference path once per
configuration; ``profile.json`` and the Markdown table go under ``--out`` (a ``.json`` path is the file itself)."""

from __future__ import annotations

import argparse
from pathlib import Path

from birdkit.cli.options import positive_int


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "profile", help="time the inference path per configuration on the first N soundscapes (Table 7)"
    )
    p.add_argument("--data-dir", required=True, help="competition folder with test_soundscapes/")
    p.add_argument("--models", default=None, help="exported model folder: adds the head configurations")
    p.add_argument("--files", type=positive_int, default=20, help="first N soundscapes (the paper used 20)")
    p.add_argument(
        "--workers", type=positive_int, default=1, help="scoring processes per configuration (default 1)"
    )
    p.add_argument("--split", default="test_soundscapes", help="folder of the competition to run on")
    p.add_argument(
        "--out",
        default="profile",
        help="folder for profile.json and profile.md (default: profile/); a path ending in .json is the file",
    )
    p.add_argument("--table", default=None, help="the Markdown table here instead of beside the JSON")
    p.add_argument("--only", default=None, help="comma-separated configuration names to run (default: all)")
    p.set_defaults(run=run)


def outputs(out: str, table: str | None) -> tuple[Path, Path]:
    """Where the profiles JSON and the Markdown table go; refused before anything runs if they cannot."""
    from birdkit.errors import OptionError

    o = Path(out)
    if o.suffix.lower() == ".json":
        if o.is_dir():
            raise OptionError(f"--out {o}: is a folder; give a folder without .json, or a file name")
        json_path, md = o, o.with_suffix(".md")
    else:
        if o.exists() and not o.is_dir():
            raise OptionError(
                f"--out {o}: is a file; give a folder (profile.json goes in it) or a .json path"
            )
        json_path, md = o / "profile.json", o / "profile.md"
    md = Path(table) if table else md
    if md.is_dir():
        raise OptionError(f"--table {md}: is a folder; give a file name, e.g. {md / 'profile.md'}")
    return json_path, md


def run(args: argparse.Namespace) -> int:
    from birdkit.io import atomic_write_bytes
    from birdkit.profile import table
    from birdkit.workflows.profile import configurations, profile_configurations, select

    json_path, md = outputs(args.out, args.table)
    configs = select(configurations(args.models), args.only)
    profiles = profile_configurations(
        args.data_dir, args.models, args.files, args.workers, json_path, args.split, configs, progress=True
    )
    text = table(profiles)
    print(text)
    p = profiles[0]
    print(
        f"\n{p.files} files, {p.audio_s / 60:.1f} min of audio per configuration, {p.cores} cores, "
        f"{p.workers} worker(s); estimates for {p.test_files} x 4-min soundscapes against {p.budget_min:.0f} min"
    )
    print(f"profiles: {json_path}")
    md.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(md, (text + "\n").encode())
    print(f"table: {md}")
    return 0
