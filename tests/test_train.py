"""Heads, the recording split, the fit loop, model folders, the sweep, and a head on real minicomp embeddings."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from birdkit import metrics
from birdkit.cli.main import main
from birdkit.errors import BirdkitError, OptionError
from birdkit.heads import model as heads
from birdkit.heads.card import ModelCard, TrainConfig
from birdkit.heads.fit import fit
from birdkit.heads.train import split_by_recording, train_head
from birdkit.store import EmbeddingStore, FileRows, load
from birdkit.store.labels import LabelSpec, label_store
from birdkit.store.meta import StoreMeta
from birdkit.workflows.sweep import plan, run_sweep

SPECIES = ["s0", "s1", "s2", "s3"]


def toy_store(root, n_files: int = 24, windows: int = 6, dim: int = 8, seed: int = 0):
    """Clips of four species: embeddings near a per-species centre; the surrogate hears the folder species in
    about two windows of three, and nothing else."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(len(SPECIES), dim)) * 3
    st = EmbeddingStore(root)
    st.open(
        StoreMeta(
            encoder={"name": "toy", "version": "1"}, embedding_dim=dim, species=SPECIES, split="train_audio"
        )
    )
    files = []
    for f in range(n_files):
        k = f % len(SPECIES)
        call = rng.random(windows) < 0.67
        emb = rng.normal(size=(windows, dim)) + np.where(call[:, None], centres[k], 0.0)
        logits = np.full((windows, len(SPECIES)), -6.0)
        logits[call, k] = 4.0
        stem = f"x{f}"
        rows = [f"{stem}_{5 * (i + 1)}" for i in range(windows)]
        files.append(FileRows(f"{SPECIES[k]}/{stem}.ogg", "train_audio", rows, emb, logits, SPECIES[k]))
    st.write_shard(files)
    return load(root)


# ------------------------------------------------------------------------------------------------ split


@pytest.mark.parametrize("seed", range(5))
def test_split_never_shares_a_recording(seed):
    files = np.repeat([f"f{i}" for i in range(37)], np.arange(37) % 5 + 1)
    train, val = split_by_recording(files, 0.2, seed)
    assert (train ^ val).all()
    assert not set(files[train]) & set(files[val])
    assert len(set(files[val])) == round(0.2 * 37)


def test_split_is_seeded():
    files = [f"f{i // 3}" for i in range(90)]
    a = split_by_recording(files, 0.2, 7)[1]
    assert (a == split_by_recording(files, 0.2, 7)[1]).all()
    assert (a != split_by_recording(files, 0.2, 8)[1]).any()


def test_split_edge_cases():
    train, val = split_by_recording(["only.ogg"] * 4, 0.2, 0)
    assert train.all() and not val.any()
    train, val = split_by_recording(["a", "b"], 0.01, 0)
    assert train.sum() == 1 and val.sum() == 1
    assert not split_by_recording(["a", "b", "c"], 0.0, 0)[1].any()


# ------------------------------------------------------------------------------------------------ heads


def test_heads_are_plain_sequential_layers_in_the_documented_order():
    lin = heads.build_head(heads.head_spec("linear", 16, 5))
    assert [type(m) for m in lin] == [nn.Linear]
    mlp = heads.build_head(heads.head_spec("mlp", 16, 5, hidden=64, dropout=0.25))
    assert [type(m) for m in mlp] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout, nn.Linear]
    assert (mlp[0].out_features, mlp[1].num_features, mlp[3].p, mlp[4].out_features) == (64, 64, 0.25, 5)
    mlp.eval()
    assert mlp(torch.zeros(3, 16)).shape == (3, 5)
    assert heads.head_spec("linear", 16, 5, hidden=64, dropout=0.5)["hidden"] is None
    with pytest.raises(OptionError, match="unknown head"):
        heads.head_spec("transformer", 16, 5)


def test_fit_is_reproducible_and_learns_separable_data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 10)).astype(np.float32)
    y = np.stack([x[:, 0] > 0.5, x[:, 1] < -0.5, x[:, 2] + x[:, 3] > 1], axis=1)
    config = TrainConfig(
        loss="asl",
        head="mlp",
        hidden=64,
        dropout=0.1,
        epochs=8,
        batch_size=32,
        lr=5e-3,
        seed=3,
        monitor="roc_auc",
    )
    r1 = fit(x[:300], y[:300], x[300:], y[300:], config, progress=False)
    r2 = fit(x[:300], y[:300], x[300:], y[300:], config, progress=False)
    assert [type(m) for m in r1.head] == [nn.Linear, nn.BatchNorm1d, nn.ReLU, nn.Dropout, nn.Linear]
    for a, b in zip(r1.head.state_dict().values(), r2.head.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    auc = metrics.competition_score(y[300:], heads.predict_logits(r1.head, x[300:]))
    assert auc > 0.95
    assert not r1.head.training


def test_early_stopping_keeps_the_best_epoch():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = np.stack([x[:, 0] > 0, x[:, 1] > 0], axis=1)
    # labels of validation flipped: the better the head fits training, the worse validation gets
    config = TrainConfig(loss="bce", head="linear", epochs=30, batch_size=16, lr=0.05, patience=3)
    r = fit(x[:200], y[:200], x[200:], ~y[200:], config, progress=False)
    assert len(r.history) == r.best_epoch + 3 < 30
    best_val = max(h["val_roc_auc"] for h in r.history)
    assert r.history[r.best_epoch - 1]["val_roc_auc"] == best_val
    got = metrics.competition_score(~y[200:], heads.predict_logits(r.head, x[200:]))
    assert got == pytest.approx(best_val, abs=1e-9)


# ------------------------------------------------------------------------------------------ model folder


def test_train_head_writes_the_model_folder_contract(tmp_path):
    emb = toy_store(tmp_path / "emb")
    label_store(emb, LabelSpec(folder="call"))
    config = TrainConfig(loss="asl", epochs=30, lr=1e-2, seed=1)
    card = train_head(tmp_path / "emb", tmp_path / "models" / "toy", config, progress=False)
    folder = tmp_path / "models" / "toy"
    written = json.loads((folder / "card.json").read_text())
    assert written == card.to_json()
    for key in ("name", "species", "encoder", "embedding_dim", "head", "loss", "labels", "hyperparameters"):
        assert key in written
    assert written["format"] == 2
    assert card.name == "toy" and card.species == SPECIES and card.seed == 1
    assert card.encoder == {"name": "toy", "version": "1"} and card.encoder_name == "toy"
    assert card.head == {"kind": "linear", "in_dim": 8, "hidden": None, "dropout": 0.0, "out_dim": 4}
    assert card.loss == {"name": "asl", "gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05}
    assert card.labels["source"] == "labels.parquet" and card.labels["folder"] == "call"
    assert card.data_fingerprint.startswith("sha256:") and card.created_by.startswith("birdkit ")
    val = card.metrics["val"]
    assert val["roc_auc"] > 0.9 and 0 <= val["f1"] <= 1 and val["recordings"] == 5
    assert card.metrics["train"]["recordings"] == 19
    table = pd.read_csv(folder / "per_species_val.csv")
    assert table["species"].tolist() == SPECIES
    head, card2 = heads.load_head(folder)
    assert isinstance(card2, ModelCard) and card2 == card and not head.training
    x = load(tmp_path / "emb").embeddings[:5]
    state = torch.load(folder / "head.pt", weights_only=True)
    assert set(state) == {"0.weight", "0.bias"}
    expected = x @ state["0.weight"].numpy().T + state["0.bias"].numpy()
    np.testing.assert_allclose(heads.predict_logits(head, x), expected, rtol=1e-5, atol=1e-5)


def test_fingerprint_follows_the_data_and_labels(tmp_path):
    toy_store(tmp_path / "emb")
    none, weak = (
        TrainConfig(epochs=1, labels=LabelSpec(folder="none")),
        TrainConfig(epochs=1, labels=LabelSpec(folder="all")),
    )
    a = train_head(tmp_path / "emb", tmp_path / "m1", none, progress=False)
    b = train_head(tmp_path / "emb", tmp_path / "m2", none, progress=False)
    c = train_head(tmp_path / "emb", tmp_path / "m3", weak, progress=False)
    assert a.data_fingerprint == b.data_fingerprint != c.data_fingerprint
    assert a.labels["source"] == "computed"


def test_load_head_names_the_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="card.json: missing") as err:
        heads.load_head(tmp_path)
    assert isinstance(err.value, BirdkitError) and "birdkit train" in str(err.value)


def test_cli_train_mlp_with_loss_params(tmp_path, capsys):
    toy_store(tmp_path / "emb")
    out = tmp_path / "models" / "mlp"
    argv = ["train", str(tmp_path / "emb"), "--out", str(out), "--loss", "sigmoidf1", "--param", "S=-1",
            "--param", "on=probability", "--head", "mlp", "--hidden", "64", "--folder-labels", "all", "--epochs", "3"]  # fmt: skip
    assert main(argv) == 0
    card = json.loads((out / "card.json").read_text())
    assert card["loss"] == {"name": "sigmoidf1", "S": -1.0, "E": 0.0, "on": "probability"}
    assert card["head"]["hidden"] == 64 and card["labels"]["folder"] == "all"
    assert "val: ROC-AUC" in capsys.readouterr().out
    assert main(["train", str(tmp_path / "emb"), "--out", str(out), "--param", "gamma=2"]) == 2
    assert "no parameter 'gamma'" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ sweep


def test_sweep_plan_follows_the_papers_grids():
    runs = plan(["loss", "asl", "sigmoidf1", "encoders"], n_stores=2)
    assert len([r for r in runs if "loss" in r.grids]) == 4
    assert len([r for r in runs if "asl" in r.grids]) == 12
    assert all(r.head == "mlp" and r.hidden == 256 for r in runs if "asl" in r.grids)
    assert len([r for r in runs if "sigmoidf1" in r.grids]) == 12
    assert len([r for r in runs if "encoders" in r.grids]) == 12
    # BCE/ASL linear on store 0 and sigmoidF1 at its defaults appear in two grids but run once
    assert len(runs) == 4 + 12 + 12 + 12 - 6
    assert len({r.key() for r in runs}) == len(runs)


def test_sweep_writes_one_results_table(tmp_path):
    toy_store(tmp_path / "emb")
    test_store = toy_store(tmp_path / "test", n_files=4, seed=5)
    truth = pd.DataFrame(
        {"row_id": test_store.frame["row_id"], "labels": [p for p in test_store.frame["primary_label"]]}
    )
    df = run_sweep(
        [tmp_path / "emb"], tmp_path / "sweep", grids=["loss"], tests=[tmp_path / "test"], truth=truth,
        config=TrainConfig(epochs=3), progress=False, max_runs=3,
    )  # fmt: skip
    assert len(df) == 3
    assert df["labels"].tolist() == ["y_hat", "y_hat", "y_species"]
    assert df["test_roc_auc"].between(0, 1).all()
    csv = pd.read_csv(tmp_path / "sweep" / "results.csv")
    assert csv["name"].tolist() == df["name"].tolist()
    md = (tmp_path / "sweep" / "results.md").read_text()
    assert "| Grid | Encoder | Head | Loss |" in md and md.count("\n| loss |") == 3
    assert all((tmp_path / "sweep" / "models" / n / "card.json").exists() for n in df["name"])


# ----------------------------------------------------------------------------------------- real minicomp


@pytest.mark.shared
def test_head_on_minicomp_embeddings_beats_chance(minicomp_train_store, tmp_path):
    config = TrainConfig(loss="asl", labels=LabelSpec(folder="call"), seed=0)
    card = train_head(minicomp_train_store, tmp_path / "m", config, progress=False)
    val = card.metrics["val"]
    table = pd.read_csv(tmp_path / "m" / "per_species_val.csv")
    # about half the validation species have no training positive (54 species, 124 clips): those sit at chance,
    # the ones the head has seen are nearly perfect
    emb = load(minicomp_train_store)
    train, _ = split_by_recording(emb.frame["file"], 0.2, 0)
    seen = set(emb.frame.loc[train, "primary_label"])
    seen_auc = table[table["species"].isin(seen) & table["roc_auc"].notna()]["roc_auc"]
    assert val["scored_species"] >= 8
    assert val["roc_auc"] > 0.65
    assert len(seen_auc) >= 4 and seen_auc.mean() > 0.9


# ------------------------------------------------------------------------------------- refusals (issue 11/12)


def test_no_positive_label_is_refused_with_the_reason(tmp_path):
    from dataclasses import replace

    emb = toy_store(tmp_path / "emb")
    emb = replace(emb, logits=np.full_like(emb.logits, -10.0))  # the surrogate hears nothing
    config = TrainConfig(epochs=1, labels=LabelSpec(folder="none"))
    with pytest.raises(BirdkitError, match="no positive label"):
        train_head(emb, tmp_path / "m", config, progress=False)
    assert not (tmp_path / "m" / "card.json").exists()


def test_a_test_store_of_another_dimension_fails_before_training(tmp_path):
    emb = toy_store(tmp_path / "emb")
    other = toy_store(tmp_path / "other", dim=5)
    truth = pd.DataFrame({"row_id": other.frame["row_id"], "labels": ""})
    with pytest.raises(BirdkitError, match="5-d embeddings"):
        train_head(emb, tmp_path / "m", TrainConfig(epochs=1), test=(other, truth), progress=False)
    assert not (tmp_path / "m").exists()


def test_excluded_recordings_are_neither_trained_nor_validated_on(tmp_path):
    emb = toy_store(tmp_path / "emb")
    files = sorted(set(emb.frame["file"]))
    card = train_head(
        emb, tmp_path / "m", TrainConfig(epochs=1), progress=False, exclude_files=set(files[:6])
    )
    windows = card.metrics["train"]["windows"] + card.metrics["val"]["windows"]
    assert windows == len(emb) - 6 * 6


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--param", "gamma_pos=abc"], "--param gamma_pos='abc'"),
        (["--threads", "-2"], "--threads -2: must be 1 or more"),
        (["--threads", "0"], "--threads 0: must be 1 or more"),
        (["--batch-size", "0"], "--batch-size 0: must be 1 or more"),
        (["--epochs", "0"], "--epochs 0: must be 1 or more"),
    ],
)
def test_bad_train_and_sweep_options_are_refused(tmp_path, capsys, argv, message):
    toy_store(tmp_path / "emb")
    cmds = [["train", str(tmp_path / "emb"), "--out", str(tmp_path / "m")]]
    if argv[0] != "--param":  # the sweep sets the loss and its parameters itself
        cmds.append(["sweep", str(tmp_path / "emb"), "--out", str(tmp_path / "m")])
    for cmd in cmds:
        assert main([*cmd, *argv]) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_cli_train_validates_on_labelled_soundscapes(tmp_path, capsys):
    emb = toy_store(tmp_path / "emb")
    val = toy_store(tmp_path / "val", n_files=8, seed=1)
    truth = pd.DataFrame({"row_id": val.frame["row_id"], "labels": val.frame["file"].str.split("/").str[0]})
    truth.to_csv(tmp_path / "truth.csv", index=False)
    argv = ["train", str(emb.root), "--out", str(tmp_path / "m"), "--epochs", "3", "--validation-store",
            str(tmp_path / "val"), "--validation-truth", str(tmp_path / "truth.csv")]  # fmt: skip
    assert main(argv) == 0
    card = ModelCard.read(tmp_path / "m" / "card.json")
    assert card.metrics["val"]["set"] == "labelled soundscapes" and card.metrics["val"]["windows"] == len(val)
    assert card.metrics["train"]["windows"] == len(emb)  # every clip trains: the soundscapes validate
    assert main([*argv[:3], str(tmp_path / "m2"), "--validation-store", str(tmp_path / "val")]) == 2
    assert "--validation-truth" in capsys.readouterr().err
