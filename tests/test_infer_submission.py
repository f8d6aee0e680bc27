"""Inference on the synthetic competition with the placeholder encoder (no BirdNET, no ../shared): the config, the
plan, float64 probabilities without ties up to the written file, and the same file whatever the scheduling."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from birdkit.competition import Competition
from birdkit.encoders import EncoderOutputs
from birdkit.encoders.placeholder import Placeholder
from birdkit.errors import OptionError
from birdkit.infer import InferConfig, InferError, make_plan, run_inference, sigmoid
from birdkit.infer.files import FileJob, FileResult
from birdkit.infer.submission import assemble, write_submission


class HighLogits(Placeholder):
    """Logits 17.5 and 18.0 on alternate rows for every class: sure calls that float32 would both round to 1."""

    def embed(self, chunks: np.ndarray) -> EncoderOutputs:
        out = super().embed(chunks)
        logits = np.where(np.arange(len(out))[:, None] % 2 == 0, 17.5, 18.0) * np.ones_like(out.logits)
        return EncoderOutputs(out.embeddings, logits)


def test_sigmoid_keeps_sure_calls_apart():
    assert np.float32(sigmoid(np.float32(17.5))) == 1.0  # why it must stay float64
    p = sigmoid(np.array([17.5, 18.0, 29.0, 30.0], dtype=np.float32))
    assert p.dtype == np.float64 and len(set(p.tolist())) == 4 and p.max() < 1.0


def test_assembled_and_written_probabilities_stay_distinct(tmp_path):
    species = ["a", "b"]
    jobs = [FileJob(0, str(tmp_path / "x.ogg"), 1)]
    probs = sigmoid(np.array([[17.5, 0.0], [18.0, 0.0]]))
    results = {0: FileResult(jobs[0], ["x_5", "x_10"], probs)}
    row_ids, assembled, errors = assemble(jobs, results, species, {})
    assert errors == [] and assembled.dtype == np.float64
    write_submission(tmp_path / "s.csv", row_ids, assembled, species)
    written = pd.read_csv(tmp_path / "s.csv")
    a, b = written["a"]
    assert a != b and a < b < 1.0
    np.testing.assert_array_equal(written[species].to_numpy(), probs)


def test_logits_near_18_are_written_distinct_end_to_end(synthetic_comp, tmp_path):
    r = run_inference(InferConfig(synthetic_comp, tmp_path / "s.csv", passthrough=f"{__name__}:HighLogits",
                                  progress=False))  # fmt: skip
    assert r.error is None and r.errors == []
    written = pd.read_csv(tmp_path / "s.csv")
    values = written.iloc[:, 1:].to_numpy()
    mapped = ~written.columns[1:].isin(r.unmapped)
    assert set(np.unique(values[:, mapped])) == {sigmoid(17.5), sigmoid(18.0)}
    assert values.max() < 1.0


def test_the_file_is_the_same_however_it_is_scheduled(synthetic_comp, tmp_path):
    """One process with decoding ahead, inline decoding, and worker processes: byte-identical files."""
    base = InferConfig(synthetic_comp, split="train_audio", passthrough="placeholder", progress=False)
    runs = {
        "ahead": replace(base, out=tmp_path / "a.csv", workers=1),
        "inline": replace(base, out=tmp_path / "b.csv", workers=1, overlap=False),
        "workers": replace(base, out=tmp_path / "c.csv", workers=2),
    }
    results = {k: run_inference(c) for k, c in runs.items()}
    assert results["workers"].profile.workers == 2 and results["ahead"].profile.config["overlap"] is True
    assert results["inline"].profile.config["overlap"] is False
    files = {k: c.out.read_bytes() for k, c in runs.items()}
    assert files["ahead"] == files["inline"] == files["workers"]
    assert results["ahead"].frame.iloc[:, 1:].to_numpy().dtype == np.float64
    assert results["ahead"].plan["name"] == "placeholder passthrough"


def test_plan_species_mapping_is_made_once_in_the_parent(synthetic_comp):
    comp = Competition(synthetic_comp)
    plan, built = make_plan(comp, passthrough="placeholder")
    assert plan.species == tuple(comp.species) and not hasattr(plan, "data_dir")
    assert sorted(i for i in plan.species_index if i >= 0) == list(range(len(built[0].classes)))
    assert plan.unmapped == [] and plan.fastest() is None  # the placeholder declares no faster options


def test_bad_options_and_encoders_say_what_to_do(synthetic_comp, tmp_path):
    for bad in ({"workers": -1}, {"limit": -2}, {"budget_min": 0}, {"guard_after": 0}, {"batch_size": 0}):
        with pytest.raises(OptionError):
            InferConfig(synthetic_comp, **bad)
    with pytest.raises(InferError, match="neither built in"):
        make_plan(Competition(synthetic_comp), passthrough="nosuchencoder")
    with pytest.raises(InferError, match="nothing to score with"):
        run_inference(InferConfig(synthetic_comp, tmp_path / "s.csv", fallback=False, progress=False))
    assert (tmp_path / "s.csv").exists()  # the prior-only file is written even so


def test_a_card_that_is_not_one_names_the_file(tmp_path):
    from birdkit.heads.runner import ModelsError, load_models

    (tmp_path / "heads").mkdir()
    (tmp_path / "heads" / "x.tflite").write_bytes(b"")
    (tmp_path / "heads" / "x.json").write_text('{"name": "x", "species": ["a"]}')  # no encoder, shape, head
    with pytest.raises(ModelsError, match=r"x\.json: not a model card"):
        load_models(tmp_path)
    (tmp_path / "heads" / "x.json").write_text(
        '{"name": "x", "species": [], "encoder": {"name": "placeholder"}, "embedding_dim": 64, "head": {}}'
    )
    with pytest.raises(ModelsError, match="lists no species"):
        load_models(tmp_path)
