"""The self-supervised objectives, each a module ``loss(spec [b, 1, F, T]) -> scalar`` around one ViT.

``mae``    the explainer's masked reconstruction: hide ``mask_ratio`` of the patches, encode the visible ones,
           a small decoder predicts the hidden patches; loss = mean over masked patches of ||f(x\\M) - x_i||^2.
``jepa``   the same masking, but the decoder predicts a slowly moving (EMA) copy of the encoder's tokens of the
           hidden patches instead of their pixels: a joint-embedding model, as on the poster.
``vicreg`` the poster's named next step: two augmented views, invariance + variance + covariance terms on a
           projection of their embeddings.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from birdkit.errors import OptionError
from birdkit.ssl.model import Block, ViT, patchify, pooled

OBJECTIVES = ("mae", "jepa", "vicreg")


def random_keep(b: int, n: int, ratio: float, gen: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
    """Per sample, indices of the visible and of the masked patches (the same count for every sample)."""
    n_keep = max(1, round(n * (1.0 - ratio)))
    order = torch.rand(b, n, generator=gen).argsort(dim=1)
    return order[:, :n_keep], order[:, n_keep:]


class Predictor(nn.Module):
    """Visible tokens + mask tokens at the hidden positions -> one output vector per hidden patch."""

    def __init__(self, dim: int, n: int, out: int, width: int = 64, depth: int = 1) -> None:
        super().__init__()
        self.inp = nn.Linear(dim, width)
        self.mask = nn.Parameter(torch.zeros(1, 1, width))
        self.pos = nn.Parameter(torch.randn(1, n, width) * 0.02)
        self.blocks = nn.ModuleList(Block(width, 4, 2) for _ in range(depth))
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, out)

    def forward(self, visible: torch.Tensor, keep: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        x = self.inp(visible[:, 1:])
        w = x.shape[-1]
        x = x + torch.gather(self.pos.expand(x.shape[0], -1, -1), 1, keep[..., None].expand(-1, -1, w))
        m = self.mask + torch.gather(
            self.pos.expand(x.shape[0], -1, -1), 1, hidden[..., None].expand(-1, -1, w)
        )
        x = torch.cat([x, m], dim=1)
        for blk in self.blocks:
            x, _ = blk(x)
        return self.out(self.norm(x[:, keep.shape[1] :]))


def _take(x: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    return torch.gather(x, 1, idx[..., None].expand(-1, -1, x.shape[-1]))


class Masked(nn.Module):
    """mae (pixel targets) and jepa (EMA-token targets)."""

    def __init__(
        self, vit: ViT, objective: str, mask_ratio: float, norm_pix: bool = False, ema: float = 0.996
    ) -> None:
        super().__init__()
        self.vit, self.objective, self.mask_ratio, self.ema = vit, objective, mask_ratio, ema
        self.norm_pix = norm_pix
        n = vit.grid[0] * vit.grid[1]
        p = vit.cfg.patch
        self.predictor = Predictor(vit.cfg.dim, n, p * p if objective == "mae" else vit.cfg.dim)
        self.target = copy.deepcopy(vit).requires_grad_(False) if objective == "jepa" else None

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        patches = patchify(spec, self.vit.cfg.patch)
        keep, hidden = random_keep(patches.shape[0], patches.shape[1], self.mask_ratio)
        visible, _ = self.vit(patches, keep)
        pred = self.predictor(visible, keep, hidden)
        if self.target is None:
            goal = _take(patches, hidden)
            if self.norm_pix:  # each patch standardised: the MAE paper's target, shape over level
                goal = (goal - goal.mean(-1, keepdim=True)) / (goal.var(-1, keepdim=True) + 1e-6).sqrt()
        else:
            with torch.no_grad():
                tokens, _ = self.target(patches)
                goal = nn.functional.layer_norm(_take(tokens[:, 1:], hidden), tokens.shape[-1:])
        return ((pred - goal) ** 2).mean()

    @torch.no_grad()
    def after_step(self) -> None:
        if self.target is not None:
            for t, s in zip(self.target.parameters(), self.vit.parameters(), strict=True):
                t.mul_(self.ema).add_(s.detach(), alpha=1.0 - self.ema)


def augment(spec: torch.Tensor) -> torch.Tensor:
    """A view: random circular time shift, a frequency and a time band masked, a gain offset, a little noise."""
    b, _, f, t = spec.shape
    shift = int(torch.randint(0, t, (1,)))
    x = torch.roll(spec, shift, dims=3).clone()
    for dim, size in ((2, f), (3, t)):
        width = int(torch.randint(0, size // 6 + 1, (1,)))
        start = int(torch.randint(0, size - width + 1, (1,)))
        x.narrow(dim, start, width).fill_(float(spec.mean()))
    return x + 0.3 * torch.randn(b, 1, 1, 1) + 0.1 * torch.randn_like(x)


class VICReg(nn.Module):
    def __init__(self, vit: ViT, proj: int = 256) -> None:
        super().__init__()
        self.vit = vit
        d = 2 * vit.cfg.dim
        self.proj = nn.Sequential(nn.Linear(d, proj), nn.BatchNorm1d(proj), nn.ReLU(), nn.Linear(proj, proj))

    def forward(self, spec: torch.Tensor) -> torch.Tensor:
        za, zb = (
            self.proj(
                pooled(self.vit(patchify(augment(spec), self.vit.cfg.patch))[0], "cls+mean", self.vit.grid)
            )
            for _ in "ab"
        )
        inv = nn.functional.mse_loss(za, zb)
        var = sum(torch.relu(1.0 - torch.sqrt(z.var(dim=0) + 1e-4)).mean() for z in (za, zb))
        cov = 0.0
        for z in (za, zb):
            z = z - z.mean(dim=0)
            c = (z.T @ z) / (z.shape[0] - 1)
            cov = cov + (c.pow(2).sum() - c.diagonal().pow(2).sum()) / z.shape[1]
        return 25.0 * inv + 25.0 * var + cov

    def after_step(self) -> None:
        pass


def check_objective(objective: str, mask_ratio: float) -> None:
    if objective not in OBJECTIVES:
        raise OptionError(f"--objective {objective!r}: choose one of {', '.join(OBJECTIVES)}")
    if objective != "vicreg" and not 0.3 <= mask_ratio <= 0.8:
        raise OptionError(f"--mask-ratio {mask_ratio}: must lie in 0.3-0.8 (the explainer's range)")


def build(objective: str, vit: ViT, mask_ratio: float, norm_pix: bool = False) -> nn.Module:
    check_objective(objective, mask_ratio)
    return VICReg(vit) if objective == "vicreg" else Masked(vit, objective, mask_ratio, norm_pix)
