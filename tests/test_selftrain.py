"""Soundscape self-training (issue 12, item 3): rounds, teachers, selection on labelled soundscapes, resume, CLI."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from birdkit.cli.main import main
from birdkit.errors import OptionError
from birdkit.heads.card import ModelCard, TrainConfig
from birdkit.heads.selftrain import head_probs_targets, self_train
from birdkit.heads.targets import soft_targets
from birdkit.heads.train import data_fingerprint
from birdkit.store import EmbeddingStore, FileRows, load
from birdkit.store.labels import LabelSpec, labels_for
from birdkit.store.meta import StoreMeta
from tests.test_train import SPECIES, toy_store

CONFIG = TrainConfig(loss="bce", epochs=4, lr=0.02, mixup=0.3, labels=LabelSpec(folder="all"), batch_size=16)


def soundscape_store(root, n_files: int = 3, windows: int = 8, dim: int = 8):
    """Unlabelled soundscapes: no folder species; the surrogate's logits are soft (not 0/1)."""
    rng = np.random.default_rng(7)
    st = EmbeddingStore(root)
    st.open(
        StoreMeta(
            encoder={"name": "toy", "version": "1"},
            embedding_dim=dim,
            species=SPECIES,
            split="unlabeled_soundscapes",
        )  # fmt: skip
    )
    files = []
    for f in range(n_files):
        rows = [f"u{f}_{5 * (i + 1)}" for i in range(windows)]
        emb = rng.normal(size=(windows, dim)) * 2
        files.append(FileRows(f"u{f}.ogg", "unlabeled_soundscapes", rows, emb, rng.normal(size=(windows, 4))))
    st.write_shard(files)
    return load(root)


@pytest.fixture
def stores(tmp_path):
    train = toy_store(tmp_path / "train")
    sound = soundscape_store(tmp_path / "sound")
    val = toy_store(tmp_path / "val", n_files=8, seed=1)
    truth = pd.DataFrame({"row_id": val.frame["row_id"], "labels": val.frame["file"].str.split("/").str[0]})
    return train, sound, val, truth


def test_rounds_take_their_teachers_and_the_best_round_ships(stores, tmp_path):
    train, sound, val, truth = stores
    out = tmp_path / "st"
    card = self_train(train, sound, out, CONFIG, validation=(val, truth), rounds=2, power=2.0)
    y = labels_for(train, CONFIG.labels)
    rounds = [ModelCard.read(out / f"round{r}" / "card.json") for r in range(3)]
    # round 0: the clips alone; round 1: the surrogate's σ(logit)**2; round 2: round 1's head's predictions**2
    assert rounds[0].data_fingerprint == data_fingerprint(train, y)
    t1 = soft_targets(sound.logits, 2.0)
    assert rounds[1].data_fingerprint == data_fingerprint(train, y, sound.embeddings, t1)
    t2 = head_probs_targets(out / "round1", sound, 2.0)
    assert not np.allclose(t1, t2)
    assert rounds[2].data_fingerprint == data_fingerprint(train, y, sound.embeddings, t2)
    assert rounds[2].metrics["train"]["soundscape_windows"] == len(sound)
    assert rounds[2].labels["soundscapes"]["mean_target"] == pytest.approx(float(t2.mean()), abs=1e-6)
    st = card.metrics["selftrain"]
    assert [r["teacher"] for r in st["rounds"]] == ["none", "surrogate", "round 1"]
    scores = [r["val_roc_auc"] for r in st["rounds"]]
    assert scores == [c.metrics["val"]["roc_auc"] for c in rounds]
    assert st["chosen"] == int(np.argmax(scores))  # on the labelled soundscapes, the earlier round on a tie
    assert (out / "head.pt").read_bytes() == (out / f"round{st['chosen']}" / "head.pt").read_bytes()
    assert card.metrics["val"]["set"] == "labelled soundscapes"


def test_a_rerun_resumes_at_the_first_unfinished_round(stores, tmp_path):
    train, sound, val, truth = stores
    out = tmp_path / "st"
    self_train(train, sound, out, CONFIG, validation=(val, truth), rounds=1)
    stamp = {r: (out / f"round{r}" / "head.pt").stat().st_mtime_ns for r in (0, 1)}
    self_train(train, sound, out, CONFIG, validation=(val, truth), rounds=2)  # round 2 added, 0-1 reused
    assert {r: (out / f"round{r}" / "head.pt").stat().st_mtime_ns for r in (0, 1)} == stamp
    assert (out / "round2" / "card.json").exists()
    (out / "round1" / "card.json").unlink()  # killed before round 1's card was written: round 1 reruns
    stamp2 = (out / "round2" / "head.pt").stat().st_mtime_ns
    self_train(train, sound, out, CONFIG, validation=(val, truth), rounds=2)
    assert (out / "round0" / "head.pt").stat().st_mtime_ns == stamp[0]
    assert (out / "round1" / "head.pt").stat().st_mtime_ns != stamp[1]
    assert (out / "round2" / "head.pt").stat().st_mtime_ns == stamp2  # the same teacher (training is seeded)
    card = ModelCard.read(out / "round2" / "card.json")
    card.hyperparameters["selftrain"]["targets_sha256"] = "0" * 64  # as if round 1 had learnt otherwise
    (out / "round2" / "card.json").write_text(json.dumps(card.to_json()))
    self_train(train, sound, out, CONFIG, validation=(val, truth), rounds=2)
    assert (out / "round2" / "head.pt").stat().st_mtime_ns != stamp2  # another teacher: the student retrains
    self_train(train, sound, out, CONFIG, validation=(val, truth), rounds=1, power=3.0)  # other settings
    assert ModelCard.read(out / "round1" / "card.json").hyperparameters["selftrain"]["power"] == 3.0
    assert (out / "round0" / "head.pt").stat().st_mtime_ns == stamp[0]  # round 0 takes no power


def test_self_training_refuses_what_it_cannot_do(stores, tmp_path):
    train, sound, val, truth = stores
    with pytest.raises(OptionError, match="birdkit mix"):
        self_train(train, sound, tmp_path / "b", CONFIG, validation=None)  # type: ignore[arg-type]
    with pytest.raises(OptionError, match="--power"):
        self_train(train, sound, tmp_path / "c", CONFIG, validation=(val, truth), power=0)
    with pytest.raises(OptionError, match="--rounds"):
        self_train(train, sound, tmp_path / "a", CONFIG, validation=(val, truth), rounds=0)
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_cli_selftrain(stores, tmp_path, capsys):
    train, sound, val, truth = stores
    truth.to_csv(tmp_path / "truth.csv", index=False)
    argv = ["selftrain", str(train.root), "--soundscapes", str(sound.root), "--out", str(tmp_path / "m"),
            "--loss", "bce", "--epochs", "3", "--mixup", "0.3", "--folder-labels", "all", "--rounds", "1",
            "--power", "1.5", "--validation-store", str(val.root), "--validation-truth", str(tmp_path / "truth.csv")]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "round 1 (teacher: surrogate)" in printed and "<- chosen" in printed
    card = ModelCard.read(tmp_path / "m" / "card.json")
    assert card.metrics["selftrain"]["power"] == 1.5 and card.hyperparameters["mixup"] == 0.3
    assert main(argv[: argv.index("--validation-store")]) == 2
    assert "--validation-store" in capsys.readouterr().err
