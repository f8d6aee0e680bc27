"""The ``kaggle`` executable: finding it, running it, reading its failures, and the names its commands share.

Every Kaggle call runs the executable as a subprocess; the ``kaggle`` package is never imported, because
importing it authenticates (and exits the process when no credentials are found). A subprocess also means the
commands are exactly what a user would type, which ``--dry-run`` prints, and a fake ``kaggle`` placed first on
``PATH`` can stand in for it in tests. The CLI exits 0 on some failures (it prints "Dataset creation error:
..."), so its output is read too.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from birdkit.kaggle.credentials import find_credentials
from birdkit.kaggle.errors import KaggleError

log = logging.getLogger(__name__)

COMPETITION = "birdclef-2024"
# The files the kaggle CLI reads its metadata from; it does not upload them.
DATASET_METADATA = "dataset-metadata.json"
KERNEL_METADATA = "kernel-metadata.json"
# Failures the kaggle CLI reports on stdout with exit status 0, or prints before exiting 1.
_FAILED = re.compile(
    r"(creation error|push error|Authentication required|Client Error|Unauthori[sz]ed|Forbidden)", re.I
)


def kaggle_executable(env: Mapping[str, str] | None = None) -> list[str]:
    """The kaggle CLI to run: ``kaggle`` on PATH, else the one beside this Python, else ``python -m kaggle``."""
    env = os.environ if env is None else env
    found = shutil.which("kaggle", path=env.get("PATH"))
    if found:
        return [found]
    sibling = Path(sys.executable).with_name("kaggle")
    if sibling.exists():
        return [str(sibling)]
    if importlib.util.find_spec("kaggle") is not None:
        return [sys.executable, "-m", "kaggle"]
    raise KaggleError(
        "the kaggle CLI is not installed: `pip install kaggle==2.2.4 six` (see requirements.txt)"
    )


def command_line(args: Sequence[str]) -> str:
    """The command as a user would type it."""
    return shlex.join(["kaggle", *map(str, args)])


@dataclass
class Run:
    """One kaggle call: what ran, its exit status and its output (stdout and stderr together)."""

    args: list[str]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not _FAILED.search(self.output)


def run_kaggle(args: Sequence[str], env: Mapping[str, str] | None = None, echo: bool = True) -> Run:
    """Run ``kaggle ARGS``, echoing its output line by line (uploads print progress) and keeping it."""
    env = dict(os.environ if env is None else env)
    exe = kaggle_executable(env)
    log.debug("running %s", shlex.join([*exe, *args]))
    proc = subprocess.Popen(
        [*exe, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
        bufsize=1,
    )
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if echo:
            print(line, end="", flush=True)
    return Run(list(map(str, args)), proc.wait(), "".join(lines))


def checked(run: Run, what: str) -> Run:
    """``run`` when it succeeded; else a KaggleError quoting the command and the end of its output."""
    if not run.ok:
        tail = "\n".join(run.output.strip().splitlines()[-5:])
        raise KaggleError(f"`{command_line(run.args)}` failed ({what}, exit {run.returncode}):\n{tail}")
    return run


def print_dry_run(command: str, notes: Sequence[str] = ()) -> None:
    """What a ``--dry-run`` shows: the command it would run, what it would send, and where credentials are."""
    print(f"would run: {command}")
    for line in notes:
        print(line)
    print(f"credentials {find_credentials().describe()}")


def describe_files(root: Path, zipped_dirs: bool = True) -> list[str]:
    """What an upload of ``root`` sends, one line per top-level entry (folders are zipped by ``-r zip``)."""
    lines = []
    for p in sorted(root.iterdir()):
        if p.is_dir():
            files = [f for f in p.rglob("*") if f.is_file()]
            how = "zipped by kaggle -r zip, unpacked on Kaggle" if zipped_dirs else "folder"
            lines.append(
                f"  {p.name}/  ({len(files)} files, {_size(sum(f.stat().st_size for f in files))}; {how})"
            )
        else:
            note = (
                "  (metadata, read by kaggle, not uploaded)"
                if p.name in (DATASET_METADATA, KERNEL_METADATA)
                else ""
            )
            lines.append(f"  {p.name}  ({_size(p.stat().st_size)}){note}")
    return lines


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"
