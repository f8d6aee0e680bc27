"""`birdkit tune`: post-processing chosen on labelled validation soundscapes, never worse than none there,
reported, and written where CLI and notebook read it."""

from __future__ import annotations

import json

import pytest

from birdkit.errors import OptionError
from birdkit.infer import postprocess as pp
from birdkit.mix import MixConfig, mix
from birdkit.workflows.tune import apply_to, score_raw, search, tune


@pytest.fixture(scope="module")
def validation(synthetic_comp, tmp_path_factory):
    out = tmp_path_factory.mktemp("tune") / "val"
    mix(synthetic_comp, out, MixConfig(files=4, seconds=30, seed=2))
    return out


@pytest.fixture(scope="module")
def scored(validation):
    return score_raw(validation, passthrough="placeholder")


def test_raw_scores_cover_every_labelled_row(scored):
    ids = [r for rows, _ in scored.files for r in rows]
    assert sorted(ids) == sorted(scored.truth["row_id"])
    assert 0.0 < scored.score({}) <= 1.0


def test_search_starts_from_none_and_never_chooses_worse(scored):
    r = search(scored, trials=10, seed=0)
    assert r.trials[-1]["score"] <= r.score and r.score >= r.baseline
    assert any(t["spec"] == {} for t in r.trials)
    assert abs(scored.score(r.best) - r.score) < 1e-12
    assert r.best == pp.check(r.best)
    assert search(scored, trials=10, seed=0).best == r.best  # seeded: the same choice again


def test_tune_writes_report_and_applies(validation, tmp_path):
    ds = tmp_path / "ds"
    ds.mkdir()
    (ds / "manifest.json").write_text("{}")
    r = tune(validation, passthrough="placeholder", trials=6, out=tmp_path / "rep", apply=ds)
    assert "no post-processing" in (tmp_path / "rep" / "tune.md").read_text()
    assert json.loads((tmp_path / "rep" / "tune.json").read_text())["best"] == r.best
    assert pp.read(ds) == r.best
    assert "postprocess.json" in json.loads((ds / "manifest.json").read_text())["files"]


def test_tune_needs_labels_and_a_model(synthetic_comp, validation, tmp_path):
    import shutil

    from birdkit.cli.main import main

    unlabelled = tmp_path / "unlabelled"
    shutil.copytree(validation, unlabelled)
    (unlabelled / "test_labels_5s.csv").unlink()
    with pytest.raises(OptionError, match="birdkit mix"):
        score_raw(unlabelled, passthrough="placeholder")
    assert main(["tune", str(synthetic_comp)]) != 0  # neither --models nor --passthrough
    with pytest.raises(OptionError, match="--trials"):
        search(None, trials=0)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="--apply"):
        apply_to(tmp_path / "missing", {})


def test_cli_tune(validation, tmp_path, capsys):
    from birdkit.cli.main import main

    rc = main(
        ["tune", str(validation), "--passthrough", "placeholder", "--trials", "4", "--out", str(tmp_path)]
    )
    out = capsys.readouterr().out
    assert rc == 0 and "no post-processing" in out and "file prior" in out and "smoothing" in out


def test_paired_wins_needs_a_gain_across_files(scored):
    from birdkit.workflows.tune import TuneResult, paired_wins

    same = TuneResult({}, scored.score({}), scored.score({}), scored=scored)
    assert paired_wins(same, same, resamples=20) == 0.5  # ties count half
    best = search(scored, trials=6, seed=0)
    best.scored = scored
    assert paired_wins(best, same, resamples=20) >= 0.5 or best.best == {}


def test_search_weighs_the_cooccurrence_prior_and_reports_each_component(scored, tmp_path):
    from birdkit.workflows.tune import Scored, write_report

    rules = [[scored.species[0], scored.species[1], 0.9], [scored.species[1], scored.species[0], 0.9]]
    with_rules = Scored(scored.species, scored.files, scored.truth, rules)
    r = search(with_rules, trials=12, seed=0)
    assert any("cooccur" in t["spec"] for t in r.trials) and r.score >= r.baseline
    names = [c["component"] for c in r.components]
    assert names == ["smoothing", "file prior", "co-occurrence prior"]  # no heads: no blend, no ensemble
    for c in r.components:  # a component that is kept earns its place on validation
        assert not c["chosen"] or c["choice without it"] < r.score
    write_report(r, tmp_path, "val")
    assert "| co-occurrence prior |" in (tmp_path / "tune.md").read_text()


def test_prune_switches_off_what_does_not_win(scored):
    from birdkit.workflows.tune import prune

    idle = {"cooccur": {"weight": 0.5, "rules": [["not-a-species", scored.species[0], 0.9]]}}
    spec = pp.check({"file_prior": 0.3, **idle})
    out, score = prune(scored, spec, scored.score(spec))
    assert "cooccur" not in out and score == scored.score(out)


def test_cli_tune_mines_cooccurrence_rules(validation, placeholder_test_store, tmp_path, capsys):
    from birdkit.cli.main import main

    argv = ["tune", str(validation), "--passthrough", "placeholder", "--trials", "3", "--out", str(tmp_path)]
    assert (
        main([*argv, "--cooccurrence", str(placeholder_test_store), "--cooccurrence-threshold", "0.2"]) == 0
    )
    assert "no post-processing" in capsys.readouterr().out
    assert "| co-occurrence prior |" in (tmp_path / "tune.md").read_text()  # rules found, the prior weighed


def test_the_ship_gate_judges_on_files_nothing_was_chosen_on(scored):
    """Validation files split into two seeded, disjoint halves; ``only`` cuts the raw scores and the truth to a
    half; the gate compares candidates on one half alone."""
    from birdkit.workflows.tune import TuneResult, held_out_wins, split_files

    stems = sorted({rows[0].rpartition("_")[0] for rows, _ in scored.files})
    select, judge = split_files(stems, seed=0)
    assert sorted(select + judge) == stems and not set(select) & set(judge)
    assert len(select) - len(judge) in (0, 1) and split_files(stems, seed=0) == (select, judge)
    half = scored.only(judge)
    ids = [r for rows, _ in half.files for r in rows]
    assert sorted(ids) == sorted(half.truth["row_id"]) and {i.rpartition("_")[0] for i in ids} == set(judge)
    same = search(scored, trials=3, seed=0)
    same.scored = scored
    assert held_out_wins(same, same, judge) == 0.5  # a candidate against itself: ties
    none = TuneResult({}, 0.0, 0.0, scored=scored)
    if scored.only(judge).score(same.best) > scored.only(judge).score({}):
        assert held_out_wins(same, none, judge) > 0.5
