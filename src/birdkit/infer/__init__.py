"""The one inference path: competition soundscapes -> ``submission.csv``, profiled, inside the CPU budget.

``birdkit infer`` and ``notebooks/inference.ipynb`` both call :func:`run_inference`.

What scores a chunk (a :class:`Plan`):

- **heads** from an exported model folder (``heads/<name>.tflite`` + card): each head's encoder (by the card's
  ``encoder.name``, its model file from ``encoders/<name>/`` when the folder has one) embeds the chunk, the head
  turns the embedding into logits, and head species are placed onto the submission columns by name. Several
  heads' probabilities are averaged per column.
- **passthrough** (``passthrough="birdnet"``): the encoder's own logits for the competition species, through the
  taxonomy mapping, no head. The paper's surrogate baseline.

How files flow (whole-pipeline overlap, one long-lived interpreter per process, fixed batches):

- ``workers == 1``: the interpreters live in this process; one decode process decodes and resamples the next
  files (two ahead, bounding memory) while the interpreter runs on the current one.
- ``workers >= 2``: that many processes, each with its own interpreters, each decoding, resampling and scoring
  whole files; one process decodes while another's interpreter runs. Only probabilities come back.

A file that cannot be read (or whose scoring fails) still gets its rows, filled with the prior (each species'
mean prediction over the rows that were scored; 0 for a species no model predicts), and the reason is logged
and returned. A worker process that dies is replaced; a file in flight during two deaths is given up.

The budget guard: from the first files on, the run predicts its total time from its own rate. If that crosses
the budget minus a safety margin, it switches the remaining files to the fastest configuration (BirdNET's
single centre window: half the encoder cost) and says so, in the log and in the profile.
"""

from __future__ import annotations

import collections
import importlib
import inspect
import io
import json
import logging
import multiprocessing as mp
import time
import warnings
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from birdkit import audio
from birdkit.competition import Competition
from birdkit.encoders import ENCODERS, species_index, unmapped
from birdkit.errors import BirdkitError
from birdkit.heads.runner import HeadInfo, HeadRunner, ModelsError, load_models
from birdkit.io import atomic_write_bytes
from birdkit.profile import (
    BUDGET_MIN,
    SOUNDSCAPE_S,
    Profile,
    StageTimes,
    cpu_seconds,
    peak_rss_mb,
    stages_from,
    table,
    usable_cores,
    write_profiles,
)

log = logging.getLogger(__name__)

SAFETY_MARGIN_MIN = 20.0  # Kaggle's own start-up, a slower machine than the first files suggested, writing
GUARD_AFTER_FILES = 3
DECODE_AHEAD = 2  # decoded bundles waiting for the interpreter (a 4-min file at 48 kHz is 46 MB)
BUNDLE_BYTES = 1_000_000  # files smaller than this (about 1 min of OGG) share encoder calls
BUNDLE_FILES = 16
# The budget guard's fastest configuration, for encoders that take these options: BirdNET's single centre
# window (half the encoder cost) on its fast path (numpy front end + CNN).
FASTEST_OPTIONS: dict[str, Any] = {"windows": "centre", "fast": True}


class InferError(BirdkitError, RuntimeError):
    """Inference could not run at all (no model, no test folder); the message says what to give instead."""


# ---- what scores a chunk -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class EncoderSpec:
    """An encoder to build in each scoring process: its class ("module:Class"), options and sample rate."""

    name: str
    factory: str
    sample_rate: int
    options: dict = field(default_factory=dict)  # constructor options: windows, model_path, batch_size, ...

    def build(self) -> Any:
        return _factory(self.factory)(**self.options)

    def accepts(self, option: str) -> bool:
        return option in inspect.signature(_factory(self.factory)).parameters

    def option(self, name: str) -> Any:
        """The value an option will have: given, else the constructor's default."""
        if name in self.options:
            return self.options[name]
        return inspect.signature(_factory(self.factory)).parameters[name].default

    def label(self) -> str:
        w = self.options.get("windows")
        return " ".join(
            [
                self.name,
                *([w] if w and w != "paper" else []),
                *(["full-graph"] if self.options.get("fast") is False else []),
            ]
        )


@dataclass(frozen=True)
class Plan:
    """Everything a scoring process needs to build its interpreters; picklable, sent to workers once."""

    data_dir: str
    species: tuple[str, ...]
    encoders: tuple[EncoderSpec, ...]
    heads: tuple[tuple[HeadInfo, int], ...] = ()  # (head, index of its encoder)
    passthrough: int | None = None  # index of the encoder whose own logits score (no heads)

    @property
    def rates(self) -> tuple[int, ...]:
        return tuple(sorted({e.sample_rate for e in self.encoders}))

    @property
    def name(self) -> str:
        enc = " + ".join(e.label() for e in self.encoders)
        if self.passthrough is not None:
            return f"{enc} passthrough"
        return f"{enc} head ({', '.join(h.name for h, _ in self.heads)})"

    def describe(self) -> dict:
        return {
            "name": self.name,
            "encoders": [
                {"name": e.name, **{k: str(v) for k, v in e.options.items()}} for e in self.encoders
            ],
            "heads": [h.name for h, _ in self.heads],
            "passthrough": self.encoders[self.passthrough].name if self.passthrough is not None else None,
        }

    def fastest(self) -> Plan | None:
        """The same models with every encoder on its fastest options (FASTEST_OPTIONS); None if nothing changes."""
        encs = []
        changed = False
        for e in self.encoders:
            fast = {k: v for k, v in FASTEST_OPTIONS.items() if e.accepts(k) and e.option(k) != v}
            if fast:
                e = replace(e, options={**e.options, **fast})
                changed = True
            encs.append(e)
        return replace(self, encoders=tuple(encs)) if changed else None


COMPILED_ENCODER = "birdkit.encoders.tflite:TFLiteEncoder"


def _factory(path: str) -> type:
    mod, cls = path.split(":")
    return getattr(importlib.import_module(mod), cls)


def make_plan(
    data_dir: str | Path,
    models: str | Path | None = None,
    passthrough: str | None = None,
    encoder_options: dict | None = None,
) -> Plan:
    """Decide what scores the chunks: the exported heads in ``models``, or ``passthrough``'s own logits.

    ``encoder_options`` (windows, batch_size, num_threads, ...) override what the cards say, for every encoder.
    """
    comp = Competition(data_dir)
    species = tuple(comp.species)
    extra = {k: v for k, v in (encoder_options or {}).items() if v is not None}
    ms = load_models(models) if models else None

    def spec(name: str, card_encoder: dict) -> EncoderSpec:
        """A compiled graph shipped in the model folder, else a built-in encoder (its file from the folder)."""
        opts: dict[str, Any] = {}
        if ms is not None and name in ms.compiled:
            sidecar = json.loads(ms.compiled[name].with_suffix(".json").read_text())
            e = EncoderSpec(name, COMPILED_ENCODER, int(sidecar["sample_rate"]))
            opts["model_path"] = str(ms.compiled[name])
        elif name in ENCODERS:
            e = EncoderSpec(name, ENCODERS[name], int(_factory(ENCODERS[name]).sample_rate))
            if ms is not None and name in ms.encoder_files:
                opts["model_path"] = str(ms.encoder_files[name])
        else:
            raise InferError(
                f"encoder {name!r} is neither built in ({', '.join(sorted(ENCODERS))}) nor compiled in "
                f"{models}/encoders/{name}.tflite; export the heads again with it (`birdkit export --encoder`)"
            )
        if "windows" in card_encoder and e.accepts("windows"):
            opts["windows"] = card_encoder["windows"]
        opts.update({k: v for k, v in extra.items() if e.accepts(k)})
        return replace(e, options=opts)

    if passthrough:
        return Plan(str(data_dir), species, (spec(passthrough, {}),), (), 0)
    if ms is None or not ms.heads:
        where = f"{models} has no heads/<name>.tflite" if ms else "no --models folder was given"
        raise InferError(
            f"nothing to score with: {where}. Give an exported model folder (`birdkit export`) or use "
            "passthrough='birdnet' (`--passthrough birdnet`) for BirdNET's own logits."
        )
    encoders: list[EncoderSpec] = []
    heads: list[tuple[HeadInfo, int]] = []
    for h in ms.heads:
        e = spec(h.encoder_name, h.encoder)
        if e not in encoders:
            encoders.append(e)
        heads.append((h, encoders.index(e)))
        missing = [s for s in species if s not in set(h.species)]
        if missing:
            log.info("head %s lacks %d submission species (they get the prior)", h.name, len(missing))
    return Plan(str(data_dir), species, tuple(encoders), tuple(heads), None)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """float64 sigmoid: float32 would round every logit above ~17 to exactly 1 and tie those rows."""
    return 1.0 / (1.0 + np.exp(-np.asarray(x, dtype=np.float64)))


class Scorer:
    """One process's interpreters for a plan: chunks at each encoder's rate -> probabilities [n, S].

    Columns no model predicts are NaN here; the parent fills them with the prior.
    """

    def __init__(self, plan: Plan, times: StageTimes | None = None) -> None:
        self.plan = plan
        self.times = times if times is not None else StageTimes()
        t0 = time.perf_counter()
        with self.times.stage("setup"):
            self.encoders = [e.build() for e in plan.encoders]
            col = {s: j for j, s in enumerate(plan.species)}
            self.heads: list[tuple[HeadRunner, int, np.ndarray, np.ndarray, bool]] = []
            for h, ei in plan.heads:
                runner = HeadRunner(h.path)
                if runner.input_dim != self.encoders[ei].embedding_dim:
                    raise ModelsError(
                        f"{h.path}: head takes {runner.input_dim}-d embeddings but encoder "
                        f"{plan.encoders[ei].name} gives {self.encoders[ei].embedding_dim}; re-export the head"
                    )
                src = np.array([k for k, s in enumerate(h.species) if s in col], dtype=np.int64)
                dst = np.array([col[h.species[k]] for k in src], dtype=np.int64)
                self.heads.append((runner, ei, src, dst, h.output == "logits"))
            self.index: np.ndarray | None = None
            self.unmapped: list[str] = []
            if plan.passthrough is not None:
                enc = self.encoders[plan.passthrough]
                self.index = species_index(enc.classes, Competition(plan.data_dir), list(plan.species))
                self.unmapped = unmapped(list(plan.species), self.index)
        self.setup_wall = time.perf_counter() - t0

    def score(self, chunks: dict[int, np.ndarray]) -> np.ndarray:
        n = next(iter(chunks.values())).shape[0]
        s = len(self.plan.species)
        outs: list[tuple[np.ndarray, np.ndarray]] = []
        with self.times.stage("encoder"):
            for spec, enc in zip(self.plan.encoders, self.encoders, strict=True):
                o = enc.embed(chunks[spec.sample_rate])
                outs.append((o.embeddings, o.logits_or_empty()))
        with self.times.stage("head"):
            if self.index is not None:
                logits = outs[self.plan.passthrough][1]
                probs = np.zeros((n, s), dtype=np.float64)  # unmapped species: sigmoid(-inf) = 0
                ok = self.index >= 0
                probs[:, ok] = _sigmoid(logits[:, self.index[ok]])
                return probs.astype(np.float32)
            total = np.zeros((n, s), dtype=np.float64)
            count = np.zeros(s, dtype=np.int64)
            for runner, ei, src, dst, is_logits in self.heads:
                out = runner(outs[ei][0])[:, src]
                total[:, dst] += _sigmoid(out) if is_logits else out
                count[dst] += 1
            with np.errstate(invalid="ignore", divide="ignore"):
                probs = total / count
            probs[:, count == 0] = np.nan
            return probs.astype(np.float32)


# ---- files -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FileJob:
    index: int
    path: str
    size: int

    @property
    def stem(self) -> str:
        return Path(self.path).stem


@dataclass
class DecodedFile:
    """A file cut into chunks at every rate the plan needs (what the decode process sends back)."""

    row_ids: list[str]
    chunks: dict[int, np.ndarray]
    duration_s: float


@dataclass
class FileResult:
    job: FileJob
    row_ids: list[str] = field(default_factory=list)
    probs: np.ndarray | None = None
    error: str | None = None
    duration_s: float = 0.0
    times: dict = field(default_factory=dict)
    worker: dict | None = None  # a worker's first result carries its setup: wall seconds, unmapped species


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


def _decode_file(path: str, rates: tuple[int, ...], times: StageTimes) -> DecodedFile:
    with times.stage("decode"):
        d = audio.decode(path)
    n = audio.chunk_count(len(d.samples), d.sample_rate)
    out = {}
    with times.stage("resample"):
        for r in rates:
            out[r] = audio.to_chunks(audio.resample(d.samples, d.sample_rate, r), r, n)
    return DecodedFile(audio.row_ids(Path(path).stem, n), out, d.duration_s)


DecodedBundle = tuple[list[tuple[DecodedFile | None, str | None]], dict]


def _decode_bundle(bundle: Bundle, rates: tuple[int, ...]) -> DecodedBundle:
    """Decode process: decode and resample a bundle's files; a file that cannot be read says why."""
    times = StageTimes()
    out: list[tuple[DecodedFile | None, str | None]] = []
    for job in bundle.files:
        try:
            out.append((_decode_file(job.path, rates, times), None))
        except audio.AudioError as exc:
            out.append((None, exc.reason))
        except Exception as exc:  # noqa: BLE001 - any decoder failure is one file's failure, not the run's
            out.append((None, f"{type(exc).__name__}: {exc}"))
    return out, times.as_dict()


def _score_bundle(scorer: Scorer, bundle: Bundle, decoded: DecodedBundle) -> list[FileResult]:
    """Score a decoded bundle in one call; if that fails, file by file, so a failure stays one file's."""
    results = [FileResult(job, error=err) for job, (_, err) in zip(bundle.files, decoded[0], strict=True)]
    good = [(r, d) for r, (d, _) in zip(results, decoded[0], strict=True) if d is not None]
    for r, d in good:
        r.row_ids, r.duration_s = d.row_ids, d.duration_s
    if not good:
        return results
    try:
        if len(good) == 1:
            chunks = good[0][1].chunks
        else:
            chunks = {rate: np.concatenate([d.chunks[rate] for _, d in good]) for rate in good[0][1].chunks}
        probs = scorer.score(chunks)
        ends = np.cumsum([len(d.row_ids) for _, d in good])[:-1]
        for (r, _), p in zip(good, np.split(probs, ends), strict=True):
            r.probs = p
    except Exception as exc:  # noqa: BLE001 - isolate the file that fails
        if len(good) == 1:
            good[0][0].error = f"scoring failed: {type(exc).__name__}: {exc}"
        else:
            for r, d in good:
                results_one = _score_bundle(scorer, Bundle(bundle.index, (r.job,)), ([(d, None)], {}))
                r.probs, r.error = results_one[0].probs, results_one[0].error
    return results


_W: dict[str, Any] = {}


def _init_worker(plan: Plan) -> None:
    """Worker process: build the interpreters once; a failure is reported with every job, not swallowed."""
    _W.clear()
    _W["times"] = StageTimes()
    try:
        _W["scorer"] = Scorer(plan, _W["times"])
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which stops the run with it
        _W["setup_error"] = f"{type(exc).__name__}: {exc}"


def _score_job(bundle: Bundle) -> list[FileResult]:
    """Worker process: decode, resample and score a bundle of whole files."""
    if "setup_error" in _W:
        return [
            FileResult(j, error=_W["setup_error"], worker={"setup_error": _W["setup_error"]})
            for j in bundle.files
        ]
    scorer: Scorer = _W["scorer"]
    times: StageTimes = _W["times"]
    decoded = _decode_bundle(bundle, scorer.plan.rates)
    times.add(decoded[1])
    results = _score_bundle(scorer, bundle, decoded)
    # Stage times travel with the results and are reset, so each second is counted once.
    results[0].times = times.as_dict()
    _W["times"] = scorer.times = StageTimes()
    if not _W.get("reported"):
        _W["reported"] = True
        results[0].worker = {"setup_wall": scorer.setup_wall, "unmapped": scorer.unmapped}
    return results


def _pool_stream(
    fn: Callable[..., Any],
    jobs: Iterable[Bundle],
    processes: int,
    inflight: int,
    args: tuple = (),
    initializer: Callable[..., None] | None = None,
    initargs: tuple = (),
) -> Generator[tuple[Bundle, Any], None, None]:
    """Run ``fn(job, *args)`` in spawned processes with at most ``inflight`` jobs out; yield as they finish.

    A process that dies (a decoder crash) breaks the pool: a new one takes over, the jobs then in flight are
    retried once, and a job in flight during two deaths is yielded as ``(job, BrokenProcessPool)``.
    """
    queue = collections.deque(jobs)
    attempts: collections.Counter[int] = collections.Counter()
    ctx = mp.get_context("spawn")
    while queue:
        ex = ProcessPoolExecutor(processes, mp_context=ctx, initializer=initializer, initargs=initargs)
        running: dict[Future, Bundle] = {}
        try:
            while queue or running:
                while queue and len(running) < inflight:
                    job = queue.popleft()
                    running[ex.submit(fn, job, *args)] = job
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for f in done:
                    job = running.pop(f)
                    yield job, f.result()
        except BrokenProcessPool as exc:
            log.warning("a worker process died (%s); starting a new one", exc)
            retry = []
            for job in running.values():
                attempts[job.index] += 1
                if attempts[job.index] >= 2:
                    yield job, exc
                else:
                    retry.append(job)
            queue.extendleft(reversed(retry))
        finally:
            ex.shutdown(wait=True, cancel_futures=True)


def _died(bundle: Bundle, exc: BaseException, where: str) -> list[FileResult]:
    return [FileResult(j, error=f"{where} process died while reading it: {exc}") for j in bundle.files]


def _local_stream(
    plan: Plan, jobs: list[Bundle], overlap: bool, times: StageTimes, setup: dict
) -> Iterator[FileResult]:
    """workers == 1: interpreters here, decoding in one process ahead of them (or inline without overlap)."""
    scorer = Scorer(plan, times)
    setup["wall"] = setup.get("wall", 0.0) + scorer.setup_wall
    setup["unmapped"] = scorer.unmapped
    if overlap:
        decoded: Generator[tuple[Bundle, Any], None, None] = _pool_stream(
            _decode_bundle, jobs, 1, DECODE_AHEAD, args=(plan.rates,)
        )
    else:
        decoded = ((b, _decode_bundle(b, plan.rates)) for b in jobs)
    try:
        for bundle, out in decoded:
            if isinstance(out, BaseException):
                yield from _died(bundle, out, "decoder")
                continue
            times.add(out[1])
            yield from _score_bundle(scorer, bundle, out)
    finally:
        decoded.close()


def _worker_stream(
    plan: Plan, jobs: list[Bundle], workers: int, times: StageTimes, setup: dict
) -> Iterator[FileResult]:
    """workers >= 2: whole files in long-lived worker processes; stage times come back with the results."""
    worst = 0.0
    for bundle, results in _pool_stream(
        _score_job, jobs, workers, 2 * workers, initializer=_init_worker, initargs=(plan,)
    ):
        if isinstance(results, BaseException):
            yield from _died(bundle, results, "worker")
            continue
        first = results[0]
        if first.worker and "setup_error" in first.worker:
            raise InferError(f"worker processes could not build the models: {first.worker['setup_error']}")
        times.add(first.times)
        if first.worker:
            if first.worker["setup_wall"] > worst:  # workers start together: the slowest one is the wait
                setup["wall"] = setup.get("wall", 0.0) + first.worker["setup_wall"] - worst
                worst = first.worker["setup_wall"]
            setup["unmapped"] = first.worker["unmapped"]
        yield from results


def _stream(
    plan: Plan, jobs: list[FileJob], workers: int, overlap: bool, times: StageTimes, setup: dict
) -> Iterator[FileResult]:
    work = bundles(jobs)
    if workers <= 1:
        return _local_stream(plan, work, overlap, times, setup)
    return _worker_stream(plan, work, workers, times, setup)


# ---- the budget guard --------------------------------------------------------------------------------------
@dataclass
class BudgetGuard:
    """Predicts the run's total wall time from its own rate; says when to switch to the fastest plan."""

    total_bytes: int
    budget_s: float
    margin_s: float
    after_files: int = GUARD_AFTER_FILES
    enabled: bool = True
    done_bytes: int = 0
    done_files: int = 0
    predicted_s: float = float("nan")
    switched: dict = field(default_factory=dict)

    def update(self, job: FileJob, run_elapsed: float, stream_elapsed: float) -> bool:
        """Record one finished file; True when the prediction crosses the budget and no switch happened yet."""
        self.done_bytes += job.size
        self.done_files += 1
        rate = stream_elapsed / max(self.done_bytes, 1)
        self.predicted_s = run_elapsed + rate * (self.total_bytes - self.done_bytes)
        return (
            self.enabled
            and not self.switched
            and self.done_files >= self.after_files
            and self.done_bytes < self.total_bytes
            and self.predicted_s > self.budget_s - self.margin_s
        )


# ---- the run -----------------------------------------------------------------------------------------------
@dataclass
class InferResult:
    submission: Path
    frame: pd.DataFrame
    profile: Profile
    errors: list[dict]  # {"file", "error", "rows"}: files that got the prior
    unmapped: list[str]  # species the passthrough encoder cannot predict (they score 0)
    plan: dict
    error: str | None = None  # set when the run itself failed and the file is the prior-only fallback

    @property
    def table(self) -> str:
        return table([self.profile])


def file_jobs(comp: Competition, split: str, limit: int | None) -> list[FileJob]:
    files = comp.audio_files(split)
    if limit is not None:
        files = files[:limit]
    return [FileJob(i, str(p), p.stat().st_size) for i, p in enumerate(files)]


def fallback_row_ids(job: FileJob, sample_rows: dict[str, list[str]]) -> list[str]:
    """Rows for a file that could not be scored: as many as its header says, else as many as
    sample_submission.csv lists for it or a 4-minute soundscape has (48), whichever is more: a missing row would
    fail the whole submission, an extra one is ignored."""
    try:
        import soundfile as sf

        info = sf.info(job.path)
        if info.frames > 0 and info.samplerate > 0:
            return audio.row_ids(job.stem, audio.chunk_count(info.frames, info.samplerate))
    except Exception:  # noqa: BLE001 - a header we cannot read: fall through
        pass
    nominal = audio.row_ids(job.stem, audio.chunk_count(int(SOUNDSCAPE_S), 1))
    listed = sample_rows.get(job.stem, [])
    return listed if len(listed) > len(nominal) else nominal


def _sample_rows(comp: Competition) -> dict[str, list[str]]:
    p = comp.path("sample_submission.csv")
    if not p.exists():
        return {}
    ids = pd.read_csv(p, usecols=["row_id"])["row_id"].astype(str)
    out: dict[str, list[str]] = {}
    for rid in ids:
        stem, _, end = rid.rpartition("_")
        if stem and end.isdigit():
            out.setdefault(stem, []).append(rid)
    return out


def write_submission(path: Path, row_ids: list[str], probs: np.ndarray, species: list[str]) -> None:
    """CSV through Arrow (15x faster than pandas for 50,000 rows x 182 species), written atomically."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    probs = np.clip(np.nan_to_num(probs, nan=0.0), 0.0, 1.0).astype(np.float32, copy=False)
    t = pa.Table.from_arrays(
        [pa.array(row_ids, pa.string()), *(pa.array(probs[:, j]) for j in range(len(species)))],
        names=["row_id", *species],
    )
    buf = io.BytesIO()
    buf.write((",".join(["row_id", *species]) + "\n").encode())
    pcsv.write_csv(t, buf, pcsv.WriteOptions(include_header=False, quoting_style="none"))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def _assemble(
    jobs: list[FileJob], results: dict[int, FileResult], species: list[str], sample_rows: dict[str, list[str]]
) -> tuple[list[str], np.ndarray, list[dict]]:
    """Rows in file order; unscored files and unpredicted species get the prior."""
    s = len(species)
    good = [results[j.index].probs for j in jobs if j.index in results and results[j.index].probs is not None]
    if good:
        stacked = np.concatenate(good)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: no model predicts the species
            prior = np.nanmean(stacked, axis=0) if len(stacked) else np.zeros(s)
        prior = np.nan_to_num(prior, nan=0.0).astype(np.float32)
    else:
        prior = np.zeros(s, dtype=np.float32)
    row_ids: list[str] = []
    blocks: list[np.ndarray] = []
    errors: list[dict] = []
    for j in jobs:
        r = results.get(j.index)
        if r is not None and r.probs is not None:
            p = np.where(np.isnan(r.probs), prior, r.probs)
            row_ids += r.row_ids
            blocks.append(p)
            continue
        ids = fallback_row_ids(j, sample_rows)
        reason = r.error if r is not None and r.error else "not scored (the run stopped before it)"
        errors.append({"file": j.path, "error": reason, "rows": len(ids)})
        row_ids += ids
        blocks.append(np.broadcast_to(prior, (len(ids), s)))
    probs = np.concatenate(blocks) if blocks else np.zeros((0, s), dtype=np.float32)
    return row_ids, np.clip(probs, 0.0, 1.0).astype(np.float32, copy=False), errors


def run_inference(
    data_dir: str | Path,
    out: str | Path = "submission.csv",
    models: str | Path | None = None,
    passthrough: str | None = None,
    workers: int | None = 1,
    profile: str | Path | None = None,
    *,
    split: str = "test_soundscapes",
    limit: int | None = None,
    windows: str | None = None,
    batch_size: int | None = None,
    num_threads: int | None = None,
    encoder_options: dict | None = None,
    overlap: bool = True,
    budget_min: float = BUDGET_MIN,
    margin_min: float = SAFETY_MARGIN_MIN,
    guard: bool = True,
    guard_after: int = GUARD_AFTER_FILES,
    fallback: bool = True,
    progress: bool = True,
    name: str | None = None,
) -> InferResult:
    """Score every file of ``split`` and write the submission to ``out``; profile the run.

    ``workers=None`` uses one process per usable core. With ``fallback`` (the default), a run that fails as a
    whole (no model, a broken model file) still writes a valid file with the prior for every row, returns it
    with ``error`` set, and logs why; without it, the exception propagates after that file is written.
    """
    t_run = time.perf_counter()
    cpu0 = cpu_seconds()
    out = Path(out)
    comp = Competition(data_dir)
    species = list(comp.species)
    jobs = file_jobs(comp, split, limit)
    sample_rows = _sample_rows(comp)
    cores = usable_cores()
    n_workers = max(1, min(workers or cores, len(bundles(jobs))))  # no idle worker processes
    times = StageTimes()
    setup: dict = {}
    results: dict[int, FileResult] = {}
    budget = BudgetGuard(
        sum(j.size for j in jobs), budget_min * 60, margin_min * 60, guard_after, enabled=guard
    )
    plan_desc: dict = {}
    failure: BaseException | None = None
    bar = tqdm(total=len(jobs), unit="file", desc="infer", disable=not progress)
    try:
        plan = make_plan(
            data_dir, models, passthrough,
            {**(encoder_options or {}), "windows": windows, "batch_size": batch_size, "num_threads": num_threads},
        )  # fmt: skip
        plan_desc = plan.describe()
        log.info("scoring %d files of %s with %s, %d worker(s)", len(jobs), split, plan.name, n_workers)
        remaining = list(jobs)
        while remaining:
            t_stream = time.perf_counter()
            switch_to: Plan | None = None
            stream = _stream(plan, remaining, n_workers, overlap, times, setup)
            try:
                for res in stream:
                    results[res.job.index] = res
                    if res.error:
                        log.warning("%s: %s (its rows get the prior)", res.job.path, res.error)
                    bar.update(1)
                    now = time.perf_counter()
                    if budget.update(res.job, now - t_run, now - t_stream):
                        switch_to = plan.fastest()
                        budget.switched = {
                            "after_files": budget.done_files,
                            "predicted_min": round(budget.predicted_s / 60, 2),
                            "limit_min": round((budget.budget_s - budget.margin_s) / 60, 2),
                            "from": plan.name,
                            "to": switch_to.name if switch_to else None,
                        }
                        if switch_to is None:
                            log.warning(
                                "budget guard: predicted %.1f min exceeds %.1f min, and %s is already the fastest "
                                "configuration; going on",
                                budget.predicted_s / 60, (budget.budget_s - budget.margin_s) / 60, plan.name,
                            )  # fmt: skip
                        else:
                            log.warning(
                                "budget guard: after %d files the run is predicted to take %.1f min, over the "
                                "%.0f-minute budget less a %.0f-minute margin; switching the remaining files "
                                "from %s to %s",
                                budget.done_files, budget.predicted_s / 60, budget_min, margin_min,
                                plan.name, switch_to.name,
                            )  # fmt: skip
                            break
                    bar.set_postfix(pred_min=f"{budget.predicted_s / 60:.1f}", errors=_count_errors(results))
            finally:
                stream.close()
            remaining = [j for j in remaining if j.index not in results]
            if switch_to is None:
                break
            plan = switch_to
            plan_desc = {**plan_desc, "switched_to": plan.describe()}
    except Exception as exc:
        if not fallback:
            failure = exc
        else:
            log.error(
                "inference failed (%s: %s); writing the prior for every row not scored",
                type(exc).__name__,
                exc,
            )
        plan_desc = {**plan_desc, "error": f"{type(exc).__name__}: {exc}"}
    finally:
        bar.close()

    with times.stage("writing"):
        row_ids, probs, errors = _assemble(jobs, results, species, sample_rows)
        write_submission(out, row_ids, probs, species)
    wall = time.perf_counter() - t_run
    prof = Profile(
        name=name or plan_desc.get("name", "failed"),
        files=len(jobs),
        failed_files=len(errors),
        rows=len(row_ids),
        audio_s=sum(r.duration_s for r in results.values() if r.probs is not None),
        wall_s=wall,
        cpu_s=cpu_seconds() - cpu0,
        setup_s=setup.get("wall", 0.0),
        stages=stages_from(times),
        cores=cores,
        workers=n_workers,
        config={**plan_desc, "split": split, "overlap": overlap and n_workers == 1},
        guard={
            "budget_min": budget_min,
            "margin_min": margin_min,
            "predicted_min": round(budget.predicted_s / 60, 3) if budget.done_files else None,
            "switched": budget.switched or None,
        },
        peak_rss_mb=peak_rss_mb(),
        budget_min=budget_min,
    )
    if profile:
        write_profiles(profile, [prof])
    frame = pd.DataFrame(probs, columns=species)
    frame.insert(0, "row_id", row_ids)
    if errors:
        log.warning("%d of %d files got the prior instead of predictions", len(errors), len(jobs))
    if failure is not None:
        raise failure
    return InferResult(out, frame, prof, errors, setup.get("unmapped", []), plan_desc, plan_desc.get("error"))


def _count_errors(results: dict[int, FileResult]) -> int:
    return sum(1 for r in results.values() if r.error)


class SubmissionError(BirdkitError, ValueError):
    """A submission file Kaggle would reject or mis-score; the message names the file and the problem."""


def check_submission(
    path: str | Path, data_dir: str | Path, split: str = "test_soundscapes", limit: int | None = None
) -> pd.DataFrame:
    """Read a submission back and check what Kaggle relies on: the species columns of sample_submission.csv in
    its order, unique row ids, every file of ``split`` with its consecutive 5 s rows, probabilities in [0, 1]."""
    comp = Competition(data_dir)
    species = list(comp.species)
    df = pd.read_csv(path, dtype={"row_id": str})
    if list(df.columns) != ["row_id", *species]:
        raise SubmissionError(
            f"{path}: columns differ from sample_submission.csv's (row_id + {len(species)} species)"
        )
    if df["row_id"].duplicated().any():
        raise SubmissionError(
            f"{path}: duplicate row ids, e.g. {df.loc[df['row_id'].duplicated(), 'row_id'].iloc[0]}"
        )
    values = df[species].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all() or values.min(initial=0.0) < 0 or values.max(initial=0.0) > 1:
        raise SubmissionError(f"{path}: probabilities must be finite and within [0, 1]")
    by_stem: dict[str, list[int]] = {}
    for rid in df["row_id"]:
        stem, _, end = rid.rpartition("_")
        by_stem.setdefault(stem, []).append(int(end))
    for job in file_jobs(comp, split, limit):
        ends = by_stem.get(job.stem)
        if not ends:
            raise SubmissionError(f"{path}: no rows for {job.path}")
        if sorted(ends) != audio.chunk_ends(len(ends)):
            raise SubmissionError(f"{path}: rows of {job.stem} are not consecutive 5 s chunks from 5")
    return df
