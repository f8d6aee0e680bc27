"""The co-occurrence prior (infer/cooccur.py): rules mined on soundscape pseudo-labels (workflows/tune.py
mine_rules, FP-growth from the exploratory report) reshape a file's probabilities as the spec says."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from birdkit.errors import OptionError
from birdkit.infer import postprocess as pp

SPECIES = ["a", "b", "c"]


def _spec(weight: float, rules: list) -> dict:
    return pp.bind(pp.check({"cooccur": {"weight": weight, "rules": rules}}), SPECIES)


def test_a_partner_heard_loudly_raises_the_species_in_the_whole_file():
    p = np.array([[0.9, 0.1, 0.2], [0.1, 0.3, 0.2], [0.0, 0.05, 0.2]])
    out = pp.apply(_spec(0.5, [["a", "b", 0.8]]), p)
    boost = 0.5 * 0.8 * 0.9  # b * confidence * max_file(p_a)
    assert np.allclose(out[:, 1], 1 - (1 - p[:, 1]) * (1 - boost))
    assert np.array_equal(out[:, [0, 2]], p[:, [0, 2]])  # no rule into a or c
    assert np.array_equal(np.argsort(out[:, 1]), np.argsort(p[:, 1]))  # the file's order is kept
    quiet = pp.apply(_spec(0.5, [["a", "b", 0.8]]), p * [[0.1, 1, 1]])  # a quiet partner raises less
    assert (quiet[:, 1] < out[:, 1]).all()


def test_the_strongest_rule_counts_and_nothing_passes_one():
    p = np.array([[0.9, 0.0, 0.99], [0.2, 0.0, 0.999]])
    out = pp.apply(_spec(1.0, [["a", "b", 0.5], ["c", "b", 1.0], ["a", "c", 1.0]]), p)
    assert np.allclose(out[:, 1], 0.999)  # c -> b (confidence 1, max_file(c) 0.999) wins over a -> b
    assert (out <= 1.0).all() and out[1, 2] > out[0, 2]  # noisy-or: no clipping, no tie at the top


def test_rules_outside_the_submission_and_off_specs_do_nothing():
    assert pp.check({"cooccur": {"weight": 0.0, "rules": [["a", "b", 0.9]]}}) == {}
    assert pp.check({"cooccur": {"weight": 0.3, "rules": []}}) == {}
    spec = _spec(0.5, [["x", "b", 0.9], ["a", "a", 1.0]])
    assert spec["cooccur"]["index"] == []
    p = np.random.default_rng(0).random((4, 3))
    assert np.array_equal(pp.apply(spec, p), p)


def test_nan_columns_stay_nan_and_add_nothing():
    p = np.array([[np.nan, 0.1, 0.5], [np.nan, 0.2, 0.4]])
    out = pp.apply(_spec(0.5, [["a", "b", 1.0], ["c", "a", 1.0]]), p)
    assert np.isnan(out[:, 0]).all() and np.array_equal(out[:, 1], p[:, 1])


def test_unbound_rules_are_refused():
    with pytest.raises(ValueError, match="bind"):
        pp.apply(pp.check({"cooccur": {"weight": 0.5, "rules": [["a", "b", 0.9]]}}), np.ones((2, 3)))


@pytest.mark.parametrize(
    "co, word",
    [
        ({"weight": 2.0, "rules": [["a", "b", 0.9]]}, "weight"),
        ({"weight": 0.5, "rules": [["a", "b", 1.5]]}, "confidence"),
        ({"weight": 0.5, "rules": [["a", 0.9]]}, "rule"),
        ([["a", "b", 0.9]], "weight"),
    ],
)
def test_bad_cooccurrence_specs_say_what_is_wrong(co, word):
    with pytest.raises(OptionError, match=word):
        pp.check({"cooccur": co})


def test_the_spec_round_trips_and_describes_itself():
    spec = pp.check({"cooccur": {"weight": 0.25, "rules": [["a", "b", 0.9]]}, "file_prior": 0.5})
    assert pp.check(json.loads(json.dumps(spec))) == spec
    assert "co-occurrence prior 0.25 (1 rules)" in pp.describe(spec)
    bound = pp.bind(spec, SPECIES)
    assert pp.check(bound) == spec  # the bound index is rebuilt from the rules, never trusted


def test_mine_rules_finds_the_pairs_that_call_together(placeholder_train_store):
    """Pseudo-labels in which species 0 and 1 call in the same recordings, 2 alone: rules 0 <-> 1 only."""
    from birdkit.store.shards import load
    from birdkit.workflows.cooccur_rules import mine_rules

    emb = load(placeholder_train_store)
    files = emb.frame["file"].unique()
    assert len(files) >= 3
    logits = np.full((len(emb), len(emb.species)), -10.0, dtype=np.float32)
    for k, f in enumerate(files):
        rows = np.flatnonzero(emb.frame["file"].to_numpy() == f)
        if k < 2:
            logits[rows[0], 0] = logits[rows[-1], 1] = 5.0  # together in the recording, not the window
        else:
            logits[rows[0], 2] = 5.0
    rules = mine_rules([dataclasses.replace(emb, logits=logits)], min_count=2, min_confidence=0.5)
    s = emb.species
    assert rules == sorted([[s[0], s[1], 1.0], [s[1], s[0], 1.0]])
    held = {files[0]}
    assert mine_rules([dataclasses.replace(emb, logits=logits)], min_count=2, exclude_files=held) == []
