"""Waveform -> normalised log-mel spectrogram, built from a strided convolution with a fixed DFT basis.

A convolution rather than ``torch.stft``: the same module trains, precomputes the cache and exports to ONNX
(and TFLite) with no STFT operator, so the shipped graph takes raw 5 s chunks and its numbers match torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from birdkit.ssl.mel import mel_filters

SAMPLE_RATE = 32_000
CHUNK_SAMPLES = 5 * SAMPLE_RATE


@dataclass(frozen=True)
class FrontendConfig:
    sample_rate: int = SAMPLE_RATE
    n_fft: int = 1024
    hop: int = 664  # 240 frames from 5 s at 32 kHz: 15 patches of 16 frames
    n_mels: int = 64
    fmin: float = 150.0
    fmax: float = 15_000.0
    frames: int = 240
    # log-mel standardisation, fixed from the pretraining data (a per-window one would erase loudness, which
    # is what separates silence from song)
    mean: float = 0.0
    std: float = 1.0

    def to_json(self) -> dict:
        return asdict(self)


def dft_basis(cfg: FrontendConfig) -> np.ndarray:
    """[2 * (n_fft // 2 + 1), n_fft] float32: the Hann-windowed DFT, real rows then imaginary rows."""
    n = np.arange(cfg.n_fft)
    window = 0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.n_fft)
    k = np.arange(cfg.n_fft // 2 + 1)[:, None]
    basis = np.concatenate([np.cos(2 * np.pi * k * n / cfg.n_fft), -np.sin(2 * np.pi * k * n / cfg.n_fft)])
    return (basis * window).astype(np.float32)


class LogMel(nn.Module):
    """[batch, samples] float32 -> [batch, 1, n_mels, frames] standardised log-mel power."""

    def __init__(self, cfg: FrontendConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.register_buffer("dft", torch.from_numpy(dft_basis(cfg)[:, None, :]))
        fb = mel_filters(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.fmin, cfg.fmax)
        self.register_buffer("mel", torch.from_numpy(fb))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = nn.functional.conv1d(wave[:, None, :], self.dft, stride=self.cfg.hop)[..., : self.cfg.frames]
        half = spec.shape[1] // 2
        power = spec[:, :half] ** 2 + spec[:, half:] ** 2  # [b, bins, frames]
        mel = torch.matmul(self.mel, power)  # [b, n_mels, frames]
        return ((torch.log(mel + 1e-6) - self.cfg.mean) / self.cfg.std)[:, None]
