"""`birdkit tune`: choose the per-file post-processing on a labelled validation set (a `birdkit mix` folder, or
any competition folder with ``test_labels_5s.csv`` that is not the test set you report on).

The models score every validation file once, keeping each head's own output (the same plan and scorer as
`birdkit infer`); the candidates are then cheap numpy passes over those outputs, searched with Optuna (TPE,
seeded) over the neighbour-smoothing kernel, the file-level prior, and where they apply the blend of a head with
its encoder's classifier, the ensemble mode of several heads (mean or rank mean) and the co-occurrence prior's
weight (rules from :func:`mine_rules`, ``--cooccurrence STORE``). "No post-processing" is always trial 0, so the
choice can only match or beat it on validation; the report lists each component's best score on and off. ``--apply DATASET`` writes the choice as the exported
dataset's ``postprocess.json``, which the CLI and the notebook both read (:func:`birdkit.infer.plan.make_plan`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Collection
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdkit import metrics
from birdkit.audio import load_chunks
from birdkit.competition import Competition
from birdkit.errors import OptionError
from birdkit.infer import postprocess as pp
from birdkit.infer.ensemble import Raw, combine, fit_rank
from birdkit.infer.files import file_jobs
from birdkit.infer.plan import make_plan
from birdkit.infer.scorer import Scorer
from birdkit.io import atomic_write_json, atomic_write_text
from birdkit.package.layout import MANIFEST, build_manifest
from birdkit.workflows.cooccur_rules import mine_rules

log = logging.getLogger(__name__)

KERNELS = ([1], [1, 2, 1], [1, 1, 1], [1, 2, 4, 2, 1], [1, 1, 1, 1, 1])
PRIOR_RANGE = {"add": (0.0, 0.9), "mul": (0.0, 2.0)}
BLEND_RANGE = (0.0, 1.5)  # searched in steps of 0.1; 1: the head alone
COOCCUR_RANGE = (0.0, 1.0)  # searched in steps of 0.05; 0: off
# the components the report switches on and off, and how to tell them in a spec
COMPONENTS = {
    "smoothing": lambda s: bool(s.get("kernel")),
    "file prior": lambda s: bool(s.get("file_prior")),
    "co-occurrence prior": lambda s: bool(s.get("cooccur")),
    "blend with the encoder": lambda s: "blend" in s,
    "rank-mean ensemble": lambda s: s.get("ensemble") == "rank",
}


@dataclass
class Scored:
    """Raw outputs (each head's, not combined, not post-processed) of every validation file, with the truth in
    the same rows."""

    species: list[str]
    files: list[tuple[list[str], Raw]]  # (row ids, the scorer's raw outputs [n, ...]) per file
    truth: pd.DataFrame
    rules: list[list] = field(default_factory=list)  # co-occurrence rules the search may weigh in

    def probs(self, spec: dict[str, Any]) -> list[np.ndarray]:
        """Each file's probabilities as inference writes them with ``spec``."""
        bound = pp.bind(spec, self.species)
        return [pp.apply(bound, combine(bound, raw)) for _, raw in self.files]

    def score(self, spec: dict[str, Any]) -> float:
        ids = [r for rows, _ in self.files for r in rows]
        sub = pd.DataFrame(np.nan_to_num(np.concatenate(self.probs(spec)), nan=0.0), columns=self.species)
        sub.insert(0, "row_id", ids)
        return metrics.score_submission(sub, self.truth)

    @property
    def heads(self) -> list[str]:
        return [m.name for m in self.files[0][1].members] if self.files else []

    @property
    def blendable(self) -> bool:
        """Whether some head has its encoder's classifier under it (a residual head)."""
        return any(m.base is not None for m in self.files[0][1].members) if self.files else False

    def only(self, stems: Collection[str]) -> Scored:
        """The same scores on the files with these stems only (the truth cut to their rows)."""
        stems = set(stems)
        keep = [(rows, raw) for rows, raw in self.files if rows and rows[0].rpartition("_")[0] in stems]
        ids = {r for rows, _ in keep for r in rows}
        truth = self.truth[self.truth["row_id"].astype(str).isin(ids)].reset_index(drop=True)
        return Scored(self.species, keep, truth, self.rules)

    def subset(self, files: np.ndarray) -> Scored:
        """The same scores on a resample of the files (a file drawn twice is scored twice, renamed)."""
        picked = [
            ([f"{k}~{r}" for r in self.files[i][0]], self.files[i][1])
            for k, i in enumerate(np.asarray(files))
        ]
        by_id = dict(zip(self.truth["row_id"], self.truth["labels"], strict=True))
        rows = [(r, by_id[r.split("~", 1)[1]]) for ids, _ in picked for r in ids]
        return Scored(self.species, picked, pd.DataFrame(rows, columns=["row_id", "labels"]), self.rules)


@dataclass
class TuneResult:
    best: dict[str, Any]
    score: float
    baseline: float
    trials: list[dict] = field(default_factory=list)
    components: list[dict] = field(default_factory=list)  # each component's best score on and off
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


def split_files(stems: Collection[str], seed: int = 0) -> tuple[list[str], list[str]]:
    """Validation files in two seeded halves: one to choose on (epochs, post-processing), one to judge the
    choice on. Judged on the files it was chosen on, the best of many epochs looks better than it is."""
    ordered = sorted(stems)
    perm = np.random.default_rng(seed).permutation(len(ordered))
    cut = (len(ordered) + 1) // 2
    return sorted(ordered[i] for i in perm[:cut]), sorted(ordered[i] for i in perm[cut:])


def held_out_wins(a: TuneResult, b: TuneResult, judge: Collection[str], seed: int = 0) -> float:
    """:func:`paired_wins` of ``a`` over ``b`` (each with its chosen post-processing) on the ``judge`` files
    alone: the files a head's epoch was not chosen on. (Post-processing searched on a half alone is too noisy
    to judge by: on minicomp's mix set one half picks smoothing for passthrough, which the other half punishes.)"""
    return paired_wins(
        replace(a, scored=a.scored.only(judge)), replace(b, scored=b.scored.only(judge)), seed=seed
    )


def score_raw(
    data_dir: str | Path,
    models: str | Path | None = None,
    passthrough: str | None = None,
    rules: list[list] | None = None,
) -> Scored:
    """Score a labelled folder's ``test_soundscapes`` with the models, keeping each head's raw output.
    ``rules``: co-occurrence rules (:func:`mine_rules`) the search may weigh in."""
    comp = Competition(data_dir)
    if not comp.path("test_labels_5s.csv").exists():
        raise OptionError(
            f"{comp.root}: no test_labels_5s.csv; tune needs labelled soundscapes (make some with `birdkit mix`)"
        )
    plan, built = make_plan(comp, models, passthrough, postprocess={}, bases=True)
    scorer = Scorer(plan, built=built)
    files = []
    for job in file_jobs(comp, "test_soundscapes", None):
        d = load_chunks(job.path, plan.rates)
        files.append((d.row_ids, scorer.raw(d.by_rate)))
    return Scored(list(plan.species), files, comp.test_labels(), list(rules or []))


def search(scored: Scored, trials: int = 60, seed: int = 0) -> TuneResult:
    """Optuna TPE over kernel, prior mode and weight (steps of 0.05) and, where they apply, the blend weight,
    the ensemble mode and the co-occurrence weight; trial 0 is no post-processing."""
    import optuna

    if trials < 1:
        raise OptionError(f"--trials {trials}: must be 1 or more")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    seen: dict[str, float] = {}
    ranks: dict[float, dict] = {}  # rank tables per blend weight, fitted on the validation outputs

    def spec_of(t: optuna.Trial) -> dict[str, Any]:
        kernel = KERNELS[t.suggest_int("kernel", 0, len(KERNELS) - 1)]
        mode = t.suggest_categorical("prior_mode", list(PRIOR_RANGE))
        lo, hi = PRIOR_RANGE[mode]
        a = t.suggest_float(f"file_prior_{mode}", lo, hi, step=0.05)
        spec: dict[str, Any] = {"kernel": kernel, "file_prior": round(a, 2), "prior_mode": mode}
        if scored.blendable:
            spec["blend"] = round(t.suggest_float("blend", *BLEND_RANGE, step=0.1), 2)
        if len(scored.heads) > 1 and t.suggest_categorical("ensemble", ["mean", "rank"]) == "rank":
            w = spec.get("blend", 1.0)
            if w not in ranks:
                ranks[w] = fit_rank([raw for _, raw in scored.files], w)
            spec.update(ensemble="rank", rank=ranks[w])
        if scored.rules:
            b = round(t.suggest_float("cooccur", *COOCCUR_RANGE, step=0.05), 2)
            spec["cooccur"] = {"weight": b, "rules": scored.rules}
        return pp.check(spec)

    def objective(t: optuna.Trial) -> float:
        spec = spec_of(t)
        key = json.dumps(spec, sort_keys=True)
        if key not in seen:
            seen[key] = scored.score(spec)
        t.set_user_attr("spec", spec)
        return seen[key]

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
    off: dict[str, Any] = {"kernel": 0, "prior_mode": "add", "file_prior_add": 0.0}
    if scored.blendable:
        off["blend"] = 1.0
    if len(scored.heads) > 1:
        off["ensemble"] = "mean"
    if scored.rules:
        off["cooccur"] = 0.0
    study.enqueue_trial(off)
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
    spec, score = prune(scored, best["spec"], float(best["score"]))
    if spec != best["spec"]:  # pruning found a simpler spec: it is a trial too (on/off table, report)
        rows = sorted([{"spec": spec, "score": score}, *rows], key=lambda r: -r["score"])
    result = TuneResult(spec, score, float(baseline), rows)
    result.components = components(scored, result)
    return result


# the keys each component owns in a spec
DROP = {
    "smoothing": ("kernel",),
    "file prior": ("file_prior", "prior_mode"),
    "co-occurrence prior": ("cooccur",),
    "blend with the encoder": ("blend",),
    "rank-mean ensemble": ("ensemble", "rank"),
}


def prune(scored: Scored, spec: dict[str, Any], score: float) -> tuple[dict[str, Any], float]:
    """Switch off, one at a time, every component whose removal does not lower the validation score: a lever
    that does not win on validation is not shipped (TPE rarely lands exactly on "off" for continuous ones)."""
    changed = True
    while changed:
        changed = False
        for keys in DROP.values():
            if not any(k in spec for k in keys):
                continue
            without = {k: v for k, v in spec.items() if k not in keys}
            s = scored.score(without)
            if s >= score - 1e-12:
                spec, score, changed = without, s, True
    return spec, score


def components(scored: Scored, result: TuneResult) -> list[dict]:
    """Per component that applies: the best trial with it on, the best with it off, and the choice without it
    (the chosen spec with only this component removed)."""
    applies = {
        "co-occurrence prior": bool(scored.rules),
        "blend with the encoder": scored.blendable,
        "rank-mean ensemble": len(scored.heads) > 1,
    }
    out = []
    for name, has in COMPONENTS.items():
        if not applies.get(name, True):
            continue
        on = [r["score"] for r in result.trials if has(r["spec"])]
        off = [r["score"] for r in result.trials if not has(r["spec"])]
        chosen = has(result.best)
        without = {k: v for k, v in result.best.items() if k not in DROP[name]}
        out.append(
            {
                "component": name,
                "on": max(on) if on else None,
                "off": max(off) if off else None,
                "chosen": chosen,
                "choice without it": scored.score(without) if chosen else None,
            }
        )
    return out


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
    if result.components:
        lines += [
            "",
            "Each component: the best trial with it on, with it off, and the choice with only it removed.",
            "",
            "| component | on | off | chosen | choice without it |",
            "| --- | ---: | ---: | :---: | ---: |",
        ]
        for c in result.components:
            lines.append(
                f"| {c['component']} | {_num(c['on'])} | {_num(c['off'])} | {'yes' if c['chosen'] else 'no'} "
                f"| {_num(c['choice without it'])} |"
            )
    atomic_write_text(out / "tune.md", "\n".join(lines) + "\n")
    atomic_write_json(
        out / "tune.json",
        {
            "validation": source,
            "best": result.best,
            "score": result.score,
            "baseline": result.baseline,
            "trials": result.trials,
            "components": result.components,
        },
    )
    result.report = out / "tune.md"
    return result.report


def _num(v: float | None) -> str:
    return "-" if v is None else f"{v:.4f}"


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
    cooccurrence: list[str | Path] | None = None,
    cooccurrence_threshold: float = 0.5,
) -> TuneResult:
    """Score ``validation`` raw, search the post-processing, write the report (``out``) and apply it.
    ``cooccurrence``: stores of soundscapes (e.g. unlabeled_soundscapes embedded with BirdNET) whose
    pseudo-labels (logits above ``cooccurrence_threshold`` in probability) give the co-occurrence rules."""
    rules = mine_rules(cooccurrence, cooccurrence_threshold) if cooccurrence else None
    if cooccurrence and not rules:
        log.warning(
            "no co-occurrence rule in %s (threshold %g, a pair in 2 or more recordings): the prior stays off",
            ", ".join(map(str, cooccurrence)),
            cooccurrence_threshold,
        )
    scored = score_raw(validation, models, passthrough, rules)
    result = search(scored, trials, seed)
    result.scored = scored
    if out is not None:
        write_report(result, out, str(validation))
    if apply is not None:
        apply_to(apply, result.best)
    return result
