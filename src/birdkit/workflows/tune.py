"""`birdkit tune`: choose the per-file post-processing on a labelled validation set (a `birdkit mix` folder, or
any competition folder with ``test_labels_5s.csv`` that is not the test set you report on).

The models score every validation file once, without post-processing (the same plan and scorer as `birdkit
infer`); the candidates are then cheap numpy passes over those probabilities, searched with Optuna (TPE,
seeded) over the neighbour-smoothing kernel and the file-level prior. "No post-processing" is always trial 0,
so the choice can only match or beat it on validation. ``--apply DATASET`` writes the choice as the exported
dataset's ``postprocess.json``, which the CLI and the notebook both read (:func:`birdkit.infer.plan.make_plan`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdkit import metrics
from birdkit.audio import load_chunks
from birdkit.competition import Competition
from birdkit.errors import OptionError
from birdkit.infer import postprocess as pp
from birdkit.infer.files import file_jobs
from birdkit.infer.plan import make_plan
from birdkit.infer.scorer import Scorer
from birdkit.io import atomic_write_json, atomic_write_text
from birdkit.package.layout import MANIFEST, build_manifest

log = logging.getLogger(__name__)

KERNELS = ([1], [1, 2, 1], [1, 1, 1], [1, 2, 4, 2, 1], [1, 1, 1, 1, 1])
PRIOR_RANGE = {"add": (0.0, 0.9), "mul": (0.0, 2.0)}


@dataclass
class Scored:
    """Raw (not post-processed) probabilities of every validation file, with the truth in the same rows."""

    species: list[str]
    files: list[tuple[list[str], np.ndarray]]  # (row ids, probs [n, S]) per file
    truth: pd.DataFrame

    def score(self, spec: dict[str, Any]) -> float:
        ids = [r for rows, _ in self.files for r in rows]
        probs = np.concatenate([pp.apply(spec, p) for _, p in self.files])
        sub = pd.DataFrame(np.nan_to_num(probs, nan=0.0), columns=self.species)
        sub.insert(0, "row_id", ids)
        return metrics.score_submission(sub, self.truth)

    def subset(self, files: np.ndarray) -> Scored:
        """The same scores on a resample of the files (a file drawn twice is scored twice, renamed)."""
        picked = [
            ([f"{k}~{r}" for r in self.files[i][0]], self.files[i][1])
            for k, i in enumerate(np.asarray(files))
        ]
        by_id = dict(zip(self.truth["row_id"], self.truth["labels"], strict=True))
        rows = [(r, by_id[r.split("~", 1)[1]]) for ids, _ in picked for r in ids]
        return Scored(self.species, picked, pd.DataFrame(rows, columns=["row_id", "labels"]))


@dataclass
class TuneResult:
    best: dict[str, Any]
    score: float
    baseline: float
    trials: list[dict] = field(default_factory=list)
    report: Path | None = None
    scored: Scored | None = None  # the raw validation scores the choice was made on


def paired_wins(a: TuneResult, b: TuneResult, resamples: int = 200, seed: int = 0) -> float:
    """Share of bootstrap resamples of the validation files (the same files for both) on which ``a`` (with its
    post-processing) scores above ``b``: a gain a few files make is not a gain (ties count half)."""
    assert a.scored is not None and b.scored is not None
    rng = np.random.default_rng(seed)
    n = len(a.scored.files)
    wins = 0.0
    for _ in range(resamples):
        files = rng.integers(0, n, n)
        sa, sb = a.scored.subset(files).score(a.best), b.scored.subset(files).score(b.best)
        wins += 1.0 if sa > sb else 0.5 if sa == sb else 0.0
    return wins / resamples


def score_raw(
    data_dir: str | Path, models: str | Path | None = None, passthrough: str | None = None
) -> Scored:
    """Score a labelled folder's ``test_soundscapes`` with the models, post-processing off."""
    comp = Competition(data_dir)
    if not comp.path("test_labels_5s.csv").exists():
        raise OptionError(
            f"{comp.root}: no test_labels_5s.csv; tune needs labelled soundscapes (make some with `birdkit mix`)"
        )
    plan, built = make_plan(comp, models, passthrough, postprocess={})
    scorer = Scorer(plan, built=built)
    files = []
    for job in file_jobs(comp, "test_soundscapes", None):
        d = load_chunks(job.path, plan.rates)
        files.append((d.row_ids, scorer.score(d.by_rate)))
    return Scored(list(plan.species), files, comp.test_labels())


def search(scored: Scored, trials: int = 60, seed: int = 0) -> TuneResult:
    """Optuna TPE over kernel, prior mode and prior weight (steps of 0.05); trial 0 is no post-processing."""
    import optuna

    if trials < 1:
        raise OptionError(f"--trials {trials}: must be 1 or more")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seen: dict[str, float] = {}

    def spec_of(t: optuna.Trial) -> dict[str, Any]:
        kernel = KERNELS[t.suggest_int("kernel", 0, len(KERNELS) - 1)]
        mode = t.suggest_categorical("prior_mode", list(PRIOR_RANGE))
        lo, hi = PRIOR_RANGE[mode]
        a = t.suggest_float(f"file_prior_{mode}", lo, hi, step=0.05)
        return pp.check({"kernel": kernel, "file_prior": round(a, 2), "prior_mode": mode})

    def objective(t: optuna.Trial) -> float:
        spec = spec_of(t)
        key = json.dumps(spec, sort_keys=True)
        if key not in seen:
            seen[key] = scored.score(spec)
        t.set_user_attr("spec", spec)
        return seen[key]

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    study.enqueue_trial({"kernel": 0, "prior_mode": "add", "file_prior_add": 0.0})
    study.optimize(objective, n_trials=trials)
    baseline = seen[json.dumps({}, sort_keys=True)]
    rows = sorted(
        ({"spec": t.user_attrs["spec"], "score": t.value} for t in study.trials if t.value is not None),
        key=lambda r: -r["score"],
    )
    # ties (common on small sets): prefer the simplest spec, i.e. the fewest keys, then the smallest prior
    top = rows[0]["score"]
    best = min(
        (r for r in rows if r["score"] >= top - 1e-12),
        key=lambda r: (len(r["spec"]), r["spec"].get("file_prior", 0.0)),
    )
    return TuneResult(best["spec"], float(best["score"]), float(baseline), rows)


def write_report(result: TuneResult, out: str | Path, source: str) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# birdkit tune",
        "",
        f"validation: {source}",
        f"no post-processing: {result.baseline:.4f}",
        f"chosen: {pp.describe(result.best)}: {result.score:.4f} ({result.score - result.baseline:+.4f})",
        "",
        "| rank | post-processing | score |",
        "| ---: | --- | ---: |",
    ]
    uniq: dict[str, float] = {}
    for r in result.trials:
        uniq.setdefault(pp.describe(r["spec"]), r["score"])
    lines += [f"| {i + 1} | {k} | {v:.4f} |" for i, (k, v) in enumerate(list(uniq.items())[:15])]
    atomic_write_text(out / "tune.md", "\n".join(lines) + "\n")
    atomic_write_json(
        out / "tune.json",
        {
            "validation": source,
            "best": result.best,
            "score": result.score,
            "baseline": result.baseline,
            "trials": result.trials,
        },
    )
    result.report = out / "tune.md"
    return result.report


def apply_to(dataset: str | Path, spec: dict[str, Any]) -> Path:
    """Record the choice in an exported dataset (its ``postprocess.json``), read by CLI and notebook alike."""
    d = Path(dataset)
    if not d.is_dir():
        raise OptionError(f"--apply {d}: not a folder; give the dataset made by `birdkit export`")
    atomic_write_json(d / pp.FILE, pp.check(spec))
    if (d / MANIFEST).exists():  # the dataset's manifest lists every file: keep it true
        atomic_write_json(d / MANIFEST, build_manifest(d))
    return d / pp.FILE


def tune(
    validation: str | Path,
    models: str | Path | None = None,
    passthrough: str | None = None,
    trials: int = 60,
    seed: int = 0,
    out: str | Path | None = None,
    apply: str | Path | None = None,
) -> TuneResult:
    """Score ``validation`` raw, search the post-processing, write the report (``out``) and apply it."""
    scored = score_raw(validation, models, passthrough)
    result = search(scored, trials, seed)
    result.scored = scored
    if out is not None:
        write_report(result, out, str(validation))
    if apply is not None:
        apply_to(apply, result.best)
    return result
