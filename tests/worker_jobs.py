"""Jobs, setups and an encoder for the worker-pool tests, in a module that spawned workers can import (pytest puts
``tests/`` on ``sys.path``, and spawned processes inherit it).

Deaths are real: a job or encoder SIGKILLs its own process, as the OOM killer or a crashing decoder would. A
marker file created with O_EXCL makes "once" hold across processes and pool rebuilds.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

from birdkit.encoders.base import EncoderOutputs
from birdkit.encoders.placeholder import Placeholder

KILLER = 3  # the job that kills its worker in the tests below
TESTS = Path(__file__).resolve().parent


def run_bounded(code: str, timeout: float = 180) -> object:
    """Run ``code`` in a fresh interpreter with ``tests/`` importable and return what it prints as JSON.

    The time bound is the point: a pool that hangs when a worker dies fails the test instead of stalling it.
    """
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    try:
        done = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(code)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"still running after {timeout} s: a hang") from exc
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _first_time(marker: Path) -> bool:
    """True for exactly one caller across all processes."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def offset_setup(offset: int) -> dict:
    return {"offset": offset, "pid": os.getpid()}


def add_offset(state: dict, job: int) -> tuple[int, int]:
    """``job + offset`` and the worker's pid; job 13 raises; a short sleep keeps several jobs in flight."""
    time.sleep(0.02)
    if job == 13:
        raise ValueError("thirteen is unlucky")
    return job + state["offset"], state["pid"]


def failing_setup() -> None:
    raise RuntimeError("no model file here")


def marker_setup(folder: str) -> Path:
    return Path(folder)


def kill_once(folder: Path, job: int) -> int:
    """Job ``KILLER`` kills its worker the first time it runs anywhere, then succeeds."""
    time.sleep(0.05)
    if job == KILLER and _first_time(folder / f"killed-{job}"):
        _die()
    return job * job


def kill_always(folder: Path, job: int) -> int:
    """Job ``KILLER`` kills its worker every time; it counts its runs in a file."""
    time.sleep(0.05)
    if job == KILLER:
        with open(folder / "runs", "a") as f:
            f.write("x")
        _die()
    return job * job


def chunks_digest(chunks: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(chunks, dtype=np.float32).tobytes()).hexdigest()


class DyingPlaceholder(Placeholder):
    """The placeholder encoder, except that it kills its process: once, on its ``after``-th call across all
    workers (``marker`` names the folder that counts), and every time it is given the chunks of ``poison``
    (a :func:`chunks_digest`). Registered as ``worker_jobs:DyingPlaceholder``."""

    def __init__(self, marker: str, after: int = 4, poison: str | None = None) -> None:
        super().__init__()
        self.marker = Path(marker)
        self.after = after
        self.poison = poison

    def embed(self, chunks: np.ndarray) -> EncoderOutputs:
        if self.poison is not None and chunks_digest(chunks) == self.poison:
            _die()
        fd = os.open(self.marker / "calls", os.O_CREAT | os.O_APPEND | os.O_WRONLY)
        try:
            os.write(fd, b"x")
        finally:
            os.close(fd)
        calls = (self.marker / "calls").stat().st_size
        if calls >= self.after and _first_time(self.marker / "killed"):
            _die()
        return super().embed(chunks)


class SlowPlaceholder(Placeholder):
    """The placeholder encoder at about BirdNET's pace on a short clip, so that a kill lands mid-run."""

    def embed(self, chunks: np.ndarray) -> EncoderOutputs:
        time.sleep(0.15)
        return super().embed(chunks)
