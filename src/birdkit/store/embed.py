"""Audio files -> encoder -> embedding store, in parallel, resumable, with a progress bar.

Workers (separate processes, one long-lived encoder each) decode, resample, chunk and encode whole files;
the parent is the only writer and flushes whole files into atomic shards. A bad file becomes an error
record naming it, and the batch goes on; so does a file whose worker process dies each time it is tried
(:func:`birdkit.workers.process_map` rebuilds the pool and tries it once more, alone).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from birdkit.audio import AudioError
from birdkit.competition import Competition
from birdkit.encode import encode_file
from birdkit.encoders import Encoder, competition_logits, get_encoder, species_index, unmapped
from birdkit.store import EmbeddingStore, FileRows
from birdkit.store.meta import StoreMeta
from birdkit.workers import WorkerDied, process_map

log = logging.getLogger(__name__)

FLUSH_FILES = 64  # files per shard: bounds what an interrupt can cost without making thousands of tiny files


@dataclass
class EmbedReport:
    out: Path
    files_done: int
    files_skipped: int
    rows: int
    audio_s: float
    errors: list[dict]
    unmapped: list[str]
    seconds: float


# ---- worker side: fn and setup for birdkit.workers.process_map --------------------------------------------
@dataclass(frozen=True)
class _Job:
    path: str
    file: str  # relative to the split folder: what the store records
    split: str
    primary: str | None
    secondary: tuple[str, ...]


def _load_encoder(encoder_name: str, options: dict, index: np.ndarray) -> tuple[Encoder, np.ndarray]:
    return get_encoder(encoder_name, **options), index


def _encode(state: tuple[Encoder, np.ndarray], job: _Job) -> FileRows | dict:
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
        embeddings=out.embeddings,
        logits=competition_logits(out.logits_or_empty(), index),
        primary_label=job.primary,
        secondary_labels=list(job.secondary),
        duration_s=ef.duration_s,
    )


# ---- parent side -------------------------------------------------------------------------------------------
def _results(jobs: list[_Job], workers: int, setup_args: tuple) -> Iterator[FileRows | dict]:
    """Each job's rows or error record. A file whose worker died each time it ran is recorded as an error;
    any other exception is a bug (in an encoder, say) that would hit every file, so it stops the run."""
    pool_workers = workers if workers > 1 else 0
    results = process_map(
        _encode, jobs, workers=pool_workers, setup=_load_encoder, setup_args=setup_args, key=lambda j: j.file
    )
    for job, r in results:
        if isinstance(r, WorkerDied):
            yield {"file": job.file, "error": "a worker process died each time it embedded this file"}
        elif isinstance(r, BaseException):
            raise r
        else:
            yield r


def embed_split(
    data_dir: str | Path,
    split: str,
    out: str | Path,
    encoder: str = "birdnet",
    encoder_options: dict | None = None,
    workers: int = 1,
    limit: int | None = None,
    progress: bool = True,
    shard_files: int = FLUSH_FILES,
) -> EmbedReport:
    """Embed every audio file of ``split`` into the store at ``out``, skipping files already there."""
    t0 = time.perf_counter()
    comp = Competition(data_dir)
    options = dict(encoder_options or {})
    probe = get_encoder(encoder, **options)
    index = species_index(probe.classes, comp)
    missing = unmapped(comp.species, index)
    if missing:
        log.warning("%s cannot predict %d competition species: %s", encoder, len(missing), ", ".join(missing))
    meta = StoreMeta(
        encoder=probe.describe(),
        embedding_dim=probe.embedding_dim,
        species=comp.species,
        split=split,
        unmapped_species=missing,
        logits_source=encoder,
        logits_index=[int(i) for i in index],
    )
    del probe
    store = EmbeddingStore(out)
    store.open(meta)
    files = comp.audio_files(split)
    if limit is not None:
        files = files[:limit]
    done = store.done_files()
    secondary = comp.secondary_labels if split == "train_audio" else {}
    jobs: list[_Job] = []
    for p in files:
        rel = comp.relative(p, split)
        if rel in done:
            continue
        primary = comp.folder_species(rel) if split == "train_audio" else None
        jobs.append(_Job(str(p), rel, split, primary, tuple(secondary.get(rel, []))))
    skipped = len(files) - len(jobs)

    pending: list[FileRows] = []
    pending_err: list[dict] = []
    errors: list[dict] = []
    rows = 0
    audio_s = 0.0
    bar = tqdm(total=len(jobs), unit="file", desc=f"embed {split}", disable=not progress)
    try:
        for r in _results(jobs, workers, (encoder, options, index)):
            if isinstance(r, dict):
                log.warning("skipping %s: %s", r["file"], r["error"])
                pending_err.append(r)
                errors.append(r)
            else:
                pending.append(r)
                rows += len(r.row_ids)
                audio_s += r.duration_s
            bar.update(1)
            elapsed = max(time.perf_counter() - t0, 1e-9)
            bar.set_postfix(audio_h_per_s=f"{audio_s / 3600 / elapsed:.4f}", rows=rows, errors=len(errors))
            if len(pending) + len(pending_err) >= shard_files:
                store.write_shard(pending, pending_err)
                pending, pending_err = [], []
    finally:
        if pending or pending_err:
            store.write_shard(pending, pending_err)
        bar.close()
    return EmbedReport(
        Path(out), len(jobs), skipped, rows, audio_s, errors, missing, time.perf_counter() - t0
    )
