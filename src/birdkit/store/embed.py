"""Audio files -> encoder -> embedding store, in parallel, resumable, with a progress bar.

Workers (separate processes, one long-lived encoder each) decode, resample, chunk and encode whole files;
the parent is the only writer and flushes whole files into atomic shards. A bad file becomes an error
record naming it, and the batch goes on.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from birdkit.audio import AudioError, load_chunks
from birdkit.competition import Competition
from birdkit.encoders import Encoder, competition_logits, get_encoder, species_index, unmapped
from birdkit.store import EmbeddingStore, FileRows

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


# ---- worker side -------------------------------------------------------------------------------------------
_W: dict[str, Any] = {}


def _init_worker(encoder_name: str, options: dict, index: np.ndarray) -> None:
    _W["encoder"] = get_encoder(encoder_name, **options)
    _W["index"] = index


def _encode(job: tuple[str, str, str, str | None, list[str]]) -> FileRows | dict:
    path, rel, split, primary, secondary = job
    enc: Encoder = _W["encoder"]
    try:
        cf = load_chunks(path, enc.sample_rate)
    except AudioError as exc:
        return {"file": rel, "error": exc.reason}
    out = enc.embed(cf.chunks)
    emb, logits = out.embeddings, out.logits_or_empty()
    return FileRows(
        file=rel,
        split=split,
        row_ids=cf.row_ids,
        embeddings=emb,
        logits=competition_logits(logits, _W["index"]),
        primary_label=primary,
        secondary_labels=secondary,
        duration_s=cf.duration_s,
    )


# ---- parent side -------------------------------------------------------------------------------------------
def _results(jobs: list, workers: int, init_args: tuple) -> Iterator[FileRows | dict]:
    if workers <= 1:
        _init_worker(*init_args)
        for j in jobs:
            yield _encode(j)
        return
    ctx = mp.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=init_args) as pool:
        yield from pool.imap(_encode, jobs, chunksize=1)


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
    meta = {
        "encoder": probe.describe(),
        "embedding_dim": probe.embedding_dim,
        "species": comp.species,
        "split": split,
        "unmapped_species": missing,
        "logits_source": encoder,
        "logits_index": [int(i) for i in index],  # competition species -> encoder class (-1: unmapped)
    }
    del probe
    store = EmbeddingStore(out)
    store.open(meta)
    files = comp.audio_files(split)
    if limit is not None:
        files = files[:limit]
    done = store.done_files()
    secondary = comp.secondary_labels if split == "train_audio" else {}
    jobs = []
    for p in files:
        rel = comp.relative(p, split)
        if rel in done:
            continue
        primary = comp.folder_species(rel) if split == "train_audio" else None
        jobs.append((str(p), rel, split, primary, list(secondary.get(rel, []))))
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
