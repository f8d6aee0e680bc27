"""Linear heads started from BirdNET's own classifier (`--init birdnet`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
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
