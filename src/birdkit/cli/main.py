"""`birdkit` entry point: one sub-command per module in this package."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from birdkit.errors import BirdkitError

# Sub-commands in pipeline order; each module has add_parser(subparsers) and run(args) -> int.
COMMANDS = [
    "demo",
    "mix",
    "ssl",
    "embed",
    "label",
    "train",
    "sweep",
    "tune",
    "export",
    "compile",
    "infer",
    "score",
    "profile",
    "explore",
    "kaggle",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="birdkit", description="BirdCLEF submission kit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            mod = importlib.import_module(f"birdkit.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"birdkit.cli.{name}":
                continue  # stage not built yet
            raise
        mod.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        return int(args.run(args) or 0)
    except BirdkitError as exc:
        print(f"birdkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"birdkit {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
