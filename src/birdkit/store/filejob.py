"""The per-file work of `birdkit embed`, shared by every engine: build an encoder once per process (or per
worker thread), then turn one audio file into its store rows with :func:`birdkit.encode.encode_file`. The local
pool and a Dask cluster run exactly this code, so their stores hold the same rows and the same values."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from birdkit.audio import AudioError
from birdkit.encode import encode_file
from birdkit.encoders import Encoder, competition_logits, get_encoder
from birdkit.store.shards import FileRows

EncoderState = tuple[Encoder, np.ndarray]  # the encoder and its competition-species index


@dataclass(frozen=True)
class FileJob:
    """One audio file to embed: where to read it and what its rows record."""

    path: str  # where a worker reads it (a path every worker can see)
    file: str  # relative to the split folder: what the store records
    split: str
    primary: str | None
    secondary: tuple[str, ...]


def load_encoder(encoder_name: str, options: dict, index: np.ndarray) -> EncoderState:
    return get_encoder(encoder_name, **options), index


def encode_job(state: EncoderState, job: FileJob) -> FileRows | dict:
    """The file's rows, or an error record naming it when it is not readable audio."""
    enc, index = state
    try:
        ef = encode_file(enc, job.path)
    except AudioError as exc:
        return {"file": job.file, "error": exc.reason}
    out = ef.outputs
    return FileRows(
        file=job.file,
        split=job.split,
        row_ids=ef.row_ids,
        # a copy: a runtime may hand back views of its own buffers, which a result kept on a Dask worker (or
        # in a pending shard) must not pin while the next file runs
        embeddings=np.array(out.embeddings, dtype=np.float32, copy=True),
        logits=competition_logits(out.logits_or_empty(), index),  # a new array already
        primary_label=job.primary,
        secondary_labels=list(job.secondary),
        duration_s=ef.duration_s,
    )
