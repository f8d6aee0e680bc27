"""The one worker pool: results for every job in any order, a job's exception as its result, a setup that fails
stops the run, and a worker that dies (a real SIGKILL) never hangs the run nor costs an innocent job."""

from __future__ import annotations

import os

import pytest
import worker_jobs
from worker_jobs import KILLER, run_bounded

from birdkit.workers import WorkerSetupError, process_map

JOBS = list(range(20))


def _check_offsets(results: list[tuple[int, object]]) -> set[int]:
    """Every job once, job 13 as its ValueError, the others ``job + 100``; returns the pids that ran them."""
    assert sorted(job for job, _ in results) == JOBS
    by_job = dict(results)
    assert isinstance(by_job.pop(13), ValueError)
    assert {job: r[0] for job, r in by_job.items()} == {j: j + 100 for j in JOBS if j != 13}
    return {r[1] for r in by_job.values()}


def test_pool_returns_every_result_with_state_built_once_per_worker() -> None:
    results = list(
        process_map(
            worker_jobs.add_offset,
            JOBS,
            workers=2,
            setup=worker_jobs.offset_setup,
            setup_args=(100,),
            in_flight=3,
        )
    )
    pids = _check_offsets(results)
    assert 1 <= len(pids) <= 2 and os.getpid() not in pids  # two long-lived workers, not one per job


def test_workers_zero_runs_in_this_process_with_the_same_results() -> None:
    results = list(
        process_map(
            worker_jobs.add_offset, JOBS, workers=0, setup=worker_jobs.offset_setup, setup_args=(100,)
        )
    )
    assert [job for job, _ in results] == JOBS  # in order, here
    assert _check_offsets(results) == {os.getpid()}


def test_a_setup_that_fails_stops_the_run_with_its_reason() -> None:
    with pytest.raises(WorkerSetupError, match="RuntimeError: no model file here"):
        list(process_map(worker_jobs.add_offset, JOBS, workers=2, setup=worker_jobs.failing_setup))


def test_no_jobs_start_no_pool() -> None:
    assert list(process_map(worker_jobs.add_offset, [], workers=2, setup=worker_jobs.failing_setup)) == []


MAP_IN_A_CHILD = """
    import json, sys
    import worker_jobs
    from birdkit.workers import WorkerDied, process_map

    out = []
    for job, r in process_map(
        worker_jobs.{fn}, range(10), workers=2, setup=worker_jobs.marker_setup, setup_args=({folder!r},)
    ):
        out.append([job, "died: " + str(r) if isinstance(r, WorkerDied) else r])
    print(json.dumps(out))
"""


def test_a_job_that_kills_its_worker_once_is_retried_and_succeeds(tmp_path) -> None:
    out = run_bounded(MAP_IN_A_CHILD.format(fn="kill_once", folder=str(tmp_path)))
    assert (tmp_path / f"killed-{KILLER}").exists(), "the worker should have died once"
    assert sorted(map(tuple, out)) == [(j, j * j) for j in range(10)]


def test_a_job_that_kills_its_worker_every_time_is_named_and_the_others_finish(tmp_path) -> None:
    out = run_bounded(MAP_IN_A_CHILD.format(fn="kill_always", folder=str(tmp_path)))
    by_job = dict(map(tuple, out))
    assert sorted(by_job) == list(range(10)) and len(out) == 10  # every job once, none lost, none twice
    died = by_job.pop(KILLER)
    assert isinstance(died, str) and died.startswith(f"died: {KILLER}:"), died
    # the jobs in flight beside it at the first death are run again, alone, and are not blamed
    assert by_job == {j: j * j for j in range(10) if j != KILLER}
    assert (tmp_path / "runs").read_text() == "xx"  # tried once, retried once
