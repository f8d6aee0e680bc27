"""The one worker pool: long-lived processes, each holding state built once (an encoder, a scorer), that run
jobs as they come and survive the death of one of them.

``embed`` and ``infer`` both fan whole files out through :func:`process_map`. A worker that dies (killed, out
of memory, a decoder segfault) breaks a ``ProcessPoolExecutor`` and fails every job then in flight, with no word
on which job killed it. So the pool is rebuilt and those jobs are run again *one at a time*: the innocent ones
finish, and a second death while a job runs alone names that job, which comes back as a :class:`WorkerDied`.
Never a hang, never a silent gap, never an innocent job blamed. Workers are spawned (not forked): interpreters
and BLAS threads do not survive a fork.
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
    """A job was running when a worker process died, each time it was tried; the message names the job."""


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


def _in_process(
    fn: Callable[[Any, J], Any], jobs: Iterable[J], setup: Callable[..., Any] | None, setup_args: tuple
) -> Iterator[tuple[J, Any]]:
    state = setup(*setup_args) if setup is not None else None
    for job in jobs:
        try:
            yield job, fn(state, job)
        except Exception as exc:  # noqa: BLE001 - one job's failure, as in the pool
            yield job, exc


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
    yields the exception as its result. A job in flight when a worker dies is run again alone; once it has been
    running at ``retries + 1`` deaths it yields a :class:`WorkerDied`. A worker whose ``setup`` fails raises
    :class:`WorkerSetupError` here. ``key`` tells jobs apart for the death count (``id`` by default).
    """
    if workers <= 0:
        yield from _in_process(fn, jobs, setup, setup_args)
        return
    queue = collections.deque(jobs)
    suspects: collections.deque[J] = collections.deque()  # in flight at a death: rerun one at a time
    limit = max(1, in_flight or 2 * workers)
    deaths: collections.Counter[Hashable] = collections.Counter()
    ctx = mp.get_context("spawn")
    while queue or suspects:
        pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init, initargs=(setup, setup_args))
        running: dict[Future, J] = {}
        alone = False  # a job in flight at a death runs by itself, so that the next death is its own
        try:
            while queue or suspects or running:
                try:  # a pool that broke since the last wait refuses new jobs: they stay queued
                    if suspects and not running:
                        f = pool.submit(_call, fn, suspects[0])
                        running[f] = suspects.popleft()
                        alone = True
                    while not alone and queue and len(running) < limit:
                        f = pool.submit(_call, fn, queue[0])
                        running[f] = queue.popleft()
                except BrokenProcessPool:
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                if any(isinstance(f.exception(), BrokenProcessPool) for f in done):
                    break  # the jobs stay in ``running``; sorted out once the pool is shut down
                for f in done:
                    exc = f.exception()
                    if isinstance(exc, WorkerSetupError):
                        raise exc
                    yield running.pop(f), (exc if exc is not None else f.result())
                alone = alone and bool(running)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if not running:
            continue
        # The pool broke and every future is settled now: those that finished first keep their results.
        log.warning("a worker process died; starting a new pool and running its %d jobs again", len(running))
        for f, job in running.items():
            exc = None if f.cancelled() else f.exception()
            if f.cancelled() or isinstance(exc, BrokenProcessPool):
                deaths[key(job)] += 1
                if deaths[key(job)] > retries:
                    yield job, WorkerDied(f"{job}: a worker process died each time it ran this job")
                else:
                    suspects.append(job)
            elif isinstance(exc, WorkerSetupError):
                raise exc
            else:
                yield job, (exc if exc is not None else f.result())
