"""Per-file post-processing (infer/postprocess.py): the numbers, the spec's validation, the plan reading it from
the exported dataset, and the notebook writing the CLI's very bytes with it on."""

from __future__ import annotations

import json

import numpy as np
import pytest

from birdkit.errors import OptionError
from birdkit.infer import postprocess as pp


def test_empty_spec_changes_nothing():
    p = np.random.default_rng(0).random((7, 3))
    assert pp.apply({}, p) is p


def test_smoothing_is_a_normalised_kernel_with_edge_padding():
    p = np.array([[0.0], [1.0], [0.0], [0.0]])
    out = pp.apply({"kernel": [1, 2, 1]}, p)
    assert np.allclose(out[:, 0], [0.25, 0.5, 0.25, 0.0])
    assert np.allclose(pp.apply({"kernel": [1, 1, 1]}, np.ones((5, 2))), 1.0)  # a constant stays constant


def test_file_prior_add_and_mul():
    p = np.array([[0.1, 0.2], [0.9, 0.4]])
    add = pp.apply({"file_prior": 0.5, "prior_mode": "add"}, p)
    assert np.allclose(add, 0.5 * p + 0.5 * np.array([[0.9, 0.4]]))
    mul = pp.apply({"file_prior": 1.0, "prior_mode": "mul"}, p)
    assert np.allclose(mul, p * np.array([[0.9, 0.4]]))
    # order within a file is kept: the loudest chunk stays the loudest
    assert add[1, 0] > add[0, 0] and mul[1, 0] > mul[0, 0]


def test_nan_columns_stay_nan_and_others_are_untouched_by_them():
    p = np.array([[0.1, np.nan], [0.5, np.nan], [0.2, np.nan]])
    out = pp.apply({"kernel": [1, 2, 1], "file_prior": 0.3}, p)
    assert np.isnan(out[:, 1]).all() and np.isfinite(out[:, 0]).all()


def test_empty_file_passes():
    assert pp.apply({"kernel": [1, 2, 1], "file_prior": 0.3}, np.zeros((0, 4))).shape == (0, 4)


@pytest.mark.parametrize(
    "spec, word",
    [
        ({"kernel": [1, 2]}, "odd"),
        ({"kernel": [1, -1, 1]}, "odd"),
        ({"file_prior": 1.0}, "[0, 1)"),
        ({"file_prior": 0.2, "prior_mode": "max"}, "prior_mode"),
        ({"smoothing": 3}, "unknown"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec, word):
    with pytest.raises(OptionError, match=word.replace("[", r"\[").replace(")", r"\)")):
        pp.check(spec)


def test_check_drops_what_does_nothing():
    assert pp.check({"kernel": [1], "file_prior": 0.0}) == {}
    assert pp.check({"kernel": [1, 2, 1], "file_prior": 0.25}) == {
        "kernel": [1.0, 2.0, 1.0],
        "file_prior": 0.25,
        "prior_mode": "add",
    }


def test_plan_reads_the_datasets_postprocess_json_and_an_override_wins(synthetic_comp, tmp_path):
    from birdkit.competition import Competition
    from birdkit.infer.plan import make_plan

    ds = tmp_path / "ds"
    (ds / "encoders" / "placeholder").mkdir(parents=True)
    (ds / "encoders" / "placeholder" / "model.tflite").write_bytes(b"unused by the placeholder")
    (ds / pp.FILE).write_text(json.dumps({"kernel": [1, 2, 1], "file_prior": 0.5}))
    comp = Competition(synthetic_comp)
    plan, _ = make_plan(comp, ds, "placeholder")
    assert plan.postprocess == {"kernel": [1.0, 2.0, 1.0], "file_prior": 0.5, "prior_mode": "add"}
    assert plan.describe()["postprocess"] == plan.postprocess
    assert make_plan(comp, ds, "placeholder", postprocess={})[0].postprocess == {}
    (ds / pp.FILE).write_text(json.dumps({"kernel": [1, 2]}))
    with pytest.raises(OptionError, match="postprocess.json"):
        make_plan(comp, ds, "placeholder")


@pytest.mark.slow
def test_notebook_writes_the_cli_bytes_with_postprocessing_on(synthetic_comp, tmp_path):
    """A head on BirdNET embeddings + every lever (blend, rank tables, smoothing, file prior, co-occurrence prior)
    from the dataset's postprocess.json: CLI vs notebook, byte for byte, and different from the same head
    without post-processing."""
    import pandas as pd

    from birdkit.cli.main import main
    from birdkit.heads.card import TrainConfig
    from birdkit.heads.train import train_head
    from birdkit.package.export import export
    from birdkit.store.embed import embed_split
    from birdkit.store.labels import LabelSpec
    from birdkit.workflows.notebook import run_notebook
    from birdkit.workflows.tune import apply_to

    embed_split(synthetic_comp, "train_audio", tmp_path / "emb", workers=1, progress=False)
    config = TrainConfig(labels=LabelSpec(folder="all"), epochs=10)
    train_head(tmp_path / "emb", tmp_path / "m" / "lin", config, progress=False, name="lin")
    ds = tmp_path / "ds"
    export([tmp_path / "m" / "lin"], ds, dataset_id="someone/birdkit-pp")
    infer = ["infer", "--data-dir", str(synthetic_comp), "--models", str(ds), "--workers", "1", "--out"]
    assert main([*infer, str(tmp_path / "raw.csv")]) == 0
    from birdkit.competition import Competition

    a, b = Competition(synthetic_comp).species[:2]
    rank = {"reference": [-6.0, -1.0, 0.0, 4.0], "heads": {"lin": [-5.0, -2.0, 1.0, 3.0]}}
    rules = [[a, b, 0.9], [b, a, 0.8]]
    apply_to(
        ds,
        {
            "kernel": [1, 2, 1],
            "file_prior": 0.5,
            "prior_mode": "add",
            "cooccur": {"weight": 0.4, "rules": rules},
            "blend": 0.5,
            "ensemble": "rank",
            "rank": rank,
        },
    )
    assert main([*infer, str(tmp_path / "cli.csv")]) == 0
    nb = run_notebook(synthetic_comp, tmp_path / "nb", models_dir=ds, workers=1)
    assert nb.submission.read_bytes() == (tmp_path / "cli.csv").read_bytes()
    a, b = pd.read_csv(tmp_path / "cli.csv"), pd.read_csv(tmp_path / "raw.csv")
    assert not np.allclose(a.iloc[:, 1:].to_numpy(), b.iloc[:, 1:].to_numpy())  # post-processing was on


def test_neighbour_max_raises_a_chunk_to_its_neighbours_logit_less_the_drop():
    """In logit space: chunk i becomes max(z_i, z_{i-1} - d, z_{i+1} - d), per species, within the file."""
    z = np.array([[-4.0, 0.0], [2.0, 0.0], [-4.0, 3.0], [-1.0, np.nan]])
    p = 1.0 / (1.0 + np.exp(-z))
    got = pp.apply(pp.check({"neighbour_max": 1.0}), p)
    want = np.array([[1.0, 0.0], [2.0, 2.0], [1.0, 3.0], [-1.0, np.nan]])
    np.testing.assert_allclose(got, 1.0 / (1.0 + np.exp(-want)), atol=1e-12)
    assert np.isnan(got[3, 1])  # a species no model predicts stays unpredicted
    np.testing.assert_allclose(
        pp.apply({"neighbour_max": 100.0}, p), p, atol=1e-12
    )  # a large drop: nothing moves
    assert "neighbour max (drop 1)" in pp.describe({"neighbour_max": 1.0})
    with pytest.raises(OptionError, match="neighbour_max"):
        pp.check({"neighbour_max": -1})
