"""The typed training records: TrainConfig as the one hyperparameter list (CLI, sweep, card), ModelCard on disk
(old dict cards included), and the errors a user can fix."""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

import pytest
import torch
from test_train import SPECIES, toy_store

from birdkit.cli.main import build_parser, main
from birdkit.cli.train import add_config_options, config_from_args
from birdkit.errors import BirdkitError, OptionError
from birdkit.heads import model as heads
from birdkit.heads.card import ModelCard, ModelError, TrainConfig
from birdkit.heads.train import train_head
from birdkit.store.labels import LabelSpec
from birdkit.workflows.sweep import plan, run_sweep

# A card as `birdkit train` wrote it before cards had a schema version (main at 774c890).
OLD_CARD = {
    "name": "old",
    "species": SPECIES,
    "encoder": {"name": "birdnet", "version": "2.4", "windows": "paper"},
    "embedding_dim": 8,
    "head": {"kind": "linear", "in_dim": 8, "hidden": None, "dropout": 0.0, "out_dim": 4},
    "loss": {"name": "asl", "gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05},
    "labels": {"threshold": 0.5, "folder": "call", "secondary": False, "source": "labels.parquet"},
    "hyperparameters": {
        "optimizer": "adam", "lr": 0.002, "weight_decay": 0.0, "batch_size": 32, "threads": 1, "epochs": 20,
        "patience": 5, "monitor": "roc_auc", "val_fraction": 0.2, "split": "by recording", "init": "random",
    },
    "metrics": {"best_epoch": 3, "epochs_run": 8, "val": {"roc_auc": None, "f1": 0.5}},
    "data_fingerprint": "sha256:00",
    "training_store": {"name": "emb", "path": "/somewhere/emb", "split": "train_audio", "windows": 10},
    "seed": 0,
    "created_by": "birdkit 0.1.0",
    "notes": "a key this birdkit does not know",
}  # fmt: skip


def write_model(folder, card: dict) -> torch.nn.Module:
    folder.mkdir(parents=True)
    head = heads.build_head(card["head"])
    torch.save(head.state_dict(), folder / heads.WEIGHTS)
    (folder / "card.json").write_text(json.dumps(card))
    return head


# ------------------------------------------------------------------------------------------------- cards


def test_an_old_dict_card_still_loads(tmp_path):
    written = write_model(tmp_path / "old", OLD_CARD)
    head, card = heads.load_head(tmp_path / "old")
    assert torch.equal(head[0].weight, written[0].weight) and not head.training
    assert card.format == 1 and card.encoder_name == "birdnet" and card.species == SPECIES
    assert card.hyperparameters["init"] == "random" and card.metrics["best_epoch"] == 3
    assert card.output_kind == "logits" and card.tflite is None
    assert card.extra == {"notes": "a key this birdkit does not know"}
    # written back, it keeps every key it came with
    again = card.to_json()
    assert (again.pop("format"), again.pop("output"), again.pop("tflite")) == (1, "logits", None)
    assert again == OLD_CARD


def test_an_old_card_with_a_bare_encoder_name(tmp_path):
    write_model(tmp_path / "old", {**OLD_CARD, "encoder": "birdnet"})
    _, card = heads.load_head(tmp_path / "old")
    assert card.encoder == {"name": "birdnet"} and card.encoder_name == "birdnet"


def test_weights_that_do_not_fit_the_card_name_both_files(tmp_path):
    write_model(tmp_path / "m", OLD_CARD)
    (tmp_path / "m" / "card.json").write_text(
        json.dumps({**OLD_CARD, "head": {**OLD_CARD["head"], "out_dim": 5}})
    )
    with pytest.raises(
        ModelError, match=r"(?s)head\.pt: does not fit the head in .*card\.json.*train it again"
    ):
        heads.load_head(tmp_path / "m")
    (tmp_path / "m" / "card.json").write_text(json.dumps({**OLD_CARD, "head": {"kind": "transformer"}}))
    with pytest.raises(ModelError, match="card.json: head kind 'transformer'"):
        heads.load_head(tmp_path / "m")


def test_the_card_records_the_config_that_reproduces_the_head(tmp_path):
    toy_store(tmp_path / "emb")
    config = TrainConfig(loss="focal", loss_params={"gamma": 1.0}, epochs=3, lr=1e-2, seed=4, labels=LabelSpec(folder="all"))  # fmt: skip
    card = train_head(tmp_path / "emb", tmp_path / "a", config, progress=False)
    again = TrainConfig.from_json(card.hyperparameters)
    assert again.labels == config.labels and again.loss_params == {"gamma": 1.0} and again.seed == 4
    assert card.hyperparameters["batch_size"] == 32 and again.batch_size == 32  # what auto-sizing chose
    assert card.hyperparameters["optimizer"] == "adam" and card.loss == {
        "name": "focal",
        "gamma": 1.0,
        "alpha": -1.0,
    }
    train_head(tmp_path / "emb", tmp_path / "b", again, progress=False)
    a = torch.load(tmp_path / "a" / heads.WEIGHTS, weights_only=True)
    b = torch.load(tmp_path / "b" / heads.WEIGHTS, weights_only=True)
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------ config and CLI


def _parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_config_options(p, "model")
    add_config_options(p, "training")
    return p.parse_args(list(argv))


def test_every_config_field_is_a_cli_option_and_defaults_live_in_the_config():
    sub = build_parser()._subparsers._group_actions[0].choices
    train_opts = {a.dest for a in sub["train"]._actions}
    sweep_opts = {a.dest for a in sub["sweep"]._actions}
    names = {f.name for f in fields(TrainConfig)}
    assert names - {"labels"} <= train_opts  # labels come from the `birdkit label` options
    assert {"threshold", "folder_labels", "secondary_labels"} <= train_opts
    training = {f.name for f in fields(TrainConfig) if f.metadata["group"] == "training"}
    assert training <= sweep_opts and not ({"loss", "head", "hidden", "init"} & sweep_opts)
    assert config_from_args(_parse()) == TrainConfig()


def test_cli_options_become_the_config():
    args = _parse("--epochs", "3", "--lr", "0.01", "--param", "gamma_neg=2", "--param", "clip=0", "--hidden", "64",
                  "--head", "mlp", "--batch-size", "16", "--monitor", "f1")  # fmt: skip
    want = TrainConfig(epochs=3, lr=0.01, loss_params={"gamma_neg": 2.0, "clip": 0.0}, hidden=64, head="mlp",
                       batch_size=16, monitor="f1")  # fmt: skip
    assert config_from_args(args) == want
    with pytest.raises(OptionError, match="expected KEY=VALUE"):
        config_from_args(_parse("--param", "gamma_neg"))


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dropout", "1.5"], "--dropout 1.5: must lie in [0, 1)"),
        (["--lr", "-1"], "--lr -1.0: must be a positive number"),
        (["--param", "gamma_neg=many"], "--param gamma_neg='many': loss asl takes a number"),
        (["--loss", "sigmoidf1", "--param", "S=0"], "--param S=0: sigmoidF1 needs S != 0"),
        (["--init", "birdnet"], "--init birdnet needs a linear head on a BirdNET store"),
        (["--val-fraction", "1"], "--val-fraction 1.0: must lie in [0, 1)"),
    ],
)
def test_bad_training_options_name_the_option_without_a_traceback(tmp_path, capsys, argv, message):
    toy_store(tmp_path / "emb")
    out = tmp_path / "m"
    assert main(["train", str(tmp_path / "emb"), "--out", str(out), "--epochs", "1", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("birdkit train: error: ") and message in err and "Traceback" not in err
    assert not (out / "card.json").exists()


def test_sweep_runs_build_their_config_on_the_shared_one(tmp_path):
    base = TrainConfig(epochs=2, lr=5e-3, seed=9, patience=0)
    run = next(r for r in plan(["asl"], 1, ["all"]) if r.params == {"gamma_pos": 0.0, "gamma_neg": 0.0})
    config = run.train_config(base)
    assert (config.head, config.hidden, config.loss, config.labels) == (
        "mlp",
        256,
        "asl",
        LabelSpec(folder="all"),
    )
    assert (config.epochs, config.lr, config.seed, config.patience) == (2, 5e-3, 9, 0)
    toy_store(tmp_path / "emb")
    df = run_sweep(
        [tmp_path / "emb"], tmp_path / "sweep", base, grids=["loss"], label_modes=["none"], progress=False
    )
    card = ModelCard.read(tmp_path / "sweep" / "models" / df["name"][0] / "card.json")
    assert card.hyperparameters["epochs"] == 2 and card.hyperparameters["seed"] == 9
    assert df["encoder"].tolist() == ["toy", "toy"]


def test_sweep_rejects_unknown_grids_and_label_modes(tmp_path):
    with pytest.raises(OptionError, match="--label-modes 'weak'"):
        plan(["loss"], 1, ["weak"])
    with pytest.raises(OptionError, match="--grids 'tables'"):
        plan(["tables"], 1)
    with pytest.raises(BirdkitError, match="at least one embedding store"):
        run_sweep([], tmp_path / "sweep")
    assert not (tmp_path / "sweep").exists()
