"""Each loss against a hand computation (plain Python math), with gradients flowing."""

from __future__ import annotations

import math

import pytest
import torch

from birdkit.errors import OptionError
from birdkit.heads.losses import (
    AsymmetricLoss,
    BCELoss,
    FocalLoss,
    SigmoidF1Loss,
    build_loss,
    loss_params,
)

LOGITS = [[2.0, -1.0, 0.5], [-0.3, -3.0, 1.5]]
TARGET = [[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]]


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def cells():
    for i in range(2):
        for j in range(3):
            yield LOGITS[i][j], TARGET[i][j]


def t(x):
    return torch.tensor(x, dtype=torch.float32)


def test_bce_by_hand():
    hand = -sum(y * math.log(sig(u)) + (1 - y) * math.log(1 - sig(u)) for u, y in cells()) / 6
    assert BCELoss()(t(LOGITS), t(TARGET)).item() == pytest.approx(hand, rel=1e-6)


@pytest.mark.parametrize("gp, gn, clip", [(1.0, 4.0, 0.05), (0.0, 2.0, 0.0), (2.0, 1.0, 0.2)])
def test_asl_by_hand(gp, gn, clip):
    total = 0.0
    for u, y in cells():
        p = sig(u)
        pm = max(p - clip, 0.0)
        total += y * (1 - p) ** gp * math.log(p) + (1 - y) * pm**gn * math.log(1 - pm)
    hand = -total / 6  # mean over windows and species
    got = AsymmetricLoss(gp, gn, clip)(t(LOGITS), t(TARGET)).item()
    assert got == pytest.approx(hand, rel=1e-5)


def asl_reference(x: torch.Tensor, y: torch.Tensor, gp: float, gn: float, clip: float) -> torch.Tensor:
    """ASL written plainly, for autograd to differentiate: the check on the closed-form gradient."""
    p = torch.sigmoid(x)
    pm = (p - clip).clamp(min=0)
    pos = (1 - p) ** gp * torch.log(p.clamp(min=1e-30))
    neg = pm**gn * torch.log((1 - pm).clamp(min=1e-30))
    return -(y * pos + (1 - y) * neg).mean()


@pytest.mark.parametrize(
    "gp, gn, clip", [(1, 4, 0.05), (0, 0, 0), (0, 2, 0), (1, 4, 0), (2, 1, 0.2), (0.5, 0.5, 0.1)]
)
def test_asl_gradient_matches_autograd(gp, gn, clip):
    g = torch.Generator().manual_seed(0)
    x = (torch.randn(40, 9, generator=g, dtype=torch.float64) * 4).requires_grad_()
    y = (torch.rand(40, 9, generator=g) < 0.3).double()
    AsymmetricLoss(gp, gn, clip)(x, y).backward()
    ours = x.grad.clone()
    x.grad = None
    asl_reference(x, y, gp, gn, clip).backward()
    torch.testing.assert_close(ours, x.grad, rtol=1e-6, atol=1e-12)
    small = x.detach()[:4, :5].clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda t: AsymmetricLoss(gp, gn, clip)(t, y[:4, :5]), (small,))


@pytest.mark.parametrize("fill", [0.0, 1.0])
def test_asl_batches_with_no_positive_or_only_positives(fill):
    x = torch.linspace(-6, 6, 24, dtype=torch.float64).reshape(4, 6).requires_grad_()
    y = torch.full((4, 6), fill, dtype=torch.float64)
    loss = AsymmetricLoss()(x, y)
    loss.backward()
    ours = x.grad.clone()
    x.grad = None
    ref = asl_reference(x, y, 1.0, 4.0, 0.05)
    ref.backward()
    assert loss.item() == pytest.approx(ref.item(), rel=1e-9)
    torch.testing.assert_close(ours, x.grad)


def test_asl_with_no_focusing_and_no_clip_is_bce():
    x, y = torch.randn(50, 7, generator=torch.Generator().manual_seed(0)), (torch.rand(50, 7) > 0.8).float()
    assert AsymmetricLoss(0, 0, 0)(x, y).item() == pytest.approx(BCELoss()(x, y).item(), rel=1e-5)


def test_asl_scale_does_not_depend_on_batch_size():
    x, y = t(LOGITS), t(TARGET)
    loss = AsymmetricLoss()
    assert loss(torch.cat([x] * 10), torch.cat([y] * 10)).item() == pytest.approx(loss(x, y).item(), rel=1e-6)


def test_asl_clip_discards_easy_negatives_entirely():
    x = torch.tensor([[-4.0, 3.0]], requires_grad=True)  # p = 0.018 < clip; p = 0.95
    loss = AsymmetricLoss(gamma_pos=1, gamma_neg=4, clip=0.05)(x, torch.tensor([[0.0, 0.0]]))
    loss.backward()
    assert x.grad[0, 0].item() == 0.0  # below the clip: no loss, no gradient
    assert x.grad[0, 1].item() > 0  # a confident false positive is pushed down


def test_asl_is_finite_for_extreme_logits():
    x = torch.tensor([[200.0, -200.0]], requires_grad=True)
    loss = AsymmetricLoss(0, 0, 0)(x, torch.tensor([[0.0, 1.0]]))
    loss.backward()
    assert math.isfinite(loss.item()) and loss.item() == pytest.approx(200.0, rel=1e-3)
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize(
    "S, E, on", [(-30.0, 0.0, "logits"), (-1.0, 1.0, "logits"), (-15.0, 0.0, "probability")]
)
def test_sigmoidf1_by_hand(S, E, on):
    f1s = []
    for j in range(3):
        tp = fp = fn = 0.0
        for i in range(2):
            u = LOGITS[i][j] if on == "logits" else sig(LOGITS[i][j])
            s = 1 / (1 + math.exp(S * (u + E)))  # S = -β, E = η
            y = TARGET[i][j]
            tp += s * y
            fp += s * (1 - y)
            fn += (1 - s) * y
        f1s.append(2 * tp / (2 * tp + fn + fp + 1e-16))
    hand = 1 - sum(f1s) / 3
    assert SigmoidF1Loss(S, E, on)(t(LOGITS), t(TARGET)).item() == pytest.approx(hand, rel=1e-5)


def test_focal_by_hand_and_gamma_zero_is_bce():
    hand = 0.0
    for u, y in cells():
        p = sig(u)
        pt = p if y else 1 - p
        hand += -((1 - pt) ** 2) * math.log(pt)
    assert FocalLoss(2.0)(t(LOGITS), t(TARGET)).item() == pytest.approx(hand / 6, rel=1e-5)
    assert FocalLoss(0.0)(t(LOGITS), t(TARGET)).item() == pytest.approx(
        BCELoss()(t(LOGITS), t(TARGET)).item()
    )


@pytest.mark.parametrize("name", ["bce", "asl", "sigmoidf1", "focal"])
def test_gradients_flow_and_a_step_lowers_the_loss(name):
    torch.manual_seed(0)
    x = torch.randn(64, 16)
    w_true = torch.randn(16, 5)
    y = (x @ w_true > 1.0).float()
    head = torch.nn.Linear(16, 5)
    params = {"S": -1.0, "on": "logits"} if name == "sigmoidf1" else {}  # plain soft-F1: a gentle slope
    loss_fn = build_loss({"name": name, **params})
    opt = torch.optim.SGD(head.parameters(), lr=0.5 if name != "sigmoidf1" else 5.0)
    first = loss_fn(head(x), y)
    first.backward()
    assert head.weight.grad is not None and torch.isfinite(head.weight.grad).all()
    assert head.weight.grad.abs().sum() > 0
    opt.step()
    for _ in range(20):
        opt.zero_grad()
        loss_fn(head(x), y).backward()
        opt.step()
    assert loss_fn(head(x), y).item() < first.item()


def test_loss_params_defaults_overrides_and_errors():
    assert loss_params("asl") == {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05}
    assert loss_params("sigmoidf1", S=-15, E=None) == {"S": -15, "E": 0.0, "on": "probability"}
    with pytest.raises(OptionError, match="no parameter 'gamma'"):
        loss_params("asl", gamma=2)
    with pytest.raises(OptionError, match="unknown loss"):
        build_loss("hinge")
    assert isinstance(build_loss({"name": "ASL", "gamma_neg": 2.0}), AsymmetricLoss)
