"""Audio files -> encoder -> embedding store, in parallel, resumable, with a progress bar.

Workers (local processes, or a Dask cluster's: the ``engine``; one long-lived encoder each) decode, resample,
chunk and encode whole files (:mod:`.filejob`); this process holds the store lock, is the only writer and
flushes whole files into atomic shards. A bad file becomes an error record naming it, and the batch goes on;
so does a file whose worker dies each time it is tried (it is tried once more, alone, then recorded).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from birdkit.competition import Competition
from birdkit.encoders import get_encoder, species_index, unmapped
from birdkit.errors import OptionError
from birdkit.store.filejob import FileJob, encode_job, load_encoder
from birdkit.store.lock import StoreLock
from birdkit.store.meta import StoreMeta
from birdkit.store.shards import EmbeddingStore, FileRows
from birdkit.workers import WorkerDied, process_map

log = logging.getLogger(__name__)

FLUSH_FILES = 64  # files per shard: bounds what an interrupt can cost without making thousands of tiny files
ENGINES = ("local", "dask")


@dataclass
class EmbedReport:
    out: Path | str  # a URL for a store not on a local file system
    files_done: int
    files_skipped: int
    rows: int
    audio_s: float
    errors: list[dict]
    unmapped: list[str]
    seconds: float


def _results(
    jobs: list[FileJob], workers: int, setup_args: tuple, engine: str, scheduler: str | None
) -> Iterator[FileRows | dict]:
    """Each job's rows or error record. A file whose worker died each time it ran is recorded as an error;
    any other exception is a bug (in an encoder, say) that would hit every file, so it stops the run."""
    if engine == "dask":
        from birdkit.store.dask_engine import dask_map

        results = dask_map(jobs, setup_args, scheduler=scheduler, workers=workers)
    else:
        pool_workers = workers if workers > 1 else 0
        results = process_map(
            encode_job,
            jobs,
            workers=pool_workers,
            setup=load_encoder,
            setup_args=setup_args,
            key=lambda j: j.file,
        )
    try:
        for job, r in results:
            if isinstance(r, WorkerDied):
                yield {"file": job.file, "error": "a worker process died each time it embedded this file"}
            elif isinstance(r, BaseException):
                raise r
            else:
                yield r
    finally:
        results.close()  # shut the pool or cluster down now, not when the generator is collected


def _check_options(
    workers: int, shard_files: int, limit: int | None, engine: str, scheduler: str | None
) -> None:
    if engine not in ENGINES:
        raise OptionError(f"--engine {engine}: choose one of {', '.join(ENGINES)}")
    if workers < 1:
        raise OptionError(f"--workers {workers}: give 1 or more (processes that run the encoder)")
    if shard_files < 1:
        raise OptionError(f"--shard-files {shard_files}: give 1 or more (files per Parquet shard)")
    if limit is not None and limit < 1:
        raise OptionError(f"--limit {limit}: give 1 or more files, or leave it out for all")
    if scheduler and engine != "dask":
        raise OptionError(f"--scheduler {scheduler}: a Dask scheduler needs --engine dask")


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
    engine: str = "local",
    scheduler: str | None = None,
    wait: bool = False,
    repair: bool = False,
) -> EmbedReport:
    """Embed every audio file of ``split`` into the store at ``out`` (a folder or URL), skipping files already
    there. ``engine="dask"`` runs the files on the Dask scheduler at ``scheduler``, or on a local cluster of
    ``workers`` processes. Another run writing the store is refused, or waited for (``wait``); ``repair`` moves
    unreadable shards aside and embeds their files again."""
    t0 = time.perf_counter()
    _check_options(workers, shard_files, limit, engine, scheduler)
    store = EmbeddingStore(out)
    store.check_folder()
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
    store.fs.mkdir()
    with StoreLock(store.fs, wait=wait):
        store.open(meta)
        files = comp.audio_files(split)
        if limit is not None:
            files = files[:limit]
        done = store.done_files(repair=repair)
        secondary = comp.secondary_labels if split == "train_audio" else {}
        jobs: list[FileJob] = []
        for p in files:
            rel = comp.relative(p, split)
            if rel in done:
                continue
            primary = comp.folder_species(rel) if split == "train_audio" else None
            jobs.append(FileJob(str(p), rel, split, primary, tuple(secondary.get(rel, []))))
        with closing(_results(jobs, workers, (encoder, options, index), engine, scheduler)) as results:
            rows, audio_s, errors = _write(store, results, len(jobs), f"embed {split}", shard_files, progress)
    return EmbedReport(
        store.root,
        len(jobs),
        len(files) - len(jobs),
        rows,
        audio_s,
        errors,
        missing,
        time.perf_counter() - t0,
    )


def _write(
    store: EmbeddingStore,
    results: Iterator[FileRows | dict],
    total: int,
    desc: str,
    shard_files: int,
    progress: bool,
) -> tuple[int, float, list[dict]]:
    """Flush results into shards of ``shard_files`` whole files as they come; rows, audio seconds, errors."""
    pending: list[FileRows] = []
    pending_err: list[dict] = []
    errors: list[dict] = []
    rows = 0
    audio_s = 0.0
    t0 = time.perf_counter()
    bar = tqdm(total=total, unit="file", desc=desc, disable=not progress)
    try:
        for r in results:
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
    return rows, audio_s, errors
