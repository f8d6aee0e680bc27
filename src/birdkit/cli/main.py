"""`birdkit` entry point: one sub-command per module in this package.

Output is quiet by default: third-party log lines and warnings (TensorFlow's C++ INFO lines, absl, the
interpreter deprecation notice, Jupyter's kernel) show only under ``--verbose``; birdkit's own INFO lines and
every ERROR always show. An error the user can fix (:class:`BirdkitError`) is one line and exit code 2; any other
exception is one line naming its type and exit code 1, with the traceback only under ``--verbose``.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
import warnings

from birdkit.errors import BirdkitError

# Sub-commands in pipeline order; each module has add_parser(subparsers) and run(args) -> int.
COMMANDS = [
    "demo",
    "mix",
    "ssl",
    "embed",
    "label",
    "train",
    "selftrain",
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

# Environment read by libraries (and the worker processes and Jupyter kernels they start) at import time.
QUIET_ENV = {
    "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow / TFLite C++ INFO and WARNING lines (XNNPACK delegate, ...)
    "GRPC_VERBOSITY": "ERROR",
    "GLOG_minloglevel": "2",
    "ABSL_MIN_LOG_LEVEL": "2",
    "PYTHONWARNINGS": "ignore",  # child processes: spawned workers, the Jupyter kernel of the demo
}
QUIET_LOGGERS = (
    "absl",
    "tensorflow",
    "traitlets",
    "nbclient",
    "jupyter_client",
    "matplotlib",
    "numba",
    "PIL",
)


class _ThirdPartyFilter(logging.Filter):
    """birdkit's own lines from INFO up; anyone else's only from ERROR up (unless --verbose)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.startswith("birdkit") or record.levelno >= logging.ERROR


def quiet(verbose: bool, console: bool = True) -> None:
    """Silence third-party output before the heavy imports happen (they read the environment once). Only the
    console command sets the environment (a script or test calling ``main(argv)`` keeps its own)."""
    if verbose:
        return
    if console:
        for k, v in QUIET_ENV.items():
            os.environ.setdefault(k, v)
    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"birdkit(\..*)?$")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)


def configure_logging(verbose: bool) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    if not verbose:
        handler.addFilter(_ThirdPartyFilter())
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_birdkit", False):
            root.removeHandler(h)
    handler._birdkit = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="birdkit", description="BirdCLEF submission kit")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="debug logging, third-party output, tracebacks"
    )
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


def describe(exc: BaseException) -> str:
    """One line for an exception that is not a BirdkitError: the file it names and what to check."""
    if isinstance(exc, OSError) and exc.filename:
        what = exc.strerror or type(exc).__name__
        return f"{exc.filename}: {what}; check the path and its permissions"
    if isinstance(exc, json.JSONDecodeError):
        return f"a JSON file is damaged ({exc.msg} at line {exc.lineno}); rewrite it or run the step that makes it"
    return f"{type(exc).__name__}: {exc}"


def main(argv: list[str] | None = None) -> int:
    """The CLI; called with ``argv`` (tests, scripts) it leaves file descriptor 2 alone."""
    console = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    verbose = any(a in ("-v", "--verbose") for a in argv[: argv.index("--") if "--" in argv else None])
    quiet(verbose, console)
    if console and not verbose:
        from birdkit.cli.quiet import filter_native_stderr

        filter_native_stderr()
    args = build_parser().parse_args(argv)
    configure_logging(args.verbose)
    try:
        return int(args.run(args) or 0)
    except BirdkitError as exc:
        if args.verbose:
            logging.getLogger("birdkit").debug("traceback", exc_info=True)
        print(f"birdkit {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"birdkit {args.command}: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line, the traceback under -v
        if args.verbose:
            raise
        print(
            f"birdkit {args.command}: error: {describe(exc)} (run with --verbose for the traceback; if the "
            "inputs look right, please report it)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    sys.exit(main())
