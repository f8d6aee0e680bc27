"""Mel filters and a numpy log-mel, for code that must not import torch (the explore baseline)."""

from __future__ import annotations

import numpy as np


def mel_filters(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """[n_mels, n_fft // 2 + 1] triangular HTK-mel filters, each normalised to unit area."""

    def hz_to_mel(f: np.ndarray | float) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + np.asarray(f) / 700.0)

    pts = 700.0 * (10 ** (np.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2) / 2595.0) - 1.0)
    freqs = np.linspace(0, sr / 2, n_fft // 2 + 1)
    lo, mid, hi = pts[:-2, None], pts[1:-1, None], pts[2:, None]
    tri = np.maximum(0.0, np.minimum((freqs - lo) / (mid - lo), (hi - freqs) / (hi - mid)))
    return (tri / np.maximum(tri.sum(axis=1, keepdims=True), 1e-12)).astype(np.float32)


def log_mel(
    chunks: np.ndarray, sr: int = 32_000, n_fft: int = 1024, hop: int = 664, n_mels: int = 64
) -> np.ndarray:
    """[n, samples] -> [n, n_mels, frames] natural-log mel power (the SSL frontend's numbers, unstandardised)."""
    x = np.asarray(chunks, dtype=np.float32)
    frames = (x.shape[1] - n_fft) // hop + 1
    idx = np.arange(n_fft)[None, :] + hop * np.arange(frames)[:, None]
    win = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    power = np.abs(np.fft.rfft(x[:, idx] * win, axis=-1)) ** 2  # [n, frames, bins]
    fb = mel_filters(sr, n_fft, n_mels, 150.0, 15_000.0)
    return np.log(np.einsum("mb,nfb->nmf", fb, power) + 1e-6).astype(np.float32)
