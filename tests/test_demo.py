"""`birdkit demo`, the README's main job: generated data to a scored submission and a profile table."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from birdkit.competition import Competition
from birdkit.synthetic import SPECIES, generate
from birdkit.workflows.demo import run_demo


def test_synthetic_competition_is_deterministic_and_complete(tmp_path):
    a = generate(tmp_path / "a")
    b = generate(tmp_path / "b")
    comp = Competition(a)
    assert comp.species == [s.code for s in SPECIES]
    assert len(comp.audio_files("train_audio")) == 3 * len(SPECIES)
    truth = comp.test_labels()
    sub = pd.read_csv(a / "sample_submission.csv")
    assert list(sub["row_id"]) == list(truth["row_id"])
    assert 0.3 < (truth["labels"] != "").mean() < 0.9  # calls in some chunks, silence in others
    assert (a / "test_labels_5s.csv").read_bytes() == (b / "test_labels_5s.csv").read_bytes()
    assert (a / "train_metadata.csv").read_bytes() == (b / "train_metadata.csv").read_bytes()


def test_demo_runs_every_stage_and_scores_well_above_chance(tmp_path, capsys):
    r = run_demo(tmp_path / "demo", workers=1, explore=False, progress=False)
    sub = pd.read_csv(r.submission)
    truth = Competition(r.data_dir).test_labels()
    assert list(sub["row_id"]) == list(truth["row_id"])
    assert list(sub.columns[1:]) == [s.code for s in SPECIES]
    probs = sub.iloc[:, 1:].to_numpy()
    assert np.isfinite(probs).all() and probs.min() >= 0 and probs.max() <= 1
    # a linear head on BirdNET embeddings separates the six synthetic call shapes
    assert r.score is not None and r.score > 0.9
    prof = json.loads((r.out / "profile.json").read_text())
    assert "Rate (sec/4m)" in r.profile_table
    assert (r.out / "dataset" / "manifest.json").exists()
    out = capsys.readouterr().out
    assert "score:" in out and f"{r.score:.4f}" in out
    # every stage means something on generated data: the placeholder surrogate hears the synthetic calls,
    # the head is chosen on the mixed validation set, and the post-processing was tuned there
    assert "(0.0%)" not in out and "placeholder surrogate" in out
    assert (r.out / "validation" / "test_labels_5s.csv").exists() and (
        r.out / "tune" / "head" / "tune.md"
    ).exists()
    assert r.shipped == "head" and r.validation["head"]["tuned"] >= r.validation["head"]["raw"]
    cards = [json.loads(p.read_text()) for p in sorted((r.out / "models").glob("*/card.json"))]
    assert len(cards) == 2 and all(c["metrics"]["val"]["set"] == "labelled soundscapes" for c in cards)
    assert sum("validation" in c["metrics"] for c in cards) == 1  # the shipped one records its verdict
    # the notebook profiled itself: every test file, every stage, and the extrapolation to the test set
    assert prof["files"] == 2 and prof["failed_files"] == 0 and prof["rows"] == len(truth)
    assert {"decode", "resample", "encoder", "head", "writing"} <= set(prof["stages"])
    assert prof["test_estimate_h"] > 0 and prof["within_budget"] is True
