"""The one worker pool: long-lived processes, each holding state built once (an encoder, a scorer), that run
jobs as they come and survive the death of one of them.

``embed`` and ``infer`` both fan whole files out through :func:`process_map`. A worker that dies (killed, out
of memory, a decoder segfault) breaks a ``ProcessPoolExecutor``; here the pool is rebuilt, the jobs then in
flight are retried once, and a job in flight during two deaths comes back as a :class:`WorkerDied` naming it:
never a hang, never a silent gap. Workers are spawned (not forked): interpreters and BLAS threads do not survive
a fork.
"""

from __future__ import annotations

import collections
import logging
import multiprocessing as mp
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from birdkit.errors import BirdkitError

log = logging.getLogger(__name__)

J = TypeVar("J")

# This process's state when it is a worker: built once by the pool's ``setup``, passed to every job.
_STATE: dict[str, Any] = {}


class WorkerDied(BirdkitError):
    """A job was in flight each time a worker process died (twice); the message names the job."""


class WorkerSetupError(BirdkitError):
    """A worker could not build its state (a model that does not load): the run cannot go on."""


def _init(setup: Callable[..., Any] | None, args: tuple) -> None:
    _STATE.clear()
    try:
        _STATE["state"] = setup(*args) if setup is not None else None
    except Exception as exc:  # noqa: BLE001 - reported to the parent with the first job, which stops the run
        _STATE["error"] = f"{type(exc).__name__}: {exc}"


def _call(fn: Callable[[Any, Any], Any], job: Any) -> Any:
    if "error" in _STATE:
        raise WorkerSetupError(f"a worker process could not start: {_STATE['error']}")
    return fn(_STATE["state"], job)


def process_map(
    fn: Callable[[Any, J], Any],
    jobs: Iterable[J],
    *,
    workers: int,
    setup: Callable[..., Any] | None = None,
    setup_args: tuple = (),
    in_flight: int | None = None,
    key: Callable[[J], Hashable] = id,
    retries: int = 1,
) -> Iterator[tuple[J, Any]]:
    """Yield ``(job, fn(state, job))`` as jobs finish, ``state = setup(*setup_args)`` built once per process.

    ``workers <= 0`` runs everything in this process (no pool, no pickling). ``in_flight`` bounds the jobs out
    at once (default two per worker: one running, one queued), which bounds memory. A job whose function raises
    yields the exception as its result; a job in flight during ``retries + 1`` worker deaths yields a
    :class:`WorkerDied`; a worker whose ``setup`` fails raises :class:`WorkerSetupError` here. ``key`` names a
    job for the retry count (jobs must be hashable by it).
    """
    if workers <= 0:
        state = setup(*setup_args) if setup is not None else None
        for job in jobs:
            try:
                yield job, fn(state, job)
            except Exception as exc:  # noqa: BLE001 - one job's failure, as in the pool
                yield job, exc
        return
    queue = collections.deque(jobs)
    limit = in_flight or 2 * workers
    deaths: collections.Counter[Hashable] = collections.Counter()
    ctx = mp.get_context("spawn")
    while queue:
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(setup, setup_args))
        running: dict[Future, J] = {}
        try:
            while queue or running:
                while queue and len(running) < limit:
                    job = queue.popleft()
                    running[pool.submit(_call, fn, job)] = job
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    exc = f.exception()
                    if isinstance(exc, BrokenProcessPool):
                        raise exc  # the job stays in ``running``: it is retried below
                    if isinstance(exc, WorkerSetupError):
                        raise exc
                    job = running.pop(f)
                    yield job, (exc if exc is not None else f.result())
        except BrokenProcessPool as exc:
            log.warning("a worker process died (%s); starting a new pool and retrying its jobs", exc)
            retry = []
            for job in running.values():
                deaths[key(job)] += 1
                if deaths[key(job)] > retries:
                    yield job, WorkerDied(f"{job}: a worker process died each time it held this job ({exc})")
                else:
                    retry.append(job)
            queue.extendleft(reversed(retry))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
