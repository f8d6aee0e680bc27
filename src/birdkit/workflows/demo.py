"""`birdkit demo`: every stage, audio to a scored submission.csv and a profile table, in one command.

On a fresh machine it generates its own mini competition (:mod:`birdkit.synthetic`); given ``data_dir`` it
runs on a real BirdCLEF folder instead (``../shared/data/minicomp`` is one). Each stage is the same library
call the matching CLI command makes; the demo only chains them and prints what came out.
"""

from __future__ import annotations

import json
import logging
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from birdkit.competition import Competition
from birdkit.heads.card import TrainConfig
from birdkit.heads.train import train_head
from birdkit.infer import InferConfig, run_inference
from birdkit.metrics import score_submission
from birdkit.package.export import export
from birdkit.profile import usable_cores
from birdkit.store import load
from birdkit.store.embed import embed_split
from birdkit.store.labels import LabelSpec, label_store
from birdkit.synthetic import generate
from birdkit.workflows.notebook import run_notebook

log = logging.getLogger(__name__)


@dataclass
class DemoResult:
    out: Path
    data_dir: Path
    submission: Path
    score: float | None
    passthrough_score: float | None
    stage_seconds: dict[str, float] = field(default_factory=dict)
    profile_table: str = ""
    report: Path | None = None


def _stage(name: str, times: dict[str, float], fn: Callable[[], Any]) -> Any:
    print(f"\n== {name}", flush=True)
    t0 = time.perf_counter()
    result = fn()
    times[name] = time.perf_counter() - t0
    print(f"   done in {times[name]:.1f} s", flush=True)
    return result


def run_demo(
    out: str | Path = "demo_out",
    data_dir: str | Path | None = None,
    workers: int | None = None,
    explore: bool = True,
    progress: bool = True,
) -> DemoResult:
    """Generate (or take) a competition, then embed, label, train, export, infer through the notebook, score.

    ``workers`` (default: the usable cores) runs the embedding and the notebook's inference in parallel.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    workers = workers or usable_cores()
    times: dict[str, float] = {}

    data = (
        Path(data_dir)
        if data_dir
        else _stage("generate a synthetic competition", times, lambda: generate(out / "data"))
    )
    comp = Competition(data)
    truth = comp.test_labels() if comp.path("test_labels_5s.csv").exists() else None
    emb = {s: out / "emb" / s for s in ("train_audio", "test_soundscapes")}
    for split, d in emb.items():
        _stage(
            f"embed {split} with BirdNET V2.4",
            times,
            lambda split=split, d=d: embed_split(data, split, d, workers=workers, progress=progress),
        )

    train = load(emb["train_audio"])
    # Pseudo-labels need a surrogate that knows the species. BirdNET knows none of the synthetic ones, so
    # there every window of a clip takes its folder species (weak labels); on real data, the paper's ŷ_species.
    blind = len(train.meta.unmapped_species) == len(train.species)
    spec = LabelSpec(folder="all" if blind else "call")
    _, summary = _stage(f"pseudo-labels ({spec.name})", times, lambda: label_store(train, spec))
    print(textwrap.indent(summary.format(top=10), "   "))

    model = out / "models" / "demo_asl_linear"
    test = (emb["test_soundscapes"], truth) if truth is not None else None
    # start from BirdNET's classifier where it knows the species
    config = TrainConfig(loss="asl", head="linear", epochs=30, init="random" if blind else "birdnet")
    card = _stage(
        "train a linear head (ASL)" + ("" if blind else ", started from BirdNET's classifier"),
        times,
        lambda: train_head(train, model, config, test=test, name=model.name, progress=progress),
    )
    print(f"   validation: {json.dumps(card.metrics.get('val', card.metrics), default=str)[:300]}")

    dataset = out / "dataset"
    _stage(
        "export the Kaggle dataset (TFLite head + encoder + kit)",
        times,
        lambda: export([model], dataset, parity_store=emb["train_audio"]),
    )

    run = _stage(
        "run notebooks/inference.ipynb (papermill) on the exported dataset",
        times,
        lambda: run_notebook(data, out / "notebook", models_dir=dataset, workers=workers),
    )
    submission = out / "submission.csv"
    submission.write_bytes(run.submission.read_bytes())
    profile_json = out / "profile.json"
    profile_json.write_bytes(run.profile.read_bytes())

    score = passthrough = None
    if truth is not None:
        score = score_submission(pd.read_csv(submission), truth)
        if not blind:
            passthrough_config = InferConfig(
                data_dir=data,
                out=out / "passthrough.csv",
                passthrough="birdnet",
                workers=workers,
                progress=progress,
            )
            pt = _stage("BirdNET passthrough baseline", times, lambda: run_inference(passthrough_config))
            passthrough = score_submission(pd.read_csv(pt.submission), truth)

    report = None
    if explore:
        from birdkit.explore.report import explore as explore_fn

        report = _stage(
            "exploration report",
            times,
            lambda: explore_fn([emb["train_audio"], emb["test_soundscapes"]], out / "report"),
        )
        report = getattr(report, "report", None) or out / "report"

    table = _profile_table(profile_json)
    result = DemoResult(out, data, submission, score, passthrough, times, table, report)
    _print_summary(result)
    return result


def _profile_table(path: Path) -> str:
    from birdkit.profile import Profile, table

    try:
        return table([Profile.from_dict(p) for p in _profiles(json.loads(path.read_text()))])
    except (
        KeyError,
        TypeError,
        ValueError,
        AttributeError,
    ) as exc:  # the table is a nicety; the file is the record
        log.warning("could not render %s as a table: %s", path, exc)
        return ""


def _profiles(obj: Any) -> list[dict]:
    if isinstance(obj, dict) and "profiles" in obj:
        return list(obj["profiles"])
    return obj if isinstance(obj, list) else [obj]


def _print_summary(r: DemoResult) -> None:
    print("\n== summary")
    print(f"   data:        {r.data_dir}")
    print(f"   submission:  {r.submission}")
    if r.score is not None:
        print(
            f"   score:       {r.score:.4f}  (macro ROC-AUC over species with a positive, vs test_labels_5s.csv)"
        )
    if r.passthrough_score is not None:
        print(f"   passthrough: {r.passthrough_score:.4f}  (BirdNET's own logits, no head)")
    if r.report is not None:
        print(f"   report:      {r.report}")
    print("   stage seconds: " + ", ".join(f"{k.split(' ')[0]} {v:.0f}" for k, v in r.stage_seconds.items()))
    if r.profile_table:
        print("\n" + r.profile_table)
        print(
            "   (on a few minutes of audio, start-up dominates these rates; steady-state figures for 4-minute\n"
            "   soundscapes are in benchmarks/RESULTS.md, and the notebook prints its own on Kaggle)"
        )
