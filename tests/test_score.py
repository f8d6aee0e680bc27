"""`birdkit score`: the competition metric, macro-F1, cmAP and a per-species table of a submission file, with the
functions training reports (:mod:`birdkit.metrics`); and `birdkit infer` printing the score when labels exist."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from birdkit import metrics
from birdkit.cli.main import main
from birdkit.workflows.score import ScoreInputError, score_file


def _truth_as_submission(comp, path, noise: float = 0.0, seed: int = 0):
    """A submission that scores each row by its true labels (plus noise): a known, checkable score."""
    truth = pd.read_csv(comp / "test_labels_5s.csv", dtype={"labels": str}, keep_default_na=False)
    species = list(pd.read_csv(comp / "sample_submission.csv", nrows=0).columns[1:])
    y = metrics.labels_matrix(truth["labels"], species).astype(float)
    y += np.random.default_rng(seed).uniform(0, noise, y.shape)
    sub = pd.DataFrame(np.clip(y, 0, 1), columns=species)
    sub.insert(0, "row_id", truth["row_id"])
    sub.sample(frac=1.0, random_state=seed).to_csv(path, index=False)  # row order must not matter
    return truth, species, sub


def test_a_perfect_submission_scores_one(synthetic_comp, tmp_path, capsys):
    _truth_as_submission(synthetic_comp, tmp_path / "s.csv")
    assert main(["score", str(tmp_path / "s.csv"), "--data-dir", str(synthetic_comp), "--species"]) == 0
    out = capsys.readouterr().out
    assert "competition metric (macro ROC-AUC): 1.0000" in out and "cmAP: 1.0000" in out
    assert "macro-F1 at 0.5: 1.0000" in out and "synup1" in out  # and the per-species table


def test_scores_are_the_metric_functions(synthetic_comp, tmp_path):
    truth, species, sub = _truth_as_submission(synthetic_comp, tmp_path / "s.csv", noise=1.2, seed=3)
    r = score_file(tmp_path / "s.csv", synthetic_comp, threshold=0.6)
    merged = truth.merge(sub, on="row_id")
    y = metrics.labels_matrix(merged["labels"], species)
    p = merged[species].to_numpy()
    assert r.competition == pytest.approx(metrics.competition_score(y, p))
    assert r.competition == pytest.approx(metrics.score_submission(sub, truth))
    assert r.macro_f1 == pytest.approx(metrics.macro_f1(y, p, 0.6))
    assert r.cmap == pytest.approx(metrics.class_map(y, p))
    assert (
        0.5 < r.competition < 1.0
        and r.rows == len(truth)
        and r.scored_species == len(metrics.scored_columns(y))
    )
    assert list(r.per_species["species"]) == species


def test_truth_from_a_file_and_the_table_written(synthetic_comp, tmp_path, capsys):
    _truth_as_submission(synthetic_comp, tmp_path / "s.csv")
    truth = tmp_path / "truth.csv"
    t = pd.read_csv(synthetic_comp / "test_labels_5s.csv", keep_default_na=False)
    t.iloc[:10].to_csv(truth, index=False)  # a subset of rows: the others are ignored, and said so
    rc = main(["score", str(tmp_path / "s.csv"), "--truth", str(truth), "--out", str(tmp_path / "sp.csv")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "10 rows scored" in out and f"{len(t) - 10} submission rows are not in the truth" in out
    assert set(pd.read_csv(tmp_path / "sp.csv").columns) >= {"species", "roc_auc", "average_precision", "f1"}


def test_a_submission_missing_a_truth_row_is_refused(synthetic_comp, tmp_path):
    _, _, sub = _truth_as_submission(synthetic_comp, tmp_path / "s.csv")
    sub.iloc[1:].to_csv(tmp_path / "short.csv", index=False)
    with pytest.raises(ScoreInputError, match="lacks rows the ground truth has: 1 of"):
        score_file(tmp_path / "short.csv", synthetic_comp)


def test_infer_prints_the_score_when_labels_exist(synthetic_comp, tmp_path, capsys):
    out = tmp_path / "s.csv"
    rc = main(
        [
            "infer",
            "--data-dir",
            str(synthetic_comp),
            "--passthrough",
            "placeholder",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    expected = score_file(out, synthetic_comp).competition
    assert f"competition metric (macro ROC-AUC): {expected:.4f}" in printed
