"""`birdkit infer`: the real BirdNET model on real soundscapes -> a submission Kaggle accepts, profiled.

The figures asserted: BirdNET passthrough scores about 0.92 on minicomp (README of ../shared), every edge case
still gets its rows, the budget guard switches to the centre window mid-run, and exported heads are mapped onto
the submission columns by name and averaged.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from birdkit.cli.main import main
from birdkit.competition import Competition
from birdkit.infer import InferConfig, SubmissionError, bundles, check_submission, file_jobs, run_inference
from birdkit.infer.postprocess import neighbour_max
from birdkit.metrics import score_submission
from birdkit.profile import STAGES, TEST_FILES, usable_cores


def comp_with(tmp: Path, audio: list[Path], like: Path, split: str = "test_soundscapes") -> Path:
    """A competition folder in ``tmp`` whose ``split`` holds symlinks to ``audio``; tables from ``like``, its
    sample submission's columns only (its rows are ``like``'s files, which this folder does not have)."""
    root = tmp / "comp"
    (root / split).mkdir(parents=True)
    for f in audio:
        (root / split / f.name).symlink_to(f.resolve())
    shutil.copyfile(like / "eBird_Taxonomy_v2021.csv", root / "eBird_Taxonomy_v2021.csv")
    header = (like / "sample_submission.csv").read_text().splitlines()[0]
    (root / "sample_submission.csv").write_text(header + "\n")
    return root


@pytest.fixture(scope="module")
def minicomp_run(minicomp, tmp_path_factory) -> dict:
    """`birdkit infer --data-dir minicomp --passthrough birdnet` through the CLI, one worker (decode overlapped)."""
    out = tmp_path_factory.mktemp("infer")
    sub, prof = out / "s.csv", out / "profile.json"
    rc = main(["infer", "--data-dir", str(minicomp), "--passthrough", "birdnet", "--out", str(sub),
               "--profile", str(prof), "--workers", "1", "--quiet"])  # fmt: skip
    return {"rc": rc, "submission": sub, "profile": json.loads(prof.read_text())}


@pytest.mark.shared
def test_passthrough_scores_like_birdnet_on_minicomp(minicomp_run, minicomp):
    assert minicomp_run["rc"] == 0
    sub = pd.read_csv(minicomp_run["submission"])
    truth = Competition(minicomp).test_labels()
    assert sorted(sub["row_id"]) == sorted(truth["row_id"])  # 118 + 120 rows, the chunk rule of audio.py
    score = score_submission(sub, truth)
    assert 0.90 <= score <= 0.95, score  # README: BirdNET used directly reaches 0.92


@pytest.mark.shared
def test_submission_has_the_sample_columns_and_valid_probabilities(minicomp_run, minicomp):
    df = check_submission(minicomp_run["submission"], minicomp)
    assert list(df.columns) == list(pd.read_csv(minicomp / "sample_submission.csv", nrows=0).columns)
    values = df.iloc[:, 1:].to_numpy()
    assert values.min() >= 0 and values.max() <= 1 and values.std() > 0.01
    # Species BirdNET lacks would be exactly 0 (never predicted); minicomp's all map, so none is constant.
    assert (df.iloc[:, 1:].nunique() > 1).all()


@pytest.mark.shared
def test_profile_records_every_stage_and_the_extrapolation(minicomp_run):
    p = minicomp_run["profile"]
    assert p["files"] == 2 and p["rows"] == 238 and p["failed_files"] == 0
    assert p["cores"] == usable_cores() and p["workers"] == 1 and p["config"]["overlap"] is True
    assert abs(p["audio_s"] - 1185.7) < 1.0  # 585.7 s + 600 s
    assert set(STAGES) <= set(p["stages"])
    for name in ("decode", "resample", "encoder", "writing"):
        assert p["stages"][name]["wall_s"] > 0 and p["stages"][name]["cpu_s"] > 0, name
    # the encoder dominates: that is what the budget is spent on
    assert p["stages"]["encoder"]["cpu_s"] > 2 * (
        p["stages"]["decode"]["cpu_s"] + p["stages"]["resample"]["cpu_s"]
    )
    rate = (p["wall_s"] - p["setup_s"]) / (p["audio_s"] / 240)
    assert p["rate_s_per_4min"] == pytest.approx(rate)
    assert p["test_estimate_h"] == pytest.approx((p["setup_s"] + rate * TEST_FILES) / 3600)
    assert p["within_budget"] == (p["test_estimate_h"] * 60 <= 120)
    assert p["cpu_s_per_4min"] > 0.5  # 96 BirdNET windows per 4 minutes cannot cost less
    assert p["guard"]["switched"] is None and p["guard"]["predicted_min"] > 0


@pytest.mark.shared
def test_edge_cases_still_yield_a_valid_submission(edge_cases, minicomp, tmp_path):
    """Every file gets rows; unreadable ones get the prior (the scored rows' mean) and say why."""
    files = sorted(edge_cases.iterdir())
    comp = comp_with(tmp_path, files, minicomp)
    r = run_inference(InferConfig(comp, tmp_path / "s.csv", passthrough="birdnet", workers=2, progress=False))
    assert r.error is None
    df = check_submission(tmp_path / "s.csv", comp)
    stems = {rid.rpartition("_")[0] for rid in df["row_id"]}
    assert stems == {f.stem for f in files}
    failed = {Path(e["file"]).name: e for e in r.errors}
    assert set(failed) == {"empty.ogg", "not_audio.ogg"}
    assert "empty" in failed["empty.ogg"]["error"] and "decode" in failed["not_audio.ogg"]["error"]
    assert failed["empty.ogg"]["rows"] == 48  # no header to size it: a nominal 4-minute soundscape
    counts = df["row_id"].str.rpartition("_")[0].value_counts()
    assert counts["short_0.9s"] == 1 and counts["soundscape_48k"] == 24 and counts["stereo_48k_3.7s"] == 1
    bad = df["row_id"].str.startswith(("empty_", "not_audio_"))
    prior = df.loc[~bad].iloc[:, 1:].mean().to_numpy()
    np.testing.assert_allclose(
        df.loc[bad].iloc[:, 1:].to_numpy(), np.broadcast_to(prior, (bad.sum(), len(prior))), atol=1e-6
    )
    assert r.profile.failed_files == 2 and r.profile.workers == 2


@pytest.mark.shared
def test_budget_guard_switches_to_the_centre_window(minicomp, tmp_path):
    """A budget the first file already overruns: the rest is scored with BirdNET's fastest configuration (one
    centre window, int8 weights, then the neighbour max), exactly as a run with those options scores it, and the
    profile says when and why."""
    files = sorted((minicomp / "unlabeled_soundscapes").iterdir())[-3:]  # 15 s, 10 s, 10 s
    comp = comp_with(tmp_path, files, minicomp)
    r = run_inference(InferConfig(comp, tmp_path / "g.csv", passthrough="birdnet", workers=1, budget_min=0.01,
                                  margin_min=0, guard_after=1, progress=False))  # fmt: skip
    s = r.profile.guard["switched"]
    assert (
        s
        and s["after_files"] == 1
        and s["to"] == "birdnet centre int8 passthrough"
        and s["predicted_min"] > 0.01
    )
    assert r.plan["switched_to"]["name"] == "birdnet centre int8 passthrough"
    assert r.plan["switched_to"]["postprocess"] == {"neighbour_max": 1.0}
    check_submission(tmp_path / "g.csv", comp)
    ref = run_inference(InferConfig(comp, tmp_path / "c.csv", passthrough="birdnet", workers=1, windows="centre",
                                    encoder_options={"precision": "int8"}, guard=False, progress=False))  # fmt: skip
    assert ref.profile.guard["switched"] is None
    a = r.frame.set_index("row_id")
    b = ref.frame.set_index("row_id").copy()
    stems = np.array([i.rpartition("_")[0] for i in b.index])
    for stem in set(stems):  # the neighbour max, per file, on the centre-window run's rows
        b.iloc[stems == stem] = neighbour_max(b.iloc[stems == stem].to_numpy(), 1.0)
    first = a.index.str.startswith(files[0].stem)
    np.testing.assert_allclose(a[~first].to_numpy(), b.loc[a.index[~first]].to_numpy(), atol=1e-6)
    assert np.abs(a[first].to_numpy() - b.loc[a.index[first]].to_numpy()).max() > 1e-3  # paper windows there


def test_a_run_that_cannot_score_leaves_out_alone_and_the_notebook_path_writes_the_prior(
    synthetic_comp, tmp_path
):
    """No model at all: the CLI fails with the reason and leaves --out as it was; the notebook's path (fallback)
    still writes a valid submission with the prior."""
    empty_models = tmp_path / "models"
    (empty_models / "heads").mkdir(parents=True)
    (empty_models / "encoders" / "birdnet").mkdir(parents=True)
    (empty_models / "encoders" / "birdnet" / "model.tflite").write_bytes(b"not a model")
    out = tmp_path / "s.csv"
    out.write_text("good\n")
    rc = main(["infer", "--data-dir", str(synthetic_comp), "--models", str(empty_models), "--passthrough", "birdnet",
               "--out", str(out), "--quiet"])  # fmt: skip
    assert rc == 2 and out.read_text() == "good\n"
    r = run_inference(
        InferConfig(synthetic_comp, out, models=empty_models, passthrough="birdnet", progress=False)
    )
    assert r.error is not None
    df = check_submission(out, synthetic_comp)
    truth = pd.read_csv(synthetic_comp / "test_labels_5s.csv")
    assert sorted(df["row_id"]) == sorted(truth["row_id"])
    assert (df.iloc[:, 1:].to_numpy() == 0).all()


def test_bundles_keep_soundscapes_alone_and_group_short_files(tmp_path):
    from birdkit.infer import FileJob

    jobs = [FileJob(i, f"/x/f{i}.ogg", s) for i, s in enumerate([3_000_000, 100, 200, 999_800, 50, 60])]
    b = bundles(jobs, max_bytes=1_000_000, max_files=16)
    assert [[j.index for j in x.files] for x in b] == [[0], [1, 2, 3], [4, 5]]
    assert [j.index for x in b for j in x.files] == list(range(6))
    assert [len(x.files) for x in bundles(jobs[1:3] * 20, max_files=16)] == [16, 16, 8]


def test_check_submission_rejects_what_kaggle_would(synthetic_comp, tmp_path):
    truth = pd.read_csv(synthetic_comp / "test_labels_5s.csv")
    species = Competition(synthetic_comp).species
    good = pd.DataFrame(0.5, index=range(len(truth)), columns=species)
    good.insert(0, "row_id", truth["row_id"])
    good.to_csv(tmp_path / "ok.csv", index=False)
    assert len(check_submission(tmp_path / "ok.csv", synthetic_comp)) == len(truth)
    bad_cases = {
        "order": good[["row_id", *reversed(species)]],
        "range": good.assign(**{species[0]: 1.5}),
        "missing file": good[
            ~good["row_id"].str.startswith(
                file_jobs(Competition(synthetic_comp), "test_soundscapes", None)[0].stem
            )
        ],
        "gap": good.drop(index=3),
    }
    for name, frame in bad_cases.items():
        frame.to_csv(tmp_path / "bad.csv", index=False)
        with pytest.raises(SubmissionError):
            check_submission(tmp_path / "bad.csv", synthetic_comp)
        assert name


@pytest.mark.shared
def test_notebook_gives_the_same_file_as_the_cli(minicomp_run, minicomp, tmp_path):
    """The notebook, executed with papermill (one worker per core there), writes byte for byte the CLI's file."""
    from birdkit.workflows.notebook import run_notebook

    nb = run_notebook(minicomp, tmp_path, passthrough="birdnet")
    assert nb.submission.read_bytes() == minicomp_run["submission"].read_bytes()
    prof = json.loads(nb.profile.read_text())
    assert prof["workers"] == min(usable_cores(), 2) and prof["rows"] == 238


def _linear_head(rng: np.random.Generator, d: int, s: int) -> tuple[bytes, np.ndarray, np.ndarray]:
    """A real TFLite head from the exporter: a seeded Linear(d, s), its weights returned for the reference."""
    import torch

    from birdkit.package.export import head_to_tflite

    lin = torch.nn.Linear(d, s)
    w = rng.normal(0, 0.05, size=(s, d)).astype(np.float32)
    b = rng.normal(-2, 0.5, size=s).astype(np.float32)
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(w))
        lin.bias.copy_(torch.from_numpy(b))
    return head_to_tflite(torch.nn.Sequential(lin).eval(), d), w, b


@pytest.mark.shared
def test_heads_are_mapped_by_name_and_averaged(minicomp, birdnet, tmp_path):
    """Two exported heads with their own species lists (one reversed, one with a species the competition lacks):
    each submission column is the mean sigmoid of the heads that have that species, and 0 where none has."""
    from birdkit import audio

    files = sorted((minicomp / "unlabeled_soundscapes").iterdir())[-3:]  # 15 s, 10 s, 10 s
    comp = comp_with(tmp_path, files, minicomp)
    species = Competition(comp).species
    rng = np.random.default_rng(7)
    heads = {"a": [*reversed(species[:30]), "notacode1"], "b": species[35:]}
    ref_w = {}
    models = tmp_path / "models"
    (models / "heads").mkdir(parents=True)
    for name, sp in heads.items():
        graph, w, b = _linear_head(rng, 1024, len(sp))
        (models / "heads" / f"{name}.tflite").write_bytes(graph)
        card = {"name": name, "species": sp, "encoder": {"name": "birdnet", "windows": "paper"}, "embedding_dim": 1024,
                "head": {"kind": "linear", "in_dim": 1024, "out_dim": len(sp)},
                "tflite": {"output": {"kind": "logits"}}}  # fmt: skip
        (models / "heads" / f"{name}.json").write_text(json.dumps(card))
        ref_w[name] = (w, b)

    r = run_inference(InferConfig(comp, tmp_path / "s.csv", models=models, workers=1, progress=False))
    assert r.error is None and r.errors == []
    assert r.profile.stages["head"]["cpu_s"] > 0

    emb = np.concatenate(
        [birdnet.embed(audio.load_chunks(f, birdnet.sample_rate).chunks).embeddings for f in files]
    )
    total = np.zeros((len(emb), len(species)))
    count = np.zeros(len(species))
    for name, sp in heads.items():
        w, b = ref_w[name]
        p = 1 / (1 + np.exp(-(emb.astype(np.float64) @ w.T + b)))
        for k, s in enumerate(sp):
            if s in species:
                total[:, species.index(s)] += p[:, k]
                count[species.index(s)] += 1
    expected = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    assert (count == 0).sum() == 5 and (count == 2).sum() == 0
    got = r.frame[species].to_numpy()
    np.testing.assert_allclose(got, expected, atol=2e-5)
    assert (got[:, count == 0] == 0).all() and got[:, count > 0].std() > 0.01
    written = pd.read_csv(tmp_path / "s.csv")
    np.testing.assert_array_equal(written[species].to_numpy(), got)  # float64, written to round-trip


def test_fastest_plan_is_the_centre_window_on_the_fast_path(synthetic_comp):
    from birdkit.infer import make_plan

    comp = Competition(synthetic_comp)
    plan, built = make_plan(comp, passthrough="birdnet")
    # the passthrough encoder is built once, here, to map the species onto its classes
    assert list(built) == [0] and len(plan.species_index) == len(comp.species)
    fast = plan.fastest()
    assert fast is not None and fast.encoders[0].option("windows") == "centre"
    assert fast.encoders[0].option("fast") is True and fast.encoders[0].option("precision") == "int8"
    assert fast.name == "birdnet centre int8 passthrough"
    # the one-window scheme comes with the neighbour max that recovers part of its loss, ahead of the plan's own
    assert fast.postprocess == {"neighbour_max": 1.0} and plan.postprocess == {}
    assert fast.fastest() is None  # nothing faster to switch to: the guard says so and goes on
    full, _ = make_plan(
        comp,
        passthrough="birdnet",
        encoder_options={"windows": "centre", "fast": False},
        postprocess={"file_prior": 0.5},
    )
    assert full.name == "birdnet centre full-graph passthrough"
    switched = full.fastest()
    assert switched.encoders[0].options == {"windows": "centre", "fast": True, "precision": "int8"}
    assert switched.postprocess == {"neighbour_max": 1.0, "file_prior": 0.5, "prior_mode": "add"}
