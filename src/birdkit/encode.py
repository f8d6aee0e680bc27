"""One audio file through one encoder: the per-file path `birdkit embed` runs in each worker.

Kept apart from the store so that any engine (local processes, a Dask cluster) runs exactly the same code
per file, and so that memory and speed work on it serve every engine.

The file is streamed (:class:`birdkit.audio.ChunkStream`): decoded, resampled and encoded in blocks of
:data:`birdkit.audio.BLOCK_CHUNKS` rows, so a worker's memory does not grow with the file's length; only the
outputs (an embedding and a logit row per 5 s) are gathered. Encoders see whole chunks, so blocks change nothing
in their numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from birdkit.audio import ChunkStream
from birdkit.encoders.base import Encoder, EncoderOutputs


@dataclass
class EncodedFile:
    """A file's competition rows and the encoder's outputs for them, row-aligned."""

    row_ids: list[str]
    outputs: EncoderOutputs
    duration_s: float


def concat_outputs(parts: list[EncoderOutputs]) -> EncoderOutputs:
    """Blocks' outputs, in order, as one file's."""
    if len(parts) == 1:
        return parts[0]
    logits = None if parts[0].logits is None else np.concatenate([p.logits for p in parts])
    return EncoderOutputs(np.concatenate([p.embeddings for p in parts]), logits)


def encode_file(encoder: Encoder, path: str, block_chunks: int | None = None) -> EncodedFile:
    """Decode, resample, chunk and encode one file, block by block; raises AudioError for a file that is not
    audio. ``block_chunks``: rows per block (default :data:`birdkit.audio.BLOCK_CHUNKS`)."""
    stream = ChunkStream(path, encoder.sample_rate, block_chunks)
    parts = [encoder.embed(block.by_rate[encoder.sample_rate]) for block in stream]
    return EncodedFile(stream.row_ids, concat_outputs(parts), stream.duration_s)
