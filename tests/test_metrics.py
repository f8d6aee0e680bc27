"""The competition metric (scikit-learn) and its per-epoch twin, checked by hand and against each other."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from birdkit import metrics


def hand_auc(y: list[int], s: list[float]) -> float:
    """P(score of a positive > score of a negative), ties counting one half."""
    pos = [v for v, t in zip(s, y, strict=True) if t]
    neg = [v for v, t in zip(s, y, strict=True) if not t]
    return sum((p > n) + 0.5 * (p == n) for p in pos for n in neg) / (len(pos) * len(neg))


Y = np.array([[1, 0, 0], [0, 0, 1], [1, 0, 0], [0, 0, 0], [0, 0, 1]])
S = np.array([[0.9, 0.1, 0.3], [0.4, 0.8, 0.3], [0.35, 0.3, 0.2], [0.5, 0.9, 0.1], [0.1, 0.2, 0.3]])


def test_competition_score_skips_species_without_a_positive():
    a = hand_auc(Y[:, 0].tolist(), S[:, 0].tolist())  # 4/6: (0.9>0.4,0.5,0.1), (0.35>0.1)
    c = hand_auc(Y[:, 2].tolist(), S[:, 2].tolist())  # ties at 0.3 count one half
    assert a == pytest.approx(4 / 6)
    assert metrics.scored_columns(Y).tolist() == [0, 2]
    assert metrics.competition_score(Y, S) == pytest.approx((a + c) / 2)
    # the skipped column's scores do not matter at all
    S2 = S.copy()
    S2[:, 1] = np.random.default_rng(0).random(len(S))
    assert metrics.competition_score(Y, S2) == metrics.competition_score(Y, S)
    assert metrics.fast_competition_score(Y, S) == pytest.approx((a + c) / 2)


def test_no_positive_anywhere_is_nan():
    y = np.zeros((4, 2))
    s = np.random.default_rng(0).random((4, 2))
    for f in (metrics.competition_score, metrics.fast_competition_score, metrics.macro_f1, metrics.class_map):
        assert math.isnan(f(y, s))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_score_and_f1_equal_scikit_learn_with_ties_and_inf(seed):
    rng = np.random.default_rng(seed)
    y = (rng.random((400, 30)) < 0.05).astype(int)
    y[:, 3] = 0
    s = np.round(rng.normal(size=(400, 30)), 1)  # many ties
    s[rng.random(s.shape) < 0.01] = -np.inf
    prob = 1 / (1 + np.exp(-s))
    assert metrics.fast_competition_score(y, s) == pytest.approx(
        metrics.competition_score(y, prob), abs=1e-12
    )
    assert metrics.fast_macro_f1(y, prob) == pytest.approx(metrics.macro_f1(y, prob), abs=1e-12)


def test_macro_f1_and_map_by_hand():
    # column 0: predictions > 0.5 at rows 0 (TP); positive row 2 missed -> F1 = 2/(2+0+1) = 2/3
    # column 2: nothing above 0.5 -> F1 = 0
    assert metrics.macro_f1(Y, S) == pytest.approx((2 / 3 + 0) / 2)
    # AP column 0: ranking 0.9(+), 0.5, 0.4, 0.35(+) -> (1/1 + 2/4)/2 = 0.75
    ap0 = 0.75
    ap2 = metrics.per_species(Y, S, ["a", "b", "c"]).loc[2, "average_precision"]
    assert metrics.class_map(Y, S) == pytest.approx((ap0 + ap2) / 2)


def test_per_species_table_marks_unscored_species():
    table = metrics.per_species(Y, S, ["a", "b", "c"])
    assert table["species"].tolist() == ["a", "b", "c"]
    assert table["positives"].tolist() == [2, 0, 2]
    assert math.isnan(table.loc[1, "roc_auc"]) and math.isnan(table.loc[1, "f1"])
    assert table.loc[0, "roc_auc"] == pytest.approx(4 / 6)


def test_score_submission_reads_space_separated_labels():
    truth = pd.DataFrame({"row_id": ["r1", "r2", "r3"], "labels": ["a", "", "a b"]})
    sub = pd.DataFrame({"row_id": ["r3", "r1", "r2"], "a": [0.9, 0.8, 0.1], "b": [0.7, 0.1, 0.2]})
    # a: positives r1 (0.8), r3 (0.9) vs r2 (0.1) -> 1; b: positive r3 (0.7) vs 0.1, 0.2 -> 1
    assert metrics.score_submission(sub, truth) == 1.0
    with pytest.raises(ValueError, match="lacks rows"):
        metrics.score_submission(sub.iloc[:2], truth)
