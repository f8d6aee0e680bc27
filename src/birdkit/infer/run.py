"""The run: every file of a split scored (:mod:`.schedule`), watched by the budget guard (:mod:`.guard`), the
submission written (:mod:`.submission`) and the run profiled, whatever fails.

A file that cannot be read (or whose scoring fails) still gets its rows, filled with the prior, and the reason is
logged and returned. Every row sample_submission.csv lists for the test split is in the file exactly once.

A run that fails as a whole (no model, a broken model file) either leaves ``out`` as it was (``fallback=False``:
the CLI; a usage error must not cost the user a good file) or writes a valid file with the prior for every row
(``fallback=True``: the Kaggle notebook, which must always leave a submission).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from tqdm import tqdm

from birdkit.audio import AUDIO_SUFFIXES
from birdkit.competition import Competition
from birdkit.errors import BirdkitError, OptionError
from birdkit.infer.files import FileJob, FileResult, file_jobs, same_stems
from birdkit.infer.guard import GUARD_AFTER_FILES, SAFETY_MARGIN_MIN, BudgetGuard
from birdkit.infer.plan import InferError, Plan, make_plan
from birdkit.infer.schedule import bundles, stream
from birdkit.infer.submission import assemble, sample_rows, write_submission
from birdkit.profile import (
    BUDGET_MIN,
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


@dataclass(frozen=True)
class InferConfig:
    """One inference run: what to score, with what, how, and against which budget.

    ``workers=None`` uses one process per usable core. ``windows``, ``batch_size`` and ``num_threads`` (and any
    ``encoder_options``) override what the cards say, for every encoder that takes them. With ``fallback`` (the
    default), a run that fails as a whole still writes a valid file with the prior for every row and returns it
    with ``error`` set; without it, the exception propagates and ``out`` is left as it was.

    ``allow_missing_species``: heads that do not cover every submission species are refused (an all-prior
    column is a silent wrong answer) unless this is true; None follows ``fallback`` (the notebook scores what it
    can rather than submit the prior everywhere).
    """

    data_dir: str | Path
    out: str | Path = "submission.csv"
    models: str | Path | None = None
    passthrough: str | None = None
    workers: int | None = 1
    profile: str | Path | None = None
    split: str = "test_soundscapes"
    limit: int | None = None
    windows: str | None = None
    batch_size: int | None = None
    num_threads: int | None = None
    encoder_options: dict = field(default_factory=dict)
    overlap: bool = True
    budget_min: float = BUDGET_MIN
    margin_min: float = SAFETY_MARGIN_MIN
    guard: bool = True
    guard_after: int = GUARD_AFTER_FILES
    fallback: bool = True
    progress: bool = True
    name: str | None = None
    allow_missing_species: bool | None = None
    heads: tuple[str, ...] | None = None  # only these heads of the models folder (None: all)

    def __post_init__(self) -> None:
        checks = [
            (
                self.workers is None or self.workers >= 0,
                f"--workers {self.workers}: give 1 or more (none: per core)",
            ),
            (
                self.limit is None or self.limit >= 1,
                f"--limit {self.limit}: give 1 or more files (leave it out for all)",
            ),
            (
                math.isfinite(self.budget_min) and self.budget_min > 0,
                f"--budget-min {self.budget_min}: give a positive number of minutes (Kaggle's is {BUDGET_MIN:g})",
            ),
            (self.margin_min >= 0, f"margin_min {self.margin_min}: must be 0 or more minutes"),
            (self.guard_after >= 1, f"guard_after {self.guard_after}: the guard needs at least one file"),
            (
                self.batch_size is None or self.batch_size >= 1,
                f"--batch-size {self.batch_size}: must be >= 1",
            ),
            (
                self.num_threads is None or self.num_threads >= 1,
                f"num_threads {self.num_threads}: must be >= 1",
            ),
        ]
        for ok, msg in checks:
            if not ok:
                raise OptionError(msg)
        out = Path(self.out)
        if out.is_dir():
            raise OptionError(f"--out {out}: is a folder; give a file name, e.g. {out / 'submission.csv'}")
        if any(p.exists() and not p.is_dir() for p in out.parents):
            raise OptionError(f"--out {out}: a parent of it is a file, not a folder; give another path")

    @property
    def missing_species_allowed(self) -> bool:
        return self.fallback if self.allow_missing_species is None else self.allow_missing_species

    def options(self) -> dict[str, Any]:
        """Encoder options from the config: ``encoder_options`` with the named ones on top (None: the card's)."""
        named = {"windows": self.windows, "batch_size": self.batch_size, "num_threads": self.num_threads}
        return {**self.encoder_options, **{k: v for k, v in named.items() if v is not None}}


@dataclass
class InferResult:
    submission: Path
    frame: pd.DataFrame  # row_id + species, float64
    profile: Profile
    errors: list[dict]  # {"file", "error", "rows"}: files that got the prior
    unmapped: list[str]  # species the passthrough encoder cannot predict (they score 0)
    plan: dict
    error: str | None = None  # set when the run itself failed and the file is the prior-only fallback
    missing_species: list[str] = field(default_factory=list)  # species no head predicts (they get the prior)

    @property
    def table(self) -> str:
        return table([self.profile])


class _Run:
    """One run's state: its files, timers, results so far, and the guard."""

    def __init__(self, config: InferConfig) -> None:
        self.config = config
        self.t0 = time.perf_counter()
        self.cpu0 = cpu_seconds()
        self.comp = Competition(config.data_dir)
        self.jobs, self.skipped = _unique_stems(
            file_jobs(self.comp, config.split, config.limit), config.fallback
        )
        if not self.jobs and not config.fallback:
            raise InferError(
                f"{self.comp.path(config.split)}: no audio files ({', '.join(AUDIO_SUFFIXES)}) to score; give "
                "the competition folder whose test_soundscapes/ holds them, or another --split"
            )
        self.cores = usable_cores()
        self.workers = max(1, min(config.workers or self.cores, len(bundles(self.jobs))))  # none idle
        self.times = StageTimes()
        self.setup: dict[str, float] = {}
        self.results: dict[int, FileResult] = {}
        self.guard = BudgetGuard(
            sum(j.size for j in self.jobs),
            config.budget_min,
            config.margin_min,
            config.guard_after,
            config.guard,
        )
        self.plan: dict = {}
        self.unmapped: list[str] = []
        self.missing: list[str] = []

    def score(self) -> None:
        """Score every file; when the guard says so, the remaining ones with the fastest plan."""
        c = self.config
        t = time.perf_counter()
        with self.times.stage("setup"):
            plan, built = _make_plan(self.comp, c)
        self.setup["wall"] = time.perf_counter() - t
        self.plan, self.unmapped = plan.describe(), plan.unmapped
        self.missing = _missing_species(plan, c)
        if self.workers > 1:
            built = {}  # the workers build their own; this one only mapped the species
        log.info(
            "scoring %d files of %s with %s, %d worker(s)", len(self.jobs), c.split, plan.name, self.workers
        )
        bar = tqdm(total=len(self.jobs), unit="file", desc="infer", disable=not c.progress)
        remaining = list(self.jobs)
        try:
            while remaining:
                faster = self._stream(plan, remaining, built, bar)
                remaining = [j for j in remaining if j.index not in self.results]
                if faster is None:
                    break
                plan, built = faster, {}
                self.plan = {**self.plan, "switched_to": plan.describe()}
        finally:
            bar.close()

    def _stream(self, plan: Plan, jobs: list[FileJob], built: dict[int, Any], bar: tqdm) -> Plan | None:
        """Score ``jobs`` until done or until the guard switches; returns the plan to switch to, if any."""
        t_stream = time.perf_counter()
        results = stream(plan, jobs, self.workers, self.config.overlap, self.times, self.setup, built)
        try:
            for res in results:
                self.results[res.job.index] = res
                if res.error:
                    log.warning("%s: %s (its rows get the prior)", res.job.path, res.error)
                bar.update(1)
                now = time.perf_counter()
                if self.guard.update(res.job, now - self.t0, now - t_stream):
                    faster = self.guard.switch(plan)
                    if faster is not None:
                        return faster
                errors = sum(1 for r in self.results.values() if r.error)
                bar.set_postfix(pred_min=f"{self.guard.predicted_s / 60:.1f}", errors=errors)
        finally:
            results.close()
        return None

    def finish(self) -> tuple[list[str], np.ndarray, list[dict], Profile]:
        """Write the submission (the prior where nothing was scored) and the profile."""
        c = self.config
        species = list(self.comp.species)
        with self.times.stage("writing"):
            listed = c.split == "test_soundscapes"
            rows = sample_rows(self.comp) if listed else {}
            complete = listed and c.limit is None
            row_ids, probs, errors = assemble(self.jobs, self.results, species, rows, listed, complete)
            errors = self.skipped + errors
            write_submission(Path(c.out), row_ids, probs, species)
        prof = Profile(
            name=c.name or self.plan.get("name", "failed"),
            files=len(self.jobs),
            failed_files=sum(1 for e in errors if not e.get("partial")),
            rows=len(row_ids),
            audio_s=sum(r.duration_s for r in self.results.values() if r.probs is not None),
            wall_s=time.perf_counter() - self.t0,
            cpu_s=cpu_seconds() - self.cpu0,
            setup_s=self.setup.get("wall", 0.0),
            stages=stages_from(self.times),
            cores=self.cores,
            workers=self.workers,
            config={**self.plan, "split": c.split, "overlap": c.overlap and self.workers == 1},
            guard=self.guard.record(),
            peak_rss_mb=peak_rss_mb(),
            budget_min=c.budget_min,
        )
        if c.profile:
            write_profiles(c.profile, [prof])
        if errors:
            log.warning("%d of %d files got the prior instead of predictions", len(errors), len(self.jobs))
        return row_ids, probs, errors, prof


def run_inference(config: InferConfig) -> InferResult:
    """Score every file of ``config.split`` and write the submission to ``config.out``; profile the run."""
    run = _Run(config)
    try:
        run.score()
    except Exception as exc:
        if not config.fallback:
            raise  # nothing written: ``out`` keeps what it held
        log.error(
            "inference failed (%s: %s); writing the prior for every row not scored", type(exc).__name__, exc
        )
        run.plan = {**run.plan, "error": f"{type(exc).__name__}: {exc}"}
    row_ids, probs, errors, prof = run.finish()
    frame = pd.DataFrame(probs, columns=list(run.comp.species))
    frame.insert(0, "row_id", row_ids)
    return InferResult(
        Path(config.out), frame, prof, errors, run.unmapped, run.plan, run.plan.get("error"), run.missing
    )


def _make_plan(comp: Competition, c: InferConfig) -> tuple[Plan, dict[int, Any]]:
    """:func:`make_plan`, with anything a broken model file raises turned into an error naming what was read."""
    try:
        plan, built = make_plan(comp, c.models, c.passthrough, c.options(), heads=c.heads)
        for h, _ in plan.heads:  # a broken graph fails here, naming it, not inside a worker
            _load_head(h.path)
        return plan, built
    except BirdkitError:
        raise
    except Exception as exc:
        what = f"--models {c.models}" if c.models else f"--passthrough {c.passthrough}"
        raise InferError(
            f"{what}: the model could not be loaded ({type(exc).__name__}: {exc}); export it again "
            "(`birdkit export`) or check the options given with it (--windows, ...)"
        ) from exc


def _load_head(path: Path) -> None:
    from birdkit.heads.runner import HeadRunner

    try:
        HeadRunner(path, batch_size=1)
    except BirdkitError:
        raise
    except Exception as exc:
        raise InferError(
            f"{path}: not a readable head graph ({type(exc).__name__}: {exc}); export it again (`birdkit export`)"
        ) from exc


def _missing_species(plan: Plan, c: InferConfig) -> list[str]:
    """Submission species no head predicts: refused unless allowed (then they get the prior, said loudly)."""
    if not plan.heads:
        return []
    covered = {s for h, _ in plan.heads for s in h.card.species}
    missing = [s for s in plan.species if s not in covered]
    if not missing:
        return []
    shown = " ".join(missing[:20]) + (f" ... (+{len(missing) - 20} more)" if len(missing) > 20 else "")
    where = f"the heads in {c.models}"
    if not c.missing_species_allowed:
        raise InferError(
            f"{where} predict none of {len(missing)} of the {len(plan.species)} submission species: {shown}. "
            "They were trained for another species list; train and export heads on this competition, or pass "
            "--allow-missing-species to give those columns the prior"
        )
    log.warning(
        "%s predict none of %d submission species; their columns get the prior: %s",
        where,
        len(missing),
        shown,
    )
    return missing


def _unique_stems(jobs: list[FileJob], fallback: bool) -> tuple[list[FileJob], list[dict]]:
    """Files that share a name (``a.mp3``, ``a.wav``) would give repeated row ids: refused, or (``fallback``)
    the first of each kept and the others reported."""
    same = same_stems(jobs)
    if not same:
        return jobs, []
    first = next(iter(same.values()))
    msg = (
        f"{len(same)} file names are used twice, e.g. {' and '.join(first)}: their row ids would repeat; "
        "rename or remove one of each"
    )
    if not fallback:
        raise InferError(msg)
    log.error("%s; scoring the first of each", msg)
    drop = {p for paths in same.values() for p in paths[1:]}
    skipped = [{"file": p, "error": "another file has the same name (not scored)", "rows": 0} for p in drop]
    kept = [j for j in jobs if j.path not in drop]
    return [FileJob(i, j.path, j.size) for i, j in enumerate(kept)], skipped
