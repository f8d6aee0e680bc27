"""Multi-label losses on logits [B, S] against targets [B, S] (the paper's section 5.4).

Targets are 0/1, or soft (in [0, 1]: pseudo-labels, label smoothing, mixup). Every loss takes an optional
per-cell ``weight`` [B, S] (weak negatives, mixup of weights): the loss is then mean(weight * loss), so weight 1
everywhere is the plain loss. ``asl`` runs its fast closed form on 0/1 targets without weights, else autograd.

Every loss here returns a scalar whose scale does not depend on the batch size (a mean over windows), so a
learning rate carries over between batch sizes and between the minicomp and the full competition.

``bce``        binary cross-entropy, mean over windows and species (torch's default).
``asl``        asymmetric loss (Ridnik et al. 2021): L+ = (1-p)^γ+ log p,  L- = p_m^γ- log(1-p_m),
               p_m = max(p - clip, 0). Mean over windows and species, so γ+ = γ- = clip = 0 is exactly ``bce``.
               The DS@GT code summed instead, which ties the loss scale to the batch size.
``sigmoidf1``  1 - macro soft-F1 over the batch (Bénédict et al. 2021), with the tempered sigmoid
               S(u; β, η) = 1 / (1 + exp(-β (u + η))) and the paper's parameters S = -β, E = η.
``focal``      sigmoid focal loss (Lin et al. 2017), mean over windows and species.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from birdkit.errors import OptionError
from birdkit.heads.card import LOSSES

# Defaults per loss; a model card records the full set actually used.
DEFAULTS: dict[str, dict] = {
    "bce": {},
    "asl": {"gamma_pos": 1.0, "gamma_neg": 4.0, "clip": 0.05},
    "sigmoidf1": {"S": -30.0, "E": 0.0, "on": "probability"},
    "focal": {"gamma": 2.0, "alpha": -1.0},
}


class BCELoss(nn.Module):
    """Binary cross-entropy on logits; the baseline with no hyperparameters."""

    def forward(self, logits: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        return F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), weight=weight)


def _pow(t: torch.Tensor, g: float) -> torch.Tensor:
    """t ** g, with the common integer exponents as multiplications (pow is several times slower)."""
    if g == 0:
        return torch.ones_like(t)
    if g == 1:
        return t
    if g == 2:
        return t * t
    if g == 3:
        return t * t * t
    if g == 4:
        u = t * t
        return u * u
    return t.pow(g)


class _AsymmetricLossFn(torch.autograd.Function):
    """ASL for 0/1 targets, with its gradient computed in the same pass as the loss.

    The loss runs once per batch of a paper-sized fit (1,000 x 182 elements), where autograd through a dozen
    element-wise ops cost more than the matrix products. Here the negative term is computed densely with
    in-place ops, and the positive term only at the positives (about one element in 200), replacing the
    negative term there. With p = σ(x), q = 1 - p, m = max(p - clip, 0):

        loss  = -mean( y q^γ+ log p  +  (1 - y) m^γ- log(1 - m) )
        d/dx [q^γ+ log p]        = q^γ+ (q - γ+ p log p)
        d/dx [m^γ- log(1 - m)]   = (γ- m^(γ- - 1) log(1 - m) - m^γ- / (1 - m)) p q      (0 where m = 0)
                                 = γ- p^γ- q log q - p^(γ- + 1)                            (clip = 0: m = p)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, y: torch.Tensor, gp: float, gn: float, clip: float) -> torch.Tensor:  # type: ignore[override]
        scale = -1.0 / x.numel()
        with torch.no_grad():
            p = torch.sigmoid(x)
            # dense: every element as a negative
            if clip > 0:
                m = (p - clip).clamp_(min=0)
                one_m = torch.rsub(m, 1)  # >= clip: finite logs and quotients
                log_1m = torch.log(one_m)
                mg = _pow(m, gn)
                neg_sum = (mg * log_1m).sum()
                grad = (mg / one_m).neg_()
                if gn == 1:
                    grad.add_(log_1m)
                elif gn:
                    grad.add_(_pow(m, gn - 1) * log_1m, alpha=gn)
                grad.mul_(p).mul_(torch.rsub(p, 1))
                if gn < 1:  # m^(γ-1) is inf or the derivative of a clipped constant is not 0: mask
                    grad = torch.where(m > 0, grad, torch.zeros_like(grad))
            else:
                log_1m = F.logsigmoid(-x)
                pg = _pow(p, gn)
                neg_sum = (pg * log_1m).sum()
                grad = (pg * p).neg_()
                if gn:
                    grad.add_(pg * torch.rsub(p, 1) * log_1m, alpha=gn)
            # sparse: the positives, whose negative term is swapped for the positive one
            idx = (y.reshape(-1) > 0.5).nonzero().squeeze(1)
            xp, pp = x.reshape(-1)[idx], p.reshape(-1)[idx]
            qp = 1 - pp
            qg = _pow(qp, gp)
            l_pos = qg * F.logsigmoid(xp)
            g_pos = qp * qg - gp * pp * l_pos if gp else qp * qg
            if clip > 0:
                mp = (pp - clip).clamp(min=0)
                l_wrong = _pow(mp, gn) * torch.log(1 - mp)
            else:
                l_wrong = _pow(pp, gn) * F.logsigmoid(-xp)
            total = (neg_sum - l_wrong.sum() + l_pos.sum()) * scale
            grad = grad.reshape(-1)
            grad[idx] = g_pos
            grad = grad.mul_(scale).reshape(x.shape)
        ctx.save_for_backward(grad)
        return total

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):  # type: ignore[override]
        (grad,) = ctx.saved_tensors
        return grad_out * grad, None, None, None, None


class AsymmetricLoss(nn.Module):
    """ASL: down-weights easy negatives (γ-) and discards negatives with p < clip, for fuzzy pseudo-labels.

    Soft targets or weights go through :func:`asl_weighted`. Log-probabilities come from ``logsigmoid`` so
    confident logits do not give log(0). The gradient is computed in closed form (``_AsymmetricLossFn``);
    the tests check it against autograd of the plain formula.
    """

    def __init__(self, gamma_pos: float = 1.0, gamma_neg: float = 4.0, clip: float = 0.05) -> None:
        super().__init__()
        if gamma_pos < 0 or gamma_neg < 0 or not 0.0 <= clip < 1.0:
            raise OptionError(
                f"--param: ASL needs gamma_pos, gamma_neg >= 0 and 0 <= clip < 1, got {gamma_pos, gamma_neg, clip}"
            )
        self.gamma_pos = float(gamma_pos)
        self.gamma_neg = float(gamma_neg)
        self.clip = float(clip)
        # set by a caller that knows every target is 0 or 1 (the fit loop): skips the per-batch check
        self.binary_targets = False

    def forward(self, logits: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        y = target.to(logits.dtype)
        if weight is not None or (not self.binary_targets and bool(((y != 0) & (y != 1)).any())):
            return asl_weighted(logits, y, self.gamma_pos, self.gamma_neg, self.clip, weight)
        return _AsymmetricLossFn.apply(logits, y, self.gamma_pos, self.gamma_neg, self.clip)


def asl_weighted(
    x: torch.Tensor, y: torch.Tensor, gp: float, gn: float, clip: float, weight: torch.Tensor | None = None
) -> torch.Tensor:
    """ASL for soft targets and per-cell weights, by autograd: -mean(w (y L+ + (1 - y) L-)). The same loss as
    the closed form on 0/1 targets with weight 1 (the tests check it); slower, so used only when needed."""
    p = torch.sigmoid(x)
    pos = _pow(torch.sigmoid(-x), gp) * F.logsigmoid(x)
    if clip > 0:
        m = (p - clip).clamp(min=0)
        log_1m = torch.log1p(-m)  # 1 - m >= clip: finite
    else:
        m, log_1m = p, F.logsigmoid(-x)
    # m ** γ- without the 0 * inf of its derivative at m = 0 (γ- < 1) or where the clip holds m at 0
    mg = torch.where(m > 0, _pow(m.clamp(min=1e-12), gn), torch.zeros_like(m)) if gn else torch.ones_like(m)
    cell = y * pos + (1 - y) * mg * log_1m
    if weight is not None:
        cell = cell * weight
    return -cell.mean()


class SigmoidF1Loss(nn.Module):
    """1 - macro soft-F1 of the batch: optimizes F1 directly (the 2022 edition's metric).

    ``on="probability"`` (default) applies S(u; β, η) to u = σ(logits), as the sigmoidF1 authors' and the
    DS@GT code do: the paper's numbers and its grid (S ∈ {-1, -15, -30}, E ∈ {0, 1}) come from that code.
    ``on="logits"`` applies it to the logits, as equation (8) is printed; there S = -30 is a near-step at
    p = 0.5 whose gradient vanishes a little away from it (on minicomp it stayed at chance, ROC-AUC ~0.53).
    """

    def __init__(self, S: float = -30.0, E: float = 0.0, on: str = "probability") -> None:
        super().__init__()
        if on not in ("logits", "probability"):
            raise OptionError(f"--param on={on!r}: sigmoidF1 takes on=logits or on=probability")
        if S == 0:
            raise OptionError("--param S=0: sigmoidF1 needs S != 0 (S = -β sets the slope)")
        self.S = float(S)
        self.E = float(E)
        self.on = on

    def forward(self, logits: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        y = target.to(logits.dtype)
        u = logits if self.on == "logits" else torch.sigmoid(logits)
        s = torch.sigmoid(-self.S * (u + self.E))  # = 1 / (1 + exp(S (u + E)))
        w = torch.ones_like(y) if weight is None else weight.to(logits.dtype)  # a cell's share of the counts
        tp = (w * s * y).sum(dim=0)
        fp = (w * s * (1 - y)).sum(dim=0)
        fn = (w * (1 - s) * y).sum(dim=0)
        f1 = 2 * tp / (2 * tp + fn + fp + 1e-16)
        return 1 - f1.mean()


class FocalLoss(nn.Module):
    """Sigmoid focal loss: BCE scaled by (1 - p_t)^γ = |y - p|^γ; α >= 0 also weights positives by α, negatives
    by 1 - α. Soft targets: the same formula with |y - p| (quality focal loss), minimal at p = y."""

    def __init__(self, gamma: float = 2.0, alpha: float = -1.0) -> None:
        super().__init__()
        self.gamma = float(gamma)
        self.alpha = float(alpha)

    def forward(self, logits: Tensor, target: Tensor, weight: Tensor | None = None) -> Tensor:
        y = target.to(logits.dtype)
        ce = F.binary_cross_entropy_with_logits(logits, y, weight=weight, reduction="none")
        # |y - p| is 1 - p_t for 0/1 targets; for soft ones it keeps the minimum at p = y (quality focal loss,
        # Li et al. 2020), where 1 - p_t would pull a soft target's probability away from it
        loss = ce * (y - torch.sigmoid(logits)).abs().pow(self.gamma)
        if self.alpha >= 0:
            loss = (y * self.alpha + (1 - y) * (1 - self.alpha)) * loss
        return loss.mean()


_CLASSES: dict[str, type[nn.Module]] = {
    "bce": BCELoss,
    "asl": AsymmetricLoss,
    "sigmoidf1": SigmoidF1Loss,
    "focal": FocalLoss,
}


def loss_params(name: str, **overrides: object) -> dict:
    """The full parameter set of a loss: its defaults with the given (non-None) overrides; unknown ones fail."""
    name = name.lower()
    if name not in _CLASSES:
        raise OptionError(f"--loss {name!r}: unknown loss; choose one of {', '.join(LOSSES)}")
    params = dict(DEFAULTS[name])
    for k, v in overrides.items():
        if v is None:
            continue
        if k not in params:
            raise OptionError(
                f"--param {k}: loss {name} has no parameter {k!r} (it takes {', '.join(params) or 'none'})"
            )
        if isinstance(params[k], float) and not isinstance(v, int | float):
            raise OptionError(f"--param {k}={v!r}: loss {name} takes a number there")
        params[k] = v
    return params


def build_loss(spec: dict | str) -> nn.Module:
    """A loss from a card's ``loss`` entry ``{"name": ..., params...}`` (or just its name, with defaults)."""
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = str(spec.pop("name")).lower()
    params = loss_params(name, **spec)  # validates the name and the parameters first
    return _CLASSES[name](**params)
