"""What the ViT looks at: per-head attention of the class token over the patches, attention rollout through all
layers (Abnar & Zuidema 2020), and an unsupervised call mask from the rollout (the poster's segmentation).

The mask keeps the smallest set of patches holding ``mass`` of the rolled-out attention (as DINO's masks do).
Attention always sums to one, so every window gets a mask; whether a window holds a call at all is decided by how
concentrated its attention is, thresholded without labels (Otsu over the windows scored together).

The class token is trained by no MAE loss, so its maps say little; the attention each patch *receives* from all
tokens of the last layer (mean over heads and queries) is the better call detector (RESULTS.md), and is kept too.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from birdkit.ssl.model import Encoder, patchify


@dataclass
class AttentionMaps:
    spec: np.ndarray  # [n, n_mels, frames] the standardised log-mel the ViT saw
    heads: np.ndarray  # [n, heads, grid_f, grid_t] last layer, class token -> patches
    rollout: np.ndarray  # [n, grid_f, grid_t] rolled out through every layer, rows sum to 1
    received: (
        np.ndarray
    )  # [n, grid_f, grid_t] last layer, attention each patch receives from all tokens, sums to 1

    @property
    def concentration(self) -> np.ndarray:
        """Share of the rolled-out attention held by the top 10% of patches: high when the model fixes on
        something."""
        flat = np.sort(self.rollout.reshape(len(self.rollout), -1), axis=1)[:, ::-1]
        top = max(1, flat.shape[1] // 10)
        return flat[:, :top].sum(axis=1) / np.maximum(flat.sum(axis=1), 1e-12)


@torch.no_grad()
def attention_maps(encoder: Encoder, waves: np.ndarray, batch: int = 32) -> AttentionMaps:
    specs, heads, rolls, received = [], [], [], []
    gf, gt = encoder.vit.grid
    for i in range(0, len(waves), batch):
        spec = encoder.frontend(torch.from_numpy(np.asarray(waves[i : i + batch], np.float32)))
        _, maps = encoder.vit(patchify(spec, encoder.vit.cfg.patch), attention=True)
        n = maps[0].shape[-1]
        roll = torch.eye(n).expand(spec.shape[0], n, n)
        for a in maps:  # [b, heads, n, n]
            a = a.mean(dim=1) + torch.eye(n)
            roll = (a / a.sum(dim=-1, keepdim=True)) @ roll
        cls_roll = roll[:, 0, 1:]
        specs.append(spec[:, 0].numpy())
        heads.append(maps[-1][:, :, 0, 1:].reshape(spec.shape[0], -1, gf, gt).numpy())
        rolls.append((cls_roll / cls_roll.sum(dim=-1, keepdim=True)).reshape(-1, gf, gt).numpy())
        got = maps[-1].mean(dim=1)[:, :, 1:].mean(dim=1)  # [b, patches]
        received.append((got / got.sum(dim=-1, keepdim=True)).reshape(-1, gf, gt).numpy())
    return AttentionMaps(*(np.concatenate(v) for v in (specs, heads, rolls, received)))


def call_mask(rollout: np.ndarray, mass: float = 0.5) -> np.ndarray:
    """bool [n, grid_f, grid_t]: the fewest patches that hold ``mass`` of each window's rolled-out attention."""
    flat = rollout.reshape(len(rollout), -1)
    order = np.argsort(-flat, axis=1)
    cum = np.cumsum(np.take_along_axis(flat, order, axis=1), axis=1)
    take = cum - np.take_along_axis(flat, order, axis=1) < mass * cum[:, -1:]
    mask = np.zeros_like(flat, dtype=bool)
    np.put_along_axis(mask, order, take, axis=1)
    return mask.reshape(rollout.shape)


def otsu(values: np.ndarray, bins: int = 64) -> float:
    """The threshold that best splits ``values`` into two groups (between-class variance), no labels needed."""
    v = np.asarray(values, dtype=np.float64)
    hist, edges = np.histogram(v, bins=bins)
    mids = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * mids) / np.maximum(w0, 1)
    m1 = (np.sum(hist * mids) - np.cumsum(hist * mids)) / np.maximum(w1, 1)
    return float(mids[np.argmax(w0 * w1 * (m0 - m1) ** 2)])


def time_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean time masks (nan when both are empty)."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else float("nan")
