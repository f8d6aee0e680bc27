"""How the scorer combines models (infer/ensemble.py): the blend of a head with its encoder's classifier and
the ensemble of heads, mean or rank mean, as the spec says; the same numbers in tune and inference."""

from __future__ import annotations

import numpy as np
import pytest

from birdkit import metrics
from birdkit.errors import OptionError
from birdkit.infer import postprocess as pp
from birdkit.infer.ensemble import Member, Raw, combine, fit_rank, logit, sigmoid


def _raw(rng: np.random.Generator, n: int = 40, s: int = 3) -> Raw:
    base = rng.normal(-3, 2, (n, s))
    base[:, 2] = np.nan  # the encoder lacks species 2
    a = np.where(np.isnan(base), 0.0, base) + rng.normal(0, 1, (n, s))  # residual: base + correction
    b = 10.0 * rng.normal(0, 1, (n, s))  # another head on another scale
    b[:, 1] = np.nan  # which lacks species 1
    return Raw([Member("a", a, True, base), Member("b", b, True, None)])


def test_mean_is_the_mean_of_the_heads_probabilities():
    raw = _raw(np.random.default_rng(0))
    a, b = (m.values for m in raw.members)
    out = combine({}, raw)
    assert np.allclose(out[:, 0], (sigmoid(a[:, 0]) + sigmoid(b[:, 0])) / 2)
    assert np.allclose(out[:, 1], sigmoid(a[:, 1]))  # b lacks it: a alone
    p = Member("p", sigmoid(a), False)  # a head graph ending in a sigmoid: its probabilities as they are
    assert np.array_equal(combine({}, Raw([p])), sigmoid(a))


def test_passthrough_scores_the_encoder_logits_and_zero_where_it_lacks_a_species():
    z = np.array([[0.0, -np.inf], [2.0, -np.inf]])
    assert np.array_equal(combine({"blend": 0.5}, Raw(passthrough=z)), [[0.5, 0.0], [sigmoid(2.0), 0.0]])


def test_blend_pulls_a_head_towards_its_encoder_in_logit_space():
    raw = _raw(np.random.default_rng(1))
    a = raw.members[0]
    only_a = Raw([a])
    assert np.allclose(combine({"blend": 0.0}, only_a)[:, :2], sigmoid(a.base[:, :2]))  # w = 0: passthrough
    half = logit(combine({"blend": 0.5}, only_a))
    assert np.allclose(half[:, :2], a.base[:, :2] + 0.5 * (a.values[:, :2] - a.base[:, :2]))
    assert np.allclose(half[:, 2], a.values[:, 2])  # no encoder logit there: the head alone
    assert np.array_equal(combine({"blend": 1.0}, only_a), combine({}, only_a))


def test_rank_mean_keeps_each_heads_order_and_puts_heads_on_one_scale():
    rng = np.random.default_rng(2)
    raw = _raw(rng)
    spec = pp.check({"ensemble": "rank", "rank": fit_rank([raw])})
    # one head: its order is kept exactly, so its ROC-AUC too
    solo = Raw([raw.members[1]])
    solo_spec = pp.check({"ensemble": "rank", "rank": fit_rank([solo])})
    z, r = raw.members[1].values[:, 0], combine(solo_spec, solo)[:, 0]
    assert np.array_equal(np.argsort(z, kind="stable"), np.argsort(r, kind="stable"))
    # beyond the table's ends no ties are made (slope 1 there)
    knots = solo_spec["rank"]["heads"]["b"]
    lo, hi = knots[0], knots[-1]
    far = np.array([[hi + 1.0], [hi + 2.0], [lo - 2.0], [lo - 1.0]]) * np.ones((1, 3))
    top = combine(solo_spec, Raw([Member("b", far)]))[:, 0]
    assert top[2] < top[3] < top[0] < top[1]
    # two heads on scales 1 and 10: the wide one no longer dominates the mean
    out = combine(spec, raw)
    assert np.isfinite(out[:, :2]).all() and ((out >= 0) & (out <= 1))[:, :2].all()
    assert np.isnan(out).sum() == 0  # every species has a head


def test_rank_mean_beats_the_mean_when_one_head_is_badly_scaled():
    rng = np.random.default_rng(3)
    n = 400
    y = rng.random((n, 1)) < 0.2
    good = np.where(y, 2.0, -2.0) + rng.normal(0, 1.5, (n, 1))
    loud = 8.0 * (np.where(y, 0.4, -0.4) + rng.normal(0, 1.5, (n, 1)))  # weak and over-confident
    raw = Raw([Member("good", good), Member("loud", loud)])
    auc = {
        k: metrics.competition_score(y, combine(s, raw))
        for k, s in {"mean": {}, "rank": pp.check({"ensemble": "rank", "rank": fit_rank([raw])})}.items()
    }
    assert auc["rank"] > auc["mean"]


@pytest.mark.parametrize(
    "spec, word",
    [
        ({"blend": 3.0}, "blend"),
        ({"ensemble": "median"}, "ensemble"),
        ({"ensemble": "rank"}, "rank tables"),
        ({"ensemble": "rank", "rank": {"reference": [0, 1], "heads": {"a": [1, 0]}}}, "rank tables"),
    ],
)
def test_bad_ensemble_specs_say_what_is_wrong(spec, word):
    with pytest.raises(OptionError, match=word):
        pp.check(spec)


def test_rank_spec_round_trips_through_json():
    import json

    raw = _raw(np.random.default_rng(4))
    spec = pp.check({"ensemble": "rank", "rank": fit_rank([raw]), "blend": 0.7})
    again = pp.check(json.loads(json.dumps(spec)))
    assert again == spec and "rank mean" in pp.describe(spec) and "blend 0.7" in pp.describe(spec)
    assert np.array_equal(combine(again, raw), combine(spec, raw))


@pytest.fixture(scope="module")
def two_heads(placeholder_train_store, tmp_path_factory):
    """An exported dataset with a plain head and a residual head on the placeholder encoder (it has logits)."""
    from birdkit.heads.card import TrainConfig
    from birdkit.heads.train import train_head
    from birdkit.package.export import export
    from birdkit.store.labels import LabelSpec

    tmp = tmp_path_factory.mktemp("two_heads")
    for name, residual in (("plain", "off"), ("res", "on")):
        config = TrainConfig(labels=LabelSpec(folder="all"), epochs=2, residual=residual)
        train_head(placeholder_train_store, tmp / name, config, progress=False, name=name)
    export([tmp / "plain", tmp / "res"], tmp / "ds")
    return tmp / "ds"


def test_a_plain_head_blends_with_its_encoders_classifier_through_the_plan(synthetic_comp, two_heads):
    from birdkit.audio import load_chunks
    from birdkit.competition import Competition
    from birdkit.infer.plan import make_plan
    from birdkit.infer.scorer import Scorer

    comp = Competition(synthetic_comp)
    plan, built = make_plan(comp, two_heads, postprocess={})
    assert plan.base_index == (None,) and built == {}  # nothing blends: nothing mapped, nothing built
    plan, built = make_plan(comp, two_heads, postprocess={"blend": 0.0})
    assert plan.base_index[0] is not None and 0 in built
    wav = sorted((synthetic_comp / "test_soundscapes").iterdir())[0]
    chunks = load_chunks(wav, plan.rates).by_rate
    raw = Scorer(plan, built=built).raw(chunks)
    plain, res = raw.members
    assert plain.name == "plain" and plain.base is not None and res.base is not None
    both = np.isfinite(plain.base) & np.isfinite(res.base)
    assert both.any() and np.allclose(plain.base[both], res.base[both])  # the same classifier under both
    pt_plan, pt_built = make_plan(comp, None, "placeholder", postprocess={})
    passthrough = Scorer(pt_plan, built=pt_built).score(chunks)
    blended = Scorer(plan, built=built).score(chunks)  # w = 0: each head is its encoder's classifier
    assert np.allclose(blended[both], passthrough[both])


def test_a_plan_refuses_rank_tables_for_other_heads(synthetic_comp, two_heads):
    """The dataset's rank tables must name the heads that score, else the numbers mean nothing."""
    import json

    from birdkit.competition import Competition
    from birdkit.infer.plan import InferError, make_plan

    table = {"reference": [0.0, 1.0], "heads": {"plain": [0.0, 1.0], "other": [0.0, 1.0]}}
    (two_heads / pp.FILE).write_text(json.dumps({"ensemble": "rank", "rank": table}))
    try:
        with pytest.raises(InferError, match="rank tables"):
            make_plan(Competition(synthetic_comp), two_heads)
    finally:
        (two_heads / pp.FILE).unlink()


def test_rank_tables_of_tied_outputs_are_still_valid():
    """Mostly-constant outputs (a species never heard) give tied quantiles: the tables stay strictly increasing."""
    z = np.zeros((50, 3))
    z[:3] = 1.0
    spec = pp.check({"ensemble": "rank", "rank": fit_rank([Raw([Member("a", z), Member("b", 2 * z)])])})
    out = combine(spec, Raw([Member("a", z), Member("b", 2 * z)]))
    assert np.isfinite(out).all() and (out[:3] > out[3:].max()).all()
