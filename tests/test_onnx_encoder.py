"""The ONNX backend on a Perch 2.0 stand-in (its input and output names and shapes, random weights): the runner's
row alignment, the encoder's defaults and overrides, `birdkit embed --encoder perch --model X.onnx`, and the
option errors a user can fix."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
from standins import Perch2Spec, build_perch2_onnx, write_label_file

from birdkit.cli.main import main
from birdkit.encoders import get_encoder
from birdkit.encoders.options import add_encoder_arguments, encoder_options
from birdkit.errors import OptionError
from birdkit.runtime.onnx import OnnxError, OnnxRunner
from birdkit.store import load
from birdkit.synthetic import SPECIES

N_CLASSES = Perch2Spec().n_classes


@pytest.fixture(scope="module")
def perch2(tmp_path_factory) -> Path:
    return build_perch2_onnx(tmp_path_factory.mktemp("perch2") / "perch_v2.onnx")


@pytest.fixture(scope="module")
def labels(perch2) -> Path:
    """A label file in the model's column order: filler classes with the synthetic species among them."""
    classes = [f"noise_{i}" for i in range(N_CLASSES - len(SPECIES))]
    for i, s in enumerate(SPECIES):
        classes.insert(7 * i + 3, s.code if i % 2 else s.scientific)
    return write_label_file(perch2.parent / "labels.csv", classes)


def test_runner_rows_align_across_batches(perch2):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(7, 160_000)).astype(np.float32)
    whole = OnnxRunner(perch2, batch_size=16, outputs=["embedding", "label"]).run(x)
    for batch in (1, 3, 7):
        r = OnnxRunner(perch2, batch_size=batch, outputs=["label", "embedding"])
        label, emb = r.run(x)
        np.testing.assert_allclose(emb, whole[0], atol=1e-5)
        np.testing.assert_allclose(label, whole[1], atol=1e-5)
    empty = r.run(np.zeros((0, 160_000), np.float32))
    assert [e.shape for e in empty] == [(0, N_CLASSES), (0, 1536)]


def test_runner_names_what_the_graph_has(perch2):
    with pytest.raises(OnnxError, match=r"no output 'logits'; it has embedding, spatial_embedding.*--logits"):
        OnnxRunner(perch2, outputs=["logits"])
    with pytest.raises(OnnxError, match="no input 'audio'; it has inputs"):
        OnnxRunner(perch2, input_name="audio")


def test_perch_onnx_defaults_and_overrides(perch2, labels):
    enc = get_encoder("perch", model_path=perch2, labels=labels)
    assert (enc.name, enc.sample_rate, enc.embedding_dim) == ("perch", 32_000, 1536)
    assert len(enc.classes) == N_CLASSES
    d = enc.describe()
    assert d["path"] == "onnx" and d["options"]["logits_name"] == "label" and len(d["version"]) == 12
    out = enc.embed(np.zeros((3, 160_000), np.float32))
    assert out.embeddings.shape == (3, 1536) and out.logits.shape == (3, N_CLASSES)
    # another output as the embedding: the spatial embedding, flattened
    spatial = get_encoder("onnx", model_path=perch2, embedding_name="spatial_embedding", logits_name="label")
    assert spatial.embedding_dim == 16 * 4 * 1536
    with pytest.raises(ValueError, match=r"expects chunks \[n, 160000\]"):
        enc.embed(np.zeros((1, 1000), np.float32))


def test_perch_needs_a_file_and_compiles_savedmodels_first(tmp_path):
    with pytest.raises(OptionError, match="needs --model PATH"):
        get_encoder("perch")
    (tmp_path / "sm").mkdir()
    (tmp_path / "sm" / "saved_model.pb").write_bytes(b"")
    with pytest.raises(OptionError, match=r"compile a SavedModel first with `birdkit compile"):
        get_encoder("perch", model_path=tmp_path / "sm")
    with pytest.raises(OptionError, match="no such file"):
        get_encoder("perch", model_path=tmp_path / "nope.onnx")


def _parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_encoder_arguments(p)
    return p.parse_args(list(argv))


def test_encoder_options_are_checked(perch2, labels):
    opts = encoder_options(_parse("--encoder", "perch", "--model", str(perch2), "--input", "inputs"))
    assert opts == {"model_path": str(perch2), "input_name": "inputs"}
    with pytest.raises(OptionError, match=r"--input: encoder 'birdnet' takes no such option.*onnx"):
        encoder_options(_parse("--input", "inputs"))
    with pytest.raises(OptionError, match=r"--labels nope.csv: no such file"):
        encoder_options(_parse("--encoder", "perch", "--model", str(perch2), "--labels", "nope.csv"))


def test_embed_cli_with_the_flags_as_written(perch2, labels, synthetic_comp, tmp_path, capsys):
    out = tmp_path / "emb"
    argv = ["embed", str(synthetic_comp), "--encoder", "perch", "--model", str(perch2), "--input", "inputs",
            "--embedding", "embedding", "--logits", "label", "--labels", str(labels), "--out", str(out),
            "--limit", "4"]  # fmt: skip
    assert main(argv) == 0
    emb = load(out)
    assert emb.meta.encoder_name == "perch" and emb.embeddings.shape[1] == 1536
    assert emb.meta.unmapped_species == [] and np.isfinite(emb.logits).all()
    # the store's species columns are the model's label-file columns, in competition order
    enc = get_encoder("perch", model_path=perch2, labels=labels)
    chunk = np.zeros((1, 160_000), np.float32)
    raw = enc.embed(chunk).logits[0]
    for j, code in enumerate(emb.species):
        sp = next(s for s in SPECIES if s.code == code)
        col = enc.classes.index(sp.code) if sp.code in enc.classes else enc.classes.index(sp.scientific)
        assert emb.meta.logits_index[j] == col and np.isfinite(raw[col])
