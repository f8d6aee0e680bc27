"""Linear heads started from BirdNET's own classifier (`--init birdnet`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from birdkit import audio, store
from birdkit.encoders.birdnet import window_matrix
from birdkit.heads import model as heads
from birdkit.heads.card import TrainConfig
from birdkit.heads.train import initial_state, train_head


def test_birdnet_init_reproduces_birdnet_window_logits(minicomp, minicomp_train_store, birdnet):
    """At init the head *is* BirdNET's last layer for the competition species: same logits on window embeddings."""
    emb = store.load(minicomp_train_store)
    spec = heads.head_spec("linear", 1024, len(emb.species))
    head = heads.build_head(spec)
    head.load_state_dict(initial_state(emb, spec, "birdnet"))
    cf = audio.load_chunks(minicomp / "train_audio" / "aldfly" / "XC182735.ogg", 48000)
    w_emb, w_logits = birdnet.run_windows(window_matrix(cf.chunks[:3], "paper"))
    idx = np.asarray(emb.meta.logits_index)
    got = heads.predict_logits(head, w_emb)
    np.testing.assert_allclose(got, w_logits[:, idx], atol=2e-3, rtol=1e-4)
    assert not torch.equal(head[0].weight, heads.build_head(spec)[0].weight)


def test_birdnet_init_beats_random_init_on_held_out_soundscapes(
    minicomp, minicomp_train_store, minicomp_test_store
):
    """Measured: 0.889 vs 0.612 (BCE, 20 epochs); BirdNET passthrough is 0.920."""
    truth = pd.read_csv(minicomp / "test_labels_5s.csv", keep_default_na=False)
    scores = {}
    for init in ("birdnet", "random"):
        config = TrainConfig(loss="bce", init=init, epochs=10, lr=1e-3)
        card = train_head(
            minicomp_train_store, minicomp_train_store.parent / f"init_{init}", config,
            test=(minicomp_test_store, truth), progress=False,
        )  # fmt: skip
        scores[init] = card.metrics["test"]["roc_auc"]
        assert card.hyperparameters["init"] == init
    assert scores["birdnet"] > 0.85
    assert scores["birdnet"] > scores["random"] + 0.15


def test_residual_head_starts_as_passthrough_and_keeps_the_start_unless_validation_improves(
    minicomp_train_store, tmp_path
):
    """A residual head's output is BirdNET's own chunk logits + a correction from zero: validated on windows
    whose labels BirdNET already ranks perfectly, no epoch can beat the start, so the zero correction ships."""
    emb = store.load(minicomp_train_store)
    base = np.where(np.isfinite(emb.logits) & (emb.logits > -1e30), emb.logits, 0.0)
    files = sorted(set(emb.frame["file"]))[:10]
    rows = emb.frame["file"].isin(files).to_numpy()
    truth = pd.DataFrame({"row_id": emb.frame["row_id"][rows], "labels": ""})
    top = base[rows].argmax(axis=1)
    truth["labels"] = [
        emb.species[k] if base[r, k] > 0 else "" for r, k in zip(np.flatnonzero(rows), top, strict=True)
    ]
    sub = store.Embeddings(emb.frame[rows].reset_index(drop=True), emb.embeddings[rows], emb.logits[rows],
                           emb.meta, emb.root)  # fmt: skip
    config = TrainConfig(loss="bce", epochs=2, lr=1e-2)
    card = train_head(emb, tmp_path / "res", config, progress=False, validation=(sub, truth))
    assert card.head["base_index"] == list(emb.meta.logits_index)
    assert card.hyperparameters["residual"] == "auto" and card.hyperparameters["init"] == "auto"
    assert card.metrics["history"][0]["epoch"] == 0
    head, _ = heads.load_head(tmp_path / "res")
    correction = heads.predict_logits(head, emb.embeddings[rows])
    if card.metrics["best_epoch"] == 0:
        assert np.abs(correction).max() == 0.0
    assert card.metrics["val"]["roc_auc"] >= card.metrics["val"]["passthrough"] - 1e-9


def test_explicit_init_keeps_the_plain_head(minicomp_train_store, tmp_path):
    card = train_head(
        minicomp_train_store, tmp_path / "plain", TrainConfig(init="random", epochs=1), progress=False
    )
    assert "base_index" not in card.head and card.hyperparameters["init"] == "random"


@pytest.mark.slow
def test_a_zero_residual_head_infers_exactly_passthrough(minicomp, minicomp_train_store, tmp_path):
    """Exported and run through the one inference path, a residual head at zero gives passthrough's numbers:
    the scorer adds BirdNET's own chunk logits (max over windows) to the TFLite correction."""
    from birdkit.infer import InferConfig, run_inference
    from birdkit.package.export import export

    emb = store.load(minicomp_train_store)
    card = train_head(emb, tmp_path / "res", TrainConfig(epochs=1), progress=False)
    head, _ = heads.load_head(tmp_path / "res")
    torch.save(heads.zero_last_layer(head), tmp_path / "res" / heads.WEIGHTS)
    assert card.head["base_index"] is not None
    export([tmp_path / "res"], tmp_path / "ds", dataset_id="someone/birdkit-residual")
    runs = {}
    for name, kw in {"head": {"models": tmp_path / "ds"}, "pt": {"passthrough": "birdnet"}}.items():
        config = InferConfig(data_dir=minicomp, out=tmp_path / f"{name}.csv", limit=1, progress=False, **kw)
        runs[name] = run_inference(config).frame
    a, b = runs["head"].iloc[:, 1:].to_numpy(), runs["pt"].iloc[:, 1:].to_numpy()
    mapped = np.asarray(emb.meta.logits_index) >= 0
    np.testing.assert_allclose(a[:, mapped], b[:, mapped], atol=1e-6)
