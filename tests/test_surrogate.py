"""`birdkit label EMB --surrogate OTHER`: pseudo-labels from another store's logits, joined by row (the paper's
best configuration: BirdNET embeddings, Perch's labels), here placeholder embeddings with a Perch 2.0 stand-in's
labels."""

from __future__ import annotations

import shutil
from dataclasses import replace

import numpy as np
import pytest
from standins import Perch2Spec, build_perch2_onnx, write_label_file

from birdkit.cli.main import main
from birdkit.store import StoreError, load
from birdkit.store.embed import embed_split
from birdkit.store.labels import LabelSpec, label_store, make_labels, read_labels
from birdkit.synthetic import SPECIES


@pytest.fixture(scope="module")
def perch_store(synthetic_comp, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("surrogate")
    model = build_perch2_onnx(tmp / "perch.onnx")
    classes = [s.code for s in SPECIES] + [f"noise_{i}" for i in range(Perch2Spec().n_classes - len(SPECIES))]
    labels = write_label_file(tmp / "labels.csv", classes[::-1])
    options = {"model_path": str(model), "labels": str(labels)}
    embed_split(synthetic_comp, "train_audio", tmp / "perch", "perch", options, progress=False)
    return tmp / "perch"


def test_labels_come_from_the_surrogate_row_by_row(placeholder_train_store, perch_store, tmp_path, capsys):
    shutil.copytree(placeholder_train_store, tmp_path / "ph")
    argv = ["label", str(tmp_path / "ph"), "--surrogate", str(perch_store), "--threshold", "0.3"]
    assert main(argv) == 0
    assert f"from {perch_store}'s logits" in capsys.readouterr().out
    emb, sur = load(tmp_path / "ph"), load(perch_store)
    got, meta = read_labels(emb)
    assert meta["surrogate"]["encoder"]["name"] == "perch" and meta["encoder"]["name"] == "placeholder"
    # the join: each row of emb gets the label made from the surrogate's row with the same (file, row_id)
    by_key = {(f, r): i for i, (f, r) in enumerate(zip(sur.frame["file"], sur.frame["row_id"], strict=True))}
    order = [by_key[k] for k in zip(emb.frame["file"], emb.frame["row_id"], strict=True)]
    want = make_labels(sur.logits[order], emb.frame, emb.species, LabelSpec(threshold=0.3))
    assert np.array_equal(got, want)
    own = make_labels(emb.logits, emb.frame, emb.species, LabelSpec(threshold=0.3))
    assert not np.array_equal(got, own)  # not the store's own logits


def test_surrogate_errors_say_the_fix(placeholder_train_store, placeholder_test_store, perch_store, tmp_path):
    shutil.copytree(placeholder_train_store, tmp_path / "ph")
    emb = load(tmp_path / "ph")
    with pytest.raises(StoreError, match=r"lacks \d+ of the \d+ rows .* embed the same split"):
        label_store(emb, surrogate=load(placeholder_test_store))
    sur = load(perch_store)
    sur = replace(sur, logits=np.full_like(sur.logits, -np.inf))  # no classifier (EnCodec): no logits
    with pytest.raises(StoreError, match="has no logits .* choose a surrogate with a classifier"):
        label_store(emb, surrogate=sur)
