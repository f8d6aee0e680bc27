"""A deterministic, tiny encoder with no model file, so the pipeline's tests run without BirdNET or ../shared.

It has the shape of a real encoder (5 s chunks at its own rate in; an embedding and logits over named classes
out) and carries some signal: the embedding is the log energy in ``bands`` frequency bands over four quarters
of the chunk, and the logits score each class by the energy in its own band, so a head trained on it learns
something. Its classes are the synthetic competition's species (``birdkit.synthetic``) unless given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from birdkit.encoders.base import Capabilities, EncoderOutputs

SAMPLE_RATE = 16_000
CHUNK_S = 5


def _default_classes() -> list[str]:
    from birdkit.synthetic import SPECIES

    return [f"{s.scientific}_{s.common}" for s in SPECIES]


class Placeholder:
    """Band energies as the embedding; each class's band energy against the median as its logit."""

    name = "placeholder"
    version = "1"
    sample_rate = SAMPLE_RATE
    capabilities = Capabilities(cost=0.05)  # an FFT per chunk
    needs_files = False  # exported datasets carry nothing for it

    def __init__(self, bands: int = 16, classes: list[str] | None = None, seed: int = 0) -> None:
        self.bands = int(bands)
        self.embedding_dim = 4 * self.bands
        self.classes = list(classes) if classes is not None else _default_classes()
        rng = np.random.default_rng(seed)
        self._class_band = rng.permutation(np.arange(len(self.classes)) % self.bands)

    @classmethod
    def export_files(cls, **options: Any) -> dict[str, Path]:
        return {}

    def describe(self) -> dict:
        return {"name": self.name, "version": self.version, "bands": self.bands, "path": "numpy"}

    def embed(self, chunks: np.ndarray) -> EncoderOutputs:
        x = np.asarray(chunks, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != CHUNK_S * SAMPLE_RATE:
            raise ValueError(f"placeholder expects chunks [n, {CHUNK_S * SAMPLE_RATE}], got {list(x.shape)}")
        quarters = x.reshape(x.shape[0], 4, -1)
        spec = np.abs(np.fft.rfft(quarters, axis=-1)) ** 2
        edges = np.linspace(0, spec.shape[-1], self.bands + 1).astype(int)
        energy = np.stack(
            [spec[..., a:b].mean(axis=-1) for a, b in zip(edges[:-1], edges[1:], strict=True)], -1
        )
        log_e = np.log10(energy + 1e-10).astype(np.float32)  # [n, 4, bands]
        emb = log_e.reshape(x.shape[0], -1)
        peak = log_e.max(axis=1)  # [n, bands]
        logits = 4.0 * (peak[:, self._class_band] - np.median(peak, axis=1, keepdims=True)) - 2.0
        return EncoderOutputs(emb, logits.astype(np.float32))
