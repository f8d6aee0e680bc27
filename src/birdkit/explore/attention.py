"""The self-supervised encoder's attention over soundscape windows: an unsupervised call mask scored against the
surrogate's (BirdNET's) detections as IoU over time, with an energy mask as the plain baseline, and a contact
sheet of per-head and rolled-out maps drawn over the spectrogram. Torch is imported only here, when a store of
the `ssl` encoder is explored with its audio."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from birdkit.audio import CHUNK_SECONDS, load_chunks
from birdkit.explore.figures import plt, save


@dataclass
class AttentionResult:
    windows: int
    bird_share: float  # windows where the surrogate hears a call
    ssl_flagged: float  # windows the attention concentration flags
    iou: dict[str, float]  # mask name -> IoU over time with the surrogate's call windows
    window_iou: dict[str, float]  # the same at window resolution (which windows hold a call at all)


def soundscape_waves(frame: pd.DataFrame, root: Path) -> np.ndarray:
    """[n, 5 s at 32 kHz] windows of ``frame``'s rows, in its order."""
    out = np.zeros((len(frame), CHUNK_SECONDS * 32_000), np.float32)
    start = frame["start_s"].to_numpy()
    for file, rows in frame.groupby("file", sort=False).indices.items():
        chunks = load_chunks(root / str(file), 32_000).chunks
        out[rows] = chunks[np.minimum((start[rows] // CHUNK_SECONDS).astype(int), len(chunks) - 1)]
    return out


def score_masks(maps, bird: np.ndarray, mass: float = 0.5) -> tuple[AttentionResult, np.ndarray]:
    """IoU over time (patch columns of ~0.32 s) of the attention mask, of an energy mask and of 'everything'
    against the surrogate's call windows; also the per-window SSL flags."""
    from birdkit.ssl.attention import call_mask, otsu, time_iou

    n, f, t = maps.spec.shape
    gf, gt = maps.rollout.shape[1:]
    patch_e = maps.spec.reshape(n, gf, f // gf, gt, t // gt).mean(axis=(2, 4))  # [n, gf, gt]
    mask = call_mask(maps.rollout, mass)
    # what the model attends to, against the window's typical patch: a call stands out, noise does not
    contrast = (patch_e * mask).sum(axis=(1, 2)) / mask.sum(axis=(1, 2)) - np.median(patch_e, axis=(1, 2))
    flag = contrast > otsu(contrast)
    conc = maps.concentration
    c_flag = conc > otsu(conc)
    cols = mask.any(axis=1)  # [n, gt]
    truth = np.repeat(bird[:, None], gt, axis=1)
    energy = patch_e.mean(axis=1)  # [n, gt]
    e_cols = energy > otsu(energy.ravel())
    got = maps.received.sum(axis=1)  # [n, gt] attention received per column
    peak = got.max(axis=1)
    r_flag = peak > otsu(peak)
    masks = {
        "attention received: columns, windows by its peak": (got > otsu(got.ravel())) & r_flag[:, None],
        "attention mask, windows by attended contrast": cols & flag[:, None],
        "attention mask, windows by concentration": cols & c_flag[:, None],
        "energy mask (baseline)": e_cols,
        "every column (baseline)": np.ones_like(truth),
    }
    flags = {
        "attention received": r_flag,
        "attended contrast": flag,
        "attention concentration": c_flag,
        "energy": e_cols.any(axis=1),
        "every window": np.ones_like(bird),
    }
    res = AttentionResult(
        len(bird),
        float(bird.mean()),
        float(flag.mean()),
        {k: time_iou(v, truth) for k, v in masks.items()},
        {k: time_iou(v, bird) for k, v in flags.items()},
    )
    return res, flag


def contact_sheet(maps, rows: list[int], titles: list[str], path: Path, mass: float = 0.5) -> Path:
    """One row per window: spectrogram, rolled-out attention over it with the call mask's outline, then each
    last-layer head's map over the spectrogram."""
    from birdkit.ssl.attention import call_mask

    n_heads = maps.heads.shape[1]
    fig, axes = plt.subplots(
        len(rows), 2 + n_heads, figsize=(2.2 * (2 + n_heads), 1.6 * len(rows)), squeeze=False
    )
    f, t = maps.spec.shape[1:]
    ext = (0, CHUNK_SECONDS, 0, f)
    for r, (i, title) in enumerate(zip(rows, titles, strict=True)):
        mask = call_mask(maps.rollout[i : i + 1], mass)[0]
        panels = [("spectrogram", None), ("rollout + mask", maps.rollout[i])]
        panels += [(f"head {h + 1}", maps.heads[i, h]) for h in range(n_heads)]
        for c, (name, heat) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(maps.spec[i], origin="lower", aspect="auto", cmap="gray_r", extent=ext)
            if heat is not None:
                ax.imshow(heat, origin="lower", aspect="auto", cmap="inferno", alpha=0.55, extent=ext)
            if c == 1:
                ax.contour(
                    np.kron(mask, np.ones((16, 16))),
                    levels=[0.5],
                    colors="cyan",
                    linewidths=0.8,
                    extent=ext,
                    origin="lower",
                )
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name, fontsize=8)
        axes[r, 0].set_ylabel(title, fontsize=6)
    fig.tight_layout()
    return save(fig, path, colours=64)
