"""`birdkit embed --engine dask`: the same per-file work (:mod:`.filejob`) on a Dask cluster.

One task per audio file. Workers only compute: each builds its encoder once (a worker plugin, one encoder per
worker thread, kept for the whole run) and sends the file's rows back; this process, the client, is the only
writer of the store. That keeps the store lock meaningful across the cluster (one holder, on one host), needs
no write access to the store on the workers, and makes a task that Dask reruns (a worker that was only slow to
answer, say) harmless: its rows are written once, when the first result arrives.

A lost worker: the scheduler is told to fail, not silently rerun, the tasks it held (``allowed_failures=0``
for this run, restored afterwards), and those files are run again one at a time, so that a second death names
the file that caused it, which is then recorded as an error; innocent files that shared the worker finish.
This is :func:`birdkit.workers.process_map`'s rule on a cluster.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import sys
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from distributed import Client, LocalCluster, as_completed, get_worker
from distributed.diagnostics.plugin import WorkerPlugin
from distributed.scheduler import KilledWorker

from birdkit.errors import OptionError
from birdkit.store.filejob import EncoderState, FileJob, encode_job, load_encoder
from birdkit.workers import WorkerDied, WorkerSetupError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 20


def _undo_malloc_trim() -> None:
    """Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which in glibc also pins the mmap
    threshold at 128 KiB: every large numpy temporary of an encoder's front end is then mapped, faulted in and
    unmapped again, which costs BirdNET about 1.5x the CPU per file. Set large thresholds back (Linux only)."""
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 * 2**20)  # M_MMAP_THRESHOLD: glibc's largest
        libc.mallopt(-1, 64 * 2**20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        pass


class EncoderPlugin(WorkerPlugin):
    """Installed on every worker (also those that join later): builds the encoder when the worker starts and
    lends one per running task, building another only when the worker runs tasks in several threads."""

    def __init__(self, setup_args: tuple) -> None:
        self.setup_args = setup_args

    def setup(self, worker: Any = None) -> None:
        # Dask's sampling profiler keeps the frames of running tasks alive for a moment, and with them any view
        # of an interpreter's buffers a function had just used: TFLite then refuses to run ("at least 1
        # reference to internal data"). The embed tasks are one known function; the profile is not needed.
        for name in ("profile", "profile-cycle"):
            pc = getattr(worker, "periodic_callbacks", {}).pop(name, None)
            if pc is not None:
                pc.stop()
        _undo_malloc_trim()
        self._lock = threading.Lock()
        self._idle: list[EncoderState] = []
        self.error: str | None = None
        try:
            self._idle.append(load_encoder(*self.setup_args))
        except Exception as exc:  # noqa: BLE001 - reported by the first task, which stops the run
            self.error = f"{type(exc).__name__}: {exc}"

    def teardown(self, worker: Any = None) -> None:
        self._idle.clear()

    def take(self) -> EncoderState:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return load_encoder(*self.setup_args)

    def give(self, state: EncoderState) -> None:
        with self._lock:
            self._idle.append(state)


def _embed_task(job: FileJob, plugin_name: str) -> Any:
    """Runs on a worker: the file's rows, through the same code as the local engine."""
    worker = get_worker()
    plugin = worker.plugins[plugin_name]
    if plugin.error:
        raise WorkerSetupError(f"Dask worker {worker.address} could not build the encoder: {plugin.error}")
    if not os.path.exists(
        job.path
    ):  # not an unreadable file (recorded, never retried): a worker that cannot see it
        raise WorkerSetupError(
            f"{job.path}: not found on Dask worker {worker.address}; every worker must see the data at the same "
            "path as this machine (a shared file system)"
        )
    state = plugin.take()
    try:
        return encode_job(state, job)
    finally:
        plugin.give(state)


def _swap_allowed_failures(n: int, dask_scheduler: Any = None) -> int:
    old = dask_scheduler.allowed_failures
    dask_scheduler.allowed_failures = n
    return old


@contextmanager
def dask_client(scheduler: str | None, workers: int) -> Iterator[Client]:
    """A client of the scheduler at ``scheduler``, or of a new local cluster of ``workers`` processes."""
    if scheduler:
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT_S)
        except (OSError, TimeoutError, ValueError) as exc:
            raise OptionError(
                f"--scheduler {scheduler}: no Dask scheduler answers there ({exc}); start one with "
                "`dask scheduler --port PORT` and workers with `dask worker tcp://HOST:PORT`, or check the address"
            ) from exc
        with client:
            yield client
        return
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def dask_map(
    jobs: Iterable[FileJob], setup_args: tuple, *, scheduler: str | None, workers: int
) -> Iterator[tuple[FileJob, Any]]:
    """Yield ``(job, result)`` as files finish on the cluster; as :func:`birdkit.workers.process_map`, a result
    is the rows, an error record, an exception the task raised, or :class:`WorkerDied` for a file that was
    running alone when a worker died, for the second time."""
    with dask_client(scheduler, workers) as client:
        if not client.nthreads():
            log.warning(
                "the Dask scheduler has no workers yet; waiting for one (`dask worker %s`)", scheduler
            )
        name = f"birdkit-embed-{uuid.uuid4().hex[:8]}"
        client.register_plugin(EncoderPlugin(setup_args), name=name)
        old_failures = client.run_on_scheduler(_swap_allowed_failures, 0)
        try:
            yield from _drive(client, jobs, name)
        finally:
            client.run_on_scheduler(_swap_allowed_failures, old_failures)
            client.unregister_worker_plugin(name)


def _drive(client: Client, jobs: Iterable[FileJob], name: str) -> Iterator[tuple[FileJob, Any]]:
    completed = as_completed()
    queue = collections.deque(jobs)
    suspects: collections.deque[FileJob] = collections.deque()  # were on a lost worker: rerun one at a time
    deaths: collections.Counter[str] = collections.Counter()
    running: dict[Any, FileJob] = {}
    alone = False

    def submit(job: FileJob) -> None:
        f = client.submit(_embed_task, job, name, key=f"{name}-{uuid.uuid4().hex}", pure=False)
        running[f] = job
        completed.add(f)

    try:
        while queue or suspects or running:
            if suspects and not running:
                submit(suspects.popleft())
                alone = True
            limit = max(2, 2 * sum(client.nthreads().values()))  # one running and one queued per thread
            while not alone and queue and len(running) < limit:
                submit(queue.popleft())
            f = next(completed)
            job = running.pop(f)
            exc = f.exception() if f.status == "error" else None
            if isinstance(exc, KilledWorker):
                deaths[job.file] += 1
                if deaths[job.file] > 1:
                    yield job, WorkerDied(f"{job.file}: a Dask worker died each time it ran this file")
                else:
                    log.warning("%s: its worker was lost; running it again", job.file)
                    suspects.append(job)
            elif isinstance(exc, WorkerSetupError):
                raise exc
            else:
                yield job, (exc if exc is not None else f.result())
            f.release()
            alone = alone and bool(running)
    finally:
        for f in running:
            f.cancel()
