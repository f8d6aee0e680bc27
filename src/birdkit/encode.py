"""One audio file through one encoder: the per-file path `birdkit embed` runs in each worker.

Kept apart from the store so that any engine (local processes, a Dask cluster) runs exactly the same code
per file, and so that memory and speed work on it serve every engine.
"""

from __future__ import annotations

from dataclasses import dataclass

from birdkit.audio import load_chunks
from birdkit.encoders.base import Encoder, EncoderOutputs


@dataclass
class EncodedFile:
    """A file's competition rows and the encoder's outputs for them, row-aligned."""

    row_ids: list[str]
    outputs: EncoderOutputs
    duration_s: float


def encode_file(encoder: Encoder, path: str) -> EncodedFile:
    """Decode, resample, chunk and encode one file; raises AudioError for a file that is not audio."""
    cf = load_chunks(path, encoder.sample_rate)
    return EncodedFile(cf.row_ids, encoder.embed(cf.chunks), cf.duration_s)
