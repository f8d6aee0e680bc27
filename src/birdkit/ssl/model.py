"""A small ViT over log-mel patches: the backbone every objective trains and the encoder ships.

Attention is written out (not ``nn.MultiheadAttention``) so each block can hand back its per-head weights for
the attention maps, and so the graph exports to ONNX as plain matmuls. The embedding pools the last block's
normalised tokens (:mod:`birdkit.ssl.pooling`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from birdkit.errors import OptionError
from birdkit.ssl.frontend import FrontendConfig, LogMel
from birdkit.ssl.pooling import DEFAULT_POOL, check_pool

# name -> (dim, depth, heads): sizes that train in minutes on 2 CPU cores (tiny, small) or want a GPU (base)
SIZES = {"tiny": (64, 2, 4), "small": (128, 4, 4), "base": (256, 6, 8)}


@dataclass(frozen=True)
class ViTConfig:
    size: str = "small"
    patch: int = 16
    dim: int = 128
    depth: int = 4
    heads: int = 4
    mlp_ratio: int = 2

    @classmethod
    def named(cls, size: str, patch: int = 16) -> ViTConfig:
        if size not in SIZES:
            raise OptionError(f"--size {size!r}: choose one of {', '.join(SIZES)}")
        dim, depth, heads = SIZES[size]
        return cls(size, patch, dim, depth, heads)

    @property
    def patch_shape(self) -> tuple[int, int]:
        """(frequency, time) size of a patch."""
        return self.patch, self.patch

    def grid(self, fe: FrontendConfig) -> tuple[int, int]:
        """Patches along frequency and time."""
        return fe.n_mels // self.patch, fe.frames // self.patch

    def to_json(self) -> dict:
        return asdict(self)


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-2, -1) * (d // self.heads) ** -0.5, dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, d)
        return self.proj(out), attn


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a, w = self.attn(self.norm1(x))
        x = x + a
        return x + self.mlp(self.norm2(x)), w


def patchify(spec: torch.Tensor, patch: int) -> torch.Tensor:
    """[b, 1, F, T] -> [b, (F/p)*(T/p), p*p], frequency-major."""
    b, _, f, t = spec.shape
    x = spec.reshape(b, f // patch, patch, t // patch, patch).permute(0, 1, 3, 2, 4)
    return x.reshape(b, (f // patch) * (t // patch), patch * patch)


class ViT(nn.Module):
    """Patches (all, or the visible subset given by ``keep``) -> tokens, the class token first."""

    def __init__(self, cfg: ViTConfig, fe: FrontendConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.grid = cfg.grid(fe)
        n = self.grid[0] * self.grid[1]
        self.embed = nn.Linear(cfg.patch * cfg.patch, cfg.dim)
        self.cls = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos = nn.Parameter(torch.randn(1, n, cfg.dim) * 0.02)
        self.blocks = nn.ModuleList(Block(cfg.dim, cfg.heads, cfg.mlp_ratio) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(
        self, patches: torch.Tensor, keep: torch.Tensor | None = None, attention: bool = False
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = self.embed(patches) + self.pos
        if keep is not None:  # [b, n_keep] indices of visible patches
            x = torch.gather(x, 1, keep[..., None].expand(-1, -1, x.shape[-1]))
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], dim=1)
        maps = []
        for blk in self.blocks:
            x, w = blk(x)
            if attention:
                maps.append(w)
        return self.norm(x), maps


def pooled(tokens: torch.Tensor, pool: str, grid: tuple[int, int]) -> torch.Tensor:
    """The embedding of [b, 1 + rows * cols, dim] tokens (class token first; ``grid`` = (rows, cols))."""
    patches = tokens[:, 1:]
    if pool == "cls+mean":
        return torch.cat([tokens[:, 0], patches.mean(dim=1)], dim=-1)
    if pool == "mean":
        return patches.mean(dim=1)
    b, _, d = patches.shape
    return patches.reshape(b, grid[0], grid[1], d).mean(dim=2).reshape(b, grid[0] * d)


class Encoder(nn.Module):
    """What ships: 5 s waveform [b, samples] -> embedding [b, D] (D from the pooling)."""

    def __init__(self, vit: ViT, frontend: LogMel, pool: str = DEFAULT_POOL) -> None:
        super().__init__()
        self.frontend = frontend
        self.vit = vit
        self.pool = check_pool(pool)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        tokens, _ = self.vit(patchify(self.frontend(wave), self.vit.cfg.patch))
        return pooled(tokens, self.pool, self.vit.grid)
