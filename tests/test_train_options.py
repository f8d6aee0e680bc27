"""Training options (issue 12): label smoothing, mixup, feature noise, weak negatives, class-balanced sampling,
soft targets; their validation, the CLI switches, and the card."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from birdkit.cli.main import main
from birdkit.errors import OptionError
from birdkit.heads import losses
from birdkit.heads import model as heads
from birdkit.heads.card import ModelCard, TrainConfig
from birdkit.heads.fit import Batch, augment, balanced_draw, fit
from birdkit.heads.targets import SOUNDSCAPE_GROUP, sample_groups, soft_targets, weak_negative_weights
from birdkit.heads.train import train_head
from tests.test_train import SPECIES, toy_store

BCE = {"loss": "bce", "head": "linear", "batch_size": 16}


def _data(n: int = 64, dim: int = 6, s: int = 3, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype(np.float32)
    y = (rng.random((n, s)) < 0.3).astype(np.float32)
    return x, y


def _first_epoch_loss(x, y, config: TrainConfig, **kw) -> float:
    """The first epoch's mean training loss at a learning rate too small to move the weights: the loss of the
    initial head on the targets as the loop feeds them."""
    return fit(x, y, None, None, config, progress=False, **kw).history[0]["train_loss"]


def _initial_logits(config: TrainConfig, x: np.ndarray, out_dim: int) -> torch.Tensor:
    torch.manual_seed(config.seed)
    head = heads.build_head(heads.head_spec(config.head, x.shape[1], out_dim))
    with torch.no_grad():
        return head(torch.from_numpy(x))


def test_label_smoothing_feeds_the_loss_exactly_the_smoothed_targets():
    x, y = _data()
    config = TrainConfig(**BCE, epochs=1, lr=1e-12, label_smoothing=0.2)
    logits = _initial_logits(config, x, y.shape[1])
    expected = F.binary_cross_entropy_with_logits(logits, torch.from_numpy(y * 0.8 + 0.1)).item()
    assert _first_epoch_loss(x, y, config) == pytest.approx(expected, rel=1e-5)
    plain = F.binary_cross_entropy_with_logits(logits, torch.from_numpy(y)).item()
    assert abs(expected - plain) > 1e-3  # the check could fail: smoothing moves the loss


def test_soft_targets_reach_the_loss_unchanged():
    x, _ = _data()
    y = np.random.default_rng(1).random((len(x), 3)).astype(np.float32)  # soft pseudo-labels
    config = TrainConfig(**BCE, epochs=1, lr=1e-12)
    logits = _initial_logits(config, x, 3)
    expected = F.binary_cross_entropy_with_logits(logits, torch.from_numpy(y)).item()
    assert _first_epoch_loss(x, y, config) == pytest.approx(expected, rel=1e-5)
    focal = losses.build_loss("focal")  # focal's p_t generalises to soft targets: its minimum is at p = y
    t = torch.tensor([[0.3]])
    grads = []
    for v in (-1.0, float(np.log(0.3 / 0.7)), 1.0):
        z = torch.tensor([[v]], requires_grad=True)
        focal(z, t).backward()
        grads.append(float(z.grad))
    assert grads[0] < 0 < grads[2] and abs(grads[1]) < 1e-6


@pytest.mark.parametrize("soft", [True, False])
def test_asl_in_the_fit_loop_reads_soft_targets_as_soft(soft):
    from tests.test_losses import asl_reference

    x, y = _data()
    if soft:
        y = np.random.default_rng(2).random(y.shape).astype(np.float32)
    config = TrainConfig(loss="asl", head="linear", batch_size=16, epochs=1, lr=1e-12)
    logits = _initial_logits(config, x, y.shape[1])
    expected = asl_reference(logits, torch.from_numpy(y), 1.0, 4.0, 0.05).item()
    assert _first_epoch_loss(x, y, config) == pytest.approx(expected, rel=1e-4)


def test_weak_negative_weights_follow_the_definition():
    frame = pd.DataFrame({"primary_label": ["s0", "s1", None]})
    y = np.array([[1, 0, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0]], dtype=np.float32)
    w = weak_negative_weights(y, frame, SPECIES, 0.25)
    expected = np.array(
        [
            [1, 0.25, 0.25, 1],  # s0's clip: the other species' zeros are weak, its positives count fully
            [0.25, 1, 1, 0.25],  # s1's clip: its own 0 (no call heard, eq. 4) counts fully
            [1, 1, 1, 1],  # a soundscape row: every cell counts
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(w, expected)
    assert (weak_negative_weights(y, frame, SPECIES, 1.0) == 1).all()


def test_weight_zero_cells_give_no_gradient_in_every_weighted_loss():
    torch.manual_seed(0)
    z = torch.randn(8, 4)
    y = (torch.rand(8, 4) < 0.3).float()
    w = torch.where(y > 0, 1.0, 0.0)  # weak negatives at weight 0
    for name in ("bce", "asl", "focal", "sigmoidf1"):
        loss = losses.build_loss(name)
        zz = z.clone().requires_grad_(True)
        loss(zz, y, w).backward()
        assert zz.grad is not None and (zz.grad[y == 0] == 0).all(), name
        assert (zz.grad[y > 0] != 0).any(), name


@pytest.mark.parametrize(("gp", "gn", "clip"), [(1, 4, 0.05), (0, 0, 0), (2, 1, 0.2), (0.5, 0.5, 0.1)])
def test_asl_takes_soft_targets_and_weights_by_autograd(gp, gn, clip):
    from tests.test_losses import asl_reference

    torch.manual_seed(1)
    z = torch.randn(16, 5) * 3
    hard = (torch.rand(16, 5) < 0.3).float()
    soft = torch.rand(16, 5)
    loss = losses.AsymmetricLoss(gp, gn, clip)
    fast = loss(z, hard)  # the closed form
    torch.testing.assert_close(losses.asl_weighted(z, hard, gp, gn, clip), fast, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(loss(z, soft), asl_reference(z, soft, gp, gn, clip), rtol=1e-5, atol=1e-6)
    w = torch.rand(16, 5)
    zz = z.clone().requires_grad_(True)
    loss(zz, hard, w).backward()
    assert torch.isfinite(zz.grad).all()


def test_weights_reach_the_fit_loop():
    x, y = _data()
    config = TrainConfig(**BCE, epochs=3, lr=0.1)
    start = fit(x, y, None, None, TrainConfig(**BCE, epochs=1, lr=1e-12), progress=False).head.state_dict()
    frozen = fit(x, y, None, None, config, progress=False, weight=np.zeros_like(y)).head.state_dict()
    moved = fit(x, y, None, None, config, progress=False).head.state_dict()
    for k in start:
        assert torch.allclose(frozen[k], start[k], atol=1e-6)  # all weights 0: nothing to learn from
    assert not torch.allclose(moved["0.weight"], start["0.weight"], atol=1e-3)


def test_mixup_mixes_every_tensor_with_one_lambda_and_one_partner():
    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.random((32, 3)).astype(np.float32))
    batch = Batch(x=y.clone(), y=y, w=y * 3, b=y * 2)
    out = augment(batch, TrainConfig(**BCE, mixup=0.4), np.random.default_rng(5), None)
    assert not torch.allclose(out.y, y)
    torch.testing.assert_close(out.x, out.y)
    torch.testing.assert_close(out.w, out.y * 3)
    torch.testing.assert_close(out.b, out.y * 2)  # the residual base follows its embeddings
    off = augment(batch, TrainConfig(**BCE), np.random.default_rng(5), None)
    assert off.x is batch.x and off.y is batch.y and off.b is batch.b


def test_feature_noise_is_in_std_units_and_leaves_targets_alone():
    x = torch.zeros(20000, 2)
    y = torch.ones(20000, 1)
    std = torch.tensor([[1.0, 10.0]])
    out = augment(
        Batch(x, y, None, None), TrainConfig(**BCE, feature_noise=0.5), np.random.default_rng(0), std
    )
    np.testing.assert_allclose(out.x.std(dim=0).numpy(), [0.5, 5.0], rtol=0.03)
    assert torch.equal(out.y, y)


def test_balanced_draw_gives_each_group_an_equal_share():
    groups = np.array(["a"] * 90 + ["b"] * 9 + [SOUNDSCAPE_GROUP])
    counts = pd.Series(
        groups[np.concatenate([balanced_draw(groups, np.random.default_rng(s)) for s in range(60)])]
    )
    share = counts.value_counts(normalize=True)
    for g in ("a", "b", SOUNDSCAPE_GROUP):
        assert share[g] == pytest.approx(1 / 3, abs=0.03)
    frame = pd.DataFrame({"primary_label": ["a", None, "b"]})
    assert sample_groups(frame).tolist() == ["a", SOUNDSCAPE_GROUP, "b"]


def test_soft_targets_power_transform():
    logits = np.array([[0.0, np.log(3.0), -np.inf, np.nan]])
    np.testing.assert_allclose(soft_targets(logits, 2.0), [[0.25, 0.5625, 0.0, 0.0]], rtol=1e-6)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"label_smoothing": 0.5, "loss": "bce"}, "--label-smoothing"),
        ({"mixup": -1.0, "loss": "bce"}, "--mixup"),
        ({"weak_negatives": 1.5, "loss": "bce"}, "--weak-negatives"),
        ({"feature_noise": -0.1, "loss": "bce"}, "--feature-noise"),
    ],
)
def test_bad_option_values_are_refused(changes, message):
    with pytest.raises(OptionError, match=message):
        TrainConfig(**changes)


def test_options_off_by_default_and_old_cards_load():
    c = TrainConfig()
    assert (c.label_smoothing, c.mixup, c.feature_noise, c.weak_negatives, c.balanced) == (
        0,
        0,
        0,
        1.0,
        False,
    )
    old = {k: v for k, v in TrainConfig(loss="bce").to_json().items() if k not in ("mixup", "balanced")}
    assert TrainConfig.from_json(old) == TrainConfig(loss="bce")


def test_cli_switches_reach_the_card_and_a_weak_negative_head_trains(tmp_path, capsys):
    toy_store(tmp_path / "emb")
    argv = ["train", str(tmp_path / "emb"), "--out", str(tmp_path / "m"), "--loss", "bce", "--epochs", "10", "--lr", "0.05",
            "--label-smoothing", "0.1", "--mixup", "0.3", "--weak-negatives", "0.2", "--balanced",
            "--feature-noise", "0.05", "--folder-labels", "all"]  # fmt: skip
    assert main(argv) == 0
    card = ModelCard.read(tmp_path / "m" / "card.json")
    hp = card.hyperparameters
    assert (hp["label_smoothing"], hp["mixup"], hp["weak_negatives"], hp["balanced"], hp["feature_noise"]) == (
        0.1, 0.3, 0.2, True, 0.05)  # fmt: skip
    assert card.metrics["val"]["roc_auc"] > 0.8
    assert TrainConfig.from_json(hp).balanced is True
    assert main([*argv[:3], str(tmp_path / "m2"), "--mixup", "-1"]) == 2
    assert "--mixup -1.0: must be 0 (off) or more" in capsys.readouterr().err


def test_train_head_with_every_option_is_reproducible(tmp_path):
    emb = toy_store(tmp_path / "emb")
    config = TrainConfig(**BCE, epochs=3, mixup=0.4, label_smoothing=0.1, weak_negatives=0.3, balanced=True,
                         feature_noise=0.1, seed=2)  # fmt: skip
    a = train_head(emb, tmp_path / "a", config, progress=False)
    b = train_head(emb, tmp_path / "b", config, progress=False)
    assert (tmp_path / "a" / "head.pt").read_bytes() == (tmp_path / "b" / "head.pt").read_bytes()
    assert a.metrics["history"] == b.metrics["history"]
