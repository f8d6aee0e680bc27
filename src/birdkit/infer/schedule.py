"""How files flow to the interpreters: bundles of files, decoded ahead or in worker processes, scored in order.

- ``workers == 1``: the interpreters live in this process; one decode process decodes and resamples the next
  bundles (two ahead, bounding memory) while the interpreter runs on the current one.
- ``workers >= 2``: that many processes, each with its own interpreters, each decoding, resampling and scoring
  whole bundles; one process decodes while another's interpreter runs. Only probabilities come back.
- A file longer than :data:`STREAM_SECONDS` is never handed over whole: the scoring process streams it itself
  (:class:`birdkit.audio.ChunkStream`, blocks of 4 minutes), so peak memory does not grow with file length.

Both go through the one worker pool, :func:`birdkit.workers.process_map`. A worker that dies takes the bundles
then in flight with it; the pool runs them again, alone. A bundle that kills its worker each time is split into
its files, each tried the same way, so that the one file that kills its worker (a decoder crash) is the only one
recorded as an error, naming it, and every readable file beside it is still scored.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np

from birdkit import audio
from birdkit.infer import postprocess
from birdkit.infer.files import FileJob, FileResult
from birdkit.infer.plan import Plan
from birdkit.infer.scorer import Scorer
from birdkit.profile import StageTimes
from birdkit.workers import WorkerDied, process_map

log = logging.getLogger(__name__)

DECODE_AHEAD = 2  # decoded bundles waiting for the interpreter (a 4-min file at 48 kHz is 46 MB)
BUNDLE_BYTES = 1_000_000  # files smaller than this (about 1 min of OGG) share encoder calls
BUNDLE_FILES = 16
STREAM_SECONDS = 300.0  # longer files are streamed block by block in the scoring process


@dataclass(frozen=True)
class LongFile:
    """A decoded-bundle entry for a file too long to hand over whole: the scoring process streams it."""

    path: str


@dataclass(frozen=True)
class Bundle:
    """Files scored in one encoder call. Interpreters run fixed batches, so every call is padded to whole
    batches: a 1 s file alone would cost 16 times its windows. A soundscape goes alone, short files together."""

    index: int
    files: tuple[FileJob, ...]


def bundles(
    jobs: list[FileJob], max_bytes: int = BUNDLE_BYTES, max_files: int = BUNDLE_FILES
) -> list[Bundle]:
    """Consecutive files grouped until they reach ``max_bytes`` (file size stands in for duration)."""
    out: list[Bundle] = []
    cur: list[FileJob] = []
    for j in jobs:
        cur.append(j)
        if sum(f.size for f in cur) >= max_bytes or len(cur) >= max_files:
            out.append(Bundle(len(out), tuple(cur)))
            cur = []
    if cur:
        out.append(Bundle(len(out), tuple(cur)))
    return out


# per file: its chunks at every rate, a long file to stream, or why it cannot be read; then the decode stage times
DecodedBundle = tuple[list[audio.ChunkedFile | LongFile | str], dict]


def decode_bundle(rates: tuple[int, ...], bundle: Bundle) -> DecodedBundle:
    """Decode and resample a bundle's files at every rate the plan needs; a file that cannot be read says why."""
    times = StageTimes()
    out: list[audio.ChunkedFile | LongFile | str] = []
    for job in bundle.files:
        if (audio.header_duration(job.path) or 0.0) > STREAM_SECONDS:
            out.append(LongFile(job.path))
            continue
        try:
            out.append(audio.load_chunks(job.path, rates, times.stage))
        except audio.AudioError as exc:
            out.append(exc.reason)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is one file's failure, not the run's
            out.append(f"{type(exc).__name__}: {exc}")
    return out, times.as_dict()


def score_bundle(scorer: Scorer, bundle: Bundle, decoded: DecodedBundle) -> list[FileResult]:
    """Score a decoded bundle in one call; if that fails, file by file, so a failure stays one file's."""
    results: list[FileResult] = []
    good: list[tuple[FileResult, audio.ChunkedFile]] = []
    for job, d in zip(bundle.files, decoded[0], strict=True):
        if isinstance(d, str):
            results.append(FileResult(job, error=d))
            continue
        if isinstance(d, LongFile):
            results.append(score_stream(scorer, job))
            continue
        results.append(FileResult(job, row_ids=d.row_ids, duration_s=d.duration_s))
        good.append((results[-1], d))
    if not good:
        return results
    try:
        if len(good) == 1:
            chunks = good[0][1].by_rate
        else:
            chunks = {rate: np.concatenate([d.by_rate[rate] for _, d in good]) for rate in good[0][1].by_rate}
        probs = scorer.score(chunks)
        ends = np.cumsum([len(d.row_ids) for _, d in good])[:-1]
        for (r, _), p in zip(good, np.split(probs, ends), strict=True):
            r.probs = postprocess.apply(scorer.plan.postprocess, p)
    except Exception as exc:  # noqa: BLE001 - isolate the file that fails
        if len(good) == 1:
            good[0][0].error = f"scoring failed: {type(exc).__name__}: {exc}"
        else:
            for r, d in good:
                one = score_bundle(scorer, Bundle(bundle.index, (r.job,)), ([d], {}))[0]
                r.probs, r.error = one.probs, one.error
    return results


def score_stream(scorer: Scorer, job: FileJob) -> FileResult:
    """A long file, decoded, resampled and scored block by block in this process."""
    stream = audio.ChunkStream(job.path, scorer.plan.rates, stage=scorer.times.stage)
    try:
        probs = np.concatenate([scorer.score(block.by_rate) for block in stream])
    except audio.AudioError as exc:
        return FileResult(job, error=exc.reason)
    except Exception as exc:  # noqa: BLE001 - one file's failure, not the run's
        return FileResult(job, error=f"scoring failed: {type(exc).__name__}: {exc}")
    result = FileResult(job, row_ids=stream.row_ids, duration_s=stream.duration_s)
    result.probs = postprocess.apply(scorer.plan.postprocess, probs)
    return result


@dataclass
class WorkerState:
    """A scoring worker's own interpreters and stage timers, built once per process."""

    scorer: Scorer
    times: StageTimes
    reported: bool = False


def _setup_worker(plan: Plan) -> WorkerState:
    times = StageTimes()
    return WorkerState(Scorer(plan, times), times)


def _score_job(state: WorkerState, bundle: Bundle) -> list[FileResult]:
    """Worker process: decode, resample and score a bundle of whole files."""
    decoded = decode_bundle(state.scorer.plan.rates, bundle)
    state.times.add(decoded[1])
    results = score_bundle(state.scorer, bundle, decoded)
    # Stage times travel with the results and are reset, so each second is counted once.
    results[0].times = state.times.as_dict()
    state.times = state.scorer.times = StageTimes()
    if not state.reported:
        state.reported = True
        results[0].setup_wall = state.scorer.setup_wall
    return results


def _same(value: Any) -> Any:
    return value


def _files_key(bundle: Bundle) -> tuple[int, ...]:
    return tuple(f.index for f in bundle.files)


def _map(
    fn: Callable[[Any, Bundle], Any],
    work: list[Bundle],
    workers: int,
    in_flight: int,
    setup: Callable[[Any], Any],
    arg: Any,
) -> Iterator[tuple[Bundle, Any]]:
    """:func:`process_map` over the bundles, ``setup(arg)`` once per process. A bundle of several files that
    killed its worker each time it ran is run again file by file, so the death is pinned on the file causing it
    and the files beside it are still scored."""
    split: list[Bundle] = []
    passes = process_map(
        fn, work, workers=workers, setup=setup, setup_args=(arg,), in_flight=in_flight, key=_files_key
    )
    try:
        for bundle, out in passes:
            if isinstance(out, WorkerDied) and len(bundle.files) > 1:
                split += [Bundle(bundle.index, (f,)) for f in bundle.files]
            else:
                yield bundle, out
        passes.close()
        if split:
            log.warning(
                "a worker died each time it ran %d files together; trying them one by one", len(split)
            )
            passes = process_map(fn, split, workers=1, setup=setup, setup_args=(arg,), key=_files_key)
            yield from passes
    finally:
        passes.close()


def _failed(bundle: Bundle, exc: BaseException, where: str) -> list[FileResult]:
    if isinstance(exc, WorkerDied):
        reason = f"the {where} process died each time it held this file (twice)"
    else:
        reason = f"{where} process failed on it: {type(exc).__name__}: {exc}"
    return [FileResult(j, error=reason) for j in bundle.files]


def _local_stream(
    plan: Plan, work: list[Bundle], overlap: bool, times: StageTimes, setup: dict, built: dict[int, Any]
) -> Iterator[FileResult]:
    """workers == 1: interpreters here, decoding in one process ahead of them (or inline without overlap)."""
    scorer = Scorer(plan, times, built)
    setup["wall"] = setup.get("wall", 0.0) + scorer.setup_wall
    with closing(_map(decode_bundle, work, int(overlap), DECODE_AHEAD, _same, plan.rates)) as decoded:
        for bundle, out in decoded:
            if isinstance(out, BaseException):
                yield from _failed(bundle, out, "decoder")
                continue
            times.add(out[1])
            yield from score_bundle(scorer, bundle, out)


def _worker_stream(
    plan: Plan, work: list[Bundle], workers: int, times: StageTimes, setup: dict
) -> Iterator[FileResult]:
    """workers >= 2: whole bundles in long-lived worker processes; stage times come back with the results."""
    worst = 0.0
    with closing(_map(_score_job, work, workers, 2 * workers, _setup_worker, plan)) as scored:
        for bundle, results in scored:
            if isinstance(results, BaseException):
                yield from _failed(bundle, results, "worker")
                continue
            first = results[0]
            times.add(first.times)
            if first.setup_wall is not None and first.setup_wall > worst:
                # workers start together: the slowest one is the wait
                setup["wall"] = setup.get("wall", 0.0) + first.setup_wall - worst
                worst = first.setup_wall
            yield from results


def stream(
    plan: Plan,
    jobs: list[FileJob],
    workers: int,
    overlap: bool,
    times: StageTimes,
    setup: dict,
    built: dict[int, Any] | None = None,
) -> Iterator[FileResult]:
    """Every job's result as it is scored; ``built``: encoders of ``plan`` already built in this process."""
    work = bundles(jobs)
    if workers <= 1:
        return _local_stream(plan, work, overlap, times, setup, built or {})
    return _worker_stream(plan, work, workers, times, setup)
