"""The command-line options that choose and configure an encoder, shared by every command that builds one."""

from __future__ import annotations

import argparse
from typing import Any


def add_encoder_arguments(parser: argparse.ArgumentParser) -> None:
    """``--encoder NAME`` and the options that configure it."""
    parser.add_argument("--encoder", default="birdnet", help="encoder name (see birdkit.encoders.registry)")
    parser.add_argument("--windows", default=None, help="BirdNET window scheme: paper (default) or centre")


def encoder_options(args: argparse.Namespace) -> dict[str, Any]:
    """Constructor options for the encoder from parsed arguments (only those the user gave)."""
    return {"windows": args.windows} if getattr(args, "windows", None) else {}
