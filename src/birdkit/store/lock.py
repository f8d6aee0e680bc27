"""One writer per store: a lock file naming its holder (pid, host, start time), so that two `birdkit embed`
runs into one folder never both write (each would skip only the files done when it started, and the store
would hold rows twice).

The writer is always one process: the local engine's parent, or the Dask client (workers only compute and
send their rows back). So one lock in the store folder holds across the whole cluster, and any second run,
from any machine that sees the folder, finds it. A lock left by a run that was killed is taken over when its
pid is gone on this host; a lock from another host cannot be checked, so the message says how to clear it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import time
import uuid
from datetime import UTC, datetime

from birdkit.errors import BirdkitError
from birdkit.store.fs import StoreFS

log = logging.getLogger(__name__)

LOCK = "_lock.json"


class StoreLocked(BirdkitError):
    """Another run is writing this store; the message names it and what to do."""


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs on this host; a zombie (killed, not yet reaped by its parent) does not."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, OverflowError, ValueError):
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True  # no /proc (macOS): the signal check is all there is


class StoreLock:
    """``with StoreLock(fs): ...`` holds the store; ``wait`` queues behind a live holder instead of refusing."""

    def __init__(self, fs: StoreFS, wait: bool = False, poll_s: float = 1.0) -> None:
        self.fs = fs
        self.wait = wait
        self.poll_s = poll_s
        self.host = socket.gethostname()
        self.token = uuid.uuid4().hex
        self.held = False

    def _record(self) -> dict:
        started = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        command = " ".join(os.path.basename(a) if i == 0 else a for i, a in enumerate(sys.argv))
        return {
            "pid": os.getpid(),
            "host": self.host,
            "started": started,
            "token": self.token,
            "command": command,
        }

    def holder(self) -> dict | None:
        """The lock file's record; {} when it exists but cannot be read (being written, or damaged)."""
        try:
            return json.loads(self.fs.read_bytes(LOCK))
        except FileNotFoundError:
            return None
        except (ValueError, OSError):
            return {}

    def _stale(self, h: dict) -> bool:
        return h.get("host") == self.host and isinstance(h.get("pid"), int) and not _alive(h["pid"])

    def acquire(self) -> None:
        waiting = False
        while not self.fs.create_exclusive(LOCK, json.dumps(self._record()).encode()):
            h = self.holder()
            if h == {}:  # created an instant ago and not yet written, or damaged: look again before judging
                time.sleep(0.2)
                h = self.holder()
            if h is None:
                continue
            if self._stale(h) and self.holder() == h:
                log.warning(
                    "%s: taking over the lock of run pid %s, which is gone (killed?)", self.fs, h.get("pid")
                )
                self.fs.remove(LOCK)
                continue
            if not self.wait:
                raise StoreLocked(self._message(h))
            if not waiting:
                log.warning("%s; waiting for it to finish (--wait)", self._message(h, short=True))
                waiting = True
            time.sleep(self.poll_s)
        self.held = True

    def _message(self, h: dict, short: bool = False) -> str:
        who = (
            f"pid {h.get('pid')} on host {h.get('host')} since {h.get('started')} ({h.get('command', '?')})"
            if h
            else "a run whose lock file cannot be read"
        )
        msg = f"{self.fs}: another run is writing this store: {who}"
        if short:
            return msg
        return (
            f"{msg}. Wait for it to finish, pass --wait to start when it does, or, if that run is gone "
            f"(a crashed machine), delete {self.fs.join(LOCK)} and run again"
        )

    def release(self) -> None:
        if self.held and (self.holder() or {}).get("token") == self.token:
            self.fs.remove(LOCK)
        self.held = False

    def __enter__(self) -> StoreLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
