"""Contact sheets: spectrograms of the most typical windows of each cluster, so clusters of silence, noise and
song can be told apart at a glance (the self-supervised poster's cluster inspection).

All tiles share one fixed dB scale (re full scale): per-tile normalisation would stretch silence into something
that looks like noise.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from birdkit.audio import CHUNK_SECONDS, AudioError, decode, resample
from birdkit.explore.figures import plt, save

SHEET_RATE = 32_000
N_FFT = 1024
HOP = 320
FMAX_HZ = 12_000
DB_RANGE = (-100.0, -30.0)
POOL = (3, 4)  # (frequency, time) bins averaged per pixel: a tile is ~80 px wide, and PNGs stay small


def spectrogram_db(samples: np.ndarray, sr: int = SHEET_RATE) -> np.ndarray:
    """Spectrogram in dB re full scale (a full-scale sine peaks near 0 dB), rows 0..FMAX_HZ, power-averaged in
    POOL blocks."""
    x = np.asarray(samples, dtype=np.float32)
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    window = np.hanning(N_FFT).astype(np.float32)
    n_frames = 1 + (len(x) - N_FFT) // HOP
    frames = np.lib.stride_tricks.sliding_window_view(x, N_FFT)[::HOP][:n_frames] * window
    power = (np.abs(np.fft.rfft(frames, axis=1)) / (window.sum() / 2)) ** 2
    rows = (int(FMAX_HZ / (sr / N_FFT)) // POOL[0]) * POOL[0]
    cols = max(1, n_frames // POOL[1]) * POOL[1]
    power = np.pad(power, ((0, max(0, cols - n_frames)), (0, 0)))[:cols, :rows].T
    pooled = power.reshape(rows // POOL[0], POOL[0], cols // POOL[1], POOL[1]).mean(axis=(1, 3))
    return (10 * np.log10(pooled + 1e-12)).astype(np.float32)


@dataclass(frozen=True)
class WindowRef:
    """Where a window's audio is: the file and the window's start and end in seconds."""

    path: Path
    start_s: float
    end_s: float


def window_spectrograms(refs: list[WindowRef], progress: bool = True) -> dict[WindowRef, np.ndarray | None]:
    """Decode each file once and cut out its windows; an unreadable file gives None (the tile says so)."""
    by_file: dict[Path, list[WindowRef]] = defaultdict(list)
    for r in refs:
        by_file[r.path].append(r)
    out: dict[WindowRef, np.ndarray | None] = {}
    for path in tqdm(
        sorted(by_file), desc="contact sheet audio", unit="file", disable=not progress, leave=False
    ):
        try:
            d = decode(path)
            y = resample(d.samples, d.sample_rate, SHEET_RATE)
        except AudioError:
            out.update(dict.fromkeys(by_file[path]))
            continue
        for r in by_file[path]:
            seg = y[int(r.start_s * SHEET_RATE) : int(r.end_s * SHEET_RATE)]
            seg = np.pad(seg, (0, max(0, CHUNK_SECONDS * SHEET_RATE - len(seg))))
            out[r] = spectrogram_db(seg)
    return out


@dataclass
class Tile:
    """One cluster on the sheet: its caption and its example spectrograms (None: audio missing)."""

    title: str
    spectrograms: list[np.ndarray | None]


def _strip(specs: list[np.ndarray | None]) -> np.ndarray:
    """Examples side by side with a thin gap; a missing one is left blank (NaN)."""
    if not specs:
        return np.full((8, 8), np.nan, dtype=np.float32)
    shape = next((s.shape for s in specs if s is not None), (128, 125))
    gap = np.full((shape[0], 2), np.nan, dtype=np.float32)
    parts: list[np.ndarray] = []
    for i, s in enumerate(specs):
        if i:
            parts.append(gap)
        parts.append(s if s is not None else np.full(shape, np.nan, dtype=np.float32))
    return np.concatenate(parts, axis=1)


def _mosaic(page: list[Tile], ncols: int) -> tuple[np.ndarray, list[tuple[int, int]], int, int]:
    """One image of a page's strips on a grid, low frequencies down; returns (image, tile origins, w, h).

    A single imshow per page instead of an Axes per cluster: 100 Axes cost ~20 s of rendering on this machine.
    """
    strips = [_strip(t.spectrograms)[::-1] for t in page]  # row 0 is drawn on top: highest frequency first
    h = max((st.shape[0] for st in strips), default=8)
    w = max((st.shape[1] for st in strips), default=8)
    gap_x, gap_y = w // 12, h // 3  # room between tiles, and above each for its title
    nrows = max(1, -(-len(page) // ncols))
    img = np.full((nrows * (h + gap_y), ncols * (w + gap_x)), np.nan, dtype=np.float32)
    origins = []
    for i, st in enumerate(strips):
        y0, x0 = (i // ncols) * (h + gap_y) + gap_y, (i % ncols) * (w + gap_x)
        img[y0 : y0 + st.shape[0], x0 : x0 + st.shape[1]] = st
        origins.append((x0, y0))
    return img, origins, w, h


def plot_contact_sheets(
    tiles: list[Tile], prefix: Path, title: str, per_page: int = 40, ncols: int = 4
) -> list[Path]:
    """Pages of `per_page` clusters (`ncols` per row), written as `<prefix>-<page>.png`."""
    paths: list[Path] = []
    pages = [tiles[i : i + per_page] for i in range(0, len(tiles), per_page)] or [[]]
    cmap = plt.get_cmap("magma").with_extremes(bad="white")  # gaps and missing audio stay white
    for p, page in enumerate(pages, start=1):
        img, origins, w, h = _mosaic(page, ncols)
        width = 4.3 * ncols
        height = width * img.shape[0] / img.shape[1] * 1.25 + 0.9
        fig, ax = plt.subplots(figsize=(width, height))
        fig.subplots_adjust(left=0.03, right=0.9, top=1 - 0.7 / height, bottom=0.15 / height)
        im = ax.imshow(
            img, cmap=cmap, vmin=DB_RANGE[0], vmax=DB_RANGE[1], aspect="auto", interpolation="nearest"
        )
        for t, (x0, y0) in zip(page, origins, strict=True):
            ax.text(x0, y0 - h * 0.06, t.title, fontsize=8, va="bottom", ha="left")
            if x0 == 0:
                for frac, lab in ((0.0, f"{FMAX_HZ // 1000}"), (0.5, f"{FMAX_HZ // 2000}"), (1.0, "0 kHz")):
                    ax.text(-w * 0.01, y0 + frac * (h - 1), lab, fontsize=6, ha="right", va="center")
            missing = [j for j, sp in enumerate(t.spectrograms) if sp is None]
            for j in missing:
                ax.text(
                    x0 + (j + 0.5) * w / len(t.spectrograms), y0 + h / 2, "no audio", fontsize=6, ha="center"
                )
        ax.set_axis_off()
        cax = fig.add_axes((0.915, 0.3, 0.01, 0.4))
        fig.colorbar(im, cax=cax, label="dB re full scale")
        fig.suptitle(
            f"{title} (page {p}/{len(pages)}): per cluster, the 5 s windows nearest its centre side by side "
            "(0–12 kHz);\ntitle: cluster · windows · share with a call · majority label and its share",
            y=1 - 0.1 / height,
            fontsize=10,
        )
        paths.append(save(fig, prefix.with_name(f"{prefix.name}-{p}.png"), colours=256))
    return paths
