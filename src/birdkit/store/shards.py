"""The embedding store: a folder of Parquet shards, one row per 5 s chunk, written atomically.

Layout of a store folder (one split of one encoder)::

    _meta.json                 encoder, version, window scheme, species order, unmapped species
    part-00000-<id>.parquet    rows; each shard is written to a .tmp name and renamed into place
    errors-<id>.json           files that could not be embedded, with the reason (not retried on resume)
    labels.parquet             written later by `birdkit label`
    _lock.json                 while a run writes: its pid and host (:mod:`.lock`)
    _corrupt/                  shards that `birdkit embed --repair` found unreadable, moved out of the way

A file's rows always land in one shard, and a shard appears only once complete (written under a temporary
name, fsynced, renamed), so a killed run resumes by skipping the files that completed shards (and error
records) already name: no duplicate, no missing row. The next run removes the temporary files a kill left.
A shard damaged all the same (a full disk, a copy cut short) is named with the fix, ``embed --repair``.
Paths are stored relative to the split folder, never as local absolute paths. The folder may be a URL
(:mod:`.fs`).
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from birdkit.io import json_bytes
from birdkit.store.fs import StoreFS
from birdkit.store.meta import StoreError, StoreMeta

log = logging.getLogger(__name__)

META = "_meta.json"
CORRUPT = "_corrupt"
ROW_COLUMNS = ["row_id", "file", "split", "primary_label", "secondary_labels", "start_s", "end_s"]
UNREADABLE = (pa.ArrowException, OSError, ValueError)  # what a truncated Parquet or JSON file raises


@dataclass
class FileRows:
    """The rows one encoded file contributes."""

    file: str
    split: str
    row_ids: list[str]
    embeddings: np.ndarray  # [n, D]
    logits: np.ndarray  # [n, S] competition species order
    primary_label: str | None = None
    secondary_labels: list[str] = field(default_factory=list)
    duration_s: float = 0.0


def _schema(dim: int, n_species: int) -> pa.Schema:
    return pa.schema(
        [
            ("row_id", pa.string()),
            ("file", pa.string()),
            ("split", pa.string()),
            ("primary_label", pa.string()),
            ("secondary_labels", pa.list_(pa.string())),
            ("start_s", pa.float32()),
            ("end_s", pa.float32()),
            ("embedding", pa.list_(pa.float32(), dim)),
            ("logits", pa.list_(pa.float32(), n_species)),
        ]
    )


def _fixed(arr: np.ndarray) -> pa.FixedSizeListArray:
    a = np.ascontiguousarray(arr, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), a.shape[1])


class EmbeddingStore:
    """Writer and resume bookkeeping for one store folder (a local path or a URL)."""

    def __init__(self, root: str | Path) -> None:
        self.fs = StoreFS(root)
        self.root = self.fs.root

    def check_folder(self) -> None:
        """Refuse a path that names a file, before anything is written there."""
        if self.fs.is_file():
            raise StoreError(f"{self.root}: is a file, not a store folder; give --out a new or store folder")

    def open(self, meta: StoreMeta) -> None:
        """Create the folder, or check that an existing one was written with the same encoder and species.
        Call it holding the store lock: it removes the temporary files an interrupted run left."""
        self.check_folder()
        self.fs.mkdir()
        for name in self.fs.names(".*.tmp"):
            self.fs.remove(name)
        if self.fs.exists(META):
            old = read_meta(self.root).identity()
            new = meta.identity()
            diffs = [d for key in new for d in _differences(key, old.get(key), new[key])]
            if diffs:
                raise StoreError(
                    f"{self.root}: holds a store written with a different {'; '.join(diffs)}; "
                    "give another --out folder, or delete this one to start again"
                )
            return
        self.fs.write_atomic(META, json_bytes(meta.to_json()))

    def shards(self) -> list[str]:
        return self.fs.names("part-*.parquet")

    def done_files(self, repair: bool = False) -> set[str]:
        """Files already in a complete shard or recorded as errors. An unreadable shard or error record is a
        :class:`StoreError` naming it, or, with ``repair``, moved to ``_corrupt/`` so its files embed again."""
        done: set[str] = set()
        bad: list[str] = []
        for name in self.shards():
            try:
                table = pq.read_table(self.fs.join(name), columns=["file"], filesystem=self.fs.fs)
                done.update(table.column("file").unique().to_pylist())
            except UNREADABLE:
                bad.append(name)
        for name in self.fs.names("errors-*.json"):
            try:
                done.update(e["file"] for e in json.loads(self.fs.read_bytes(name)))
            except (*UNREADABLE, KeyError, TypeError):
                bad.append(name)
        if bad and not repair:
            raise StoreError(_corrupt_message(self.root, bad))
        for name in bad:
            log.warning(
                "%s: moved unreadable %s to %s; its files will be embedded again", self.root, name, CORRUPT
            )
            self.fs.move_aside(name, CORRUPT)
        return done

    def errors(self) -> list[dict]:
        out: list[dict] = []
        for name in self.fs.names("errors-*.json"):
            out.extend(json.loads(self.fs.read_bytes(name)))
        return out

    def write_shard(self, files: Iterable[FileRows], errors: Iterable[dict] = ()) -> str | None:
        """Write one shard of whole files (and their error records), each all or nothing; returns its name."""
        files = list(files)
        errors = list(errors)
        sid = uuid.uuid4().hex[:8]
        name = None
        if files:
            name = f"part-{len(self.shards()):05d}-{sid}.parquet"
            buf = pa.BufferOutputStream()
            pq.write_table(rows_table(files), buf, compression="zstd")
            self.fs.write_atomic(name, buf.getvalue().to_pybytes())
        if errors:
            self.fs.write_atomic(f"errors-{sid}.json", json_bytes(errors))
        return name


def _corrupt_message(root: object, names: list[str]) -> str:
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return (
        f"{root}: {len(names)} unreadable store file(s): {shown} (cut short by a crash, a full disk or a "
        "partial copy?); run the same `birdkit embed` command with --repair: it moves them to "
        f"{root}/{CORRUPT} and embeds their audio files again"
    )


def rows_table(files: list[FileRows]) -> pa.Table:
    """Arrow table of the given files' rows in the store schema."""
    emb = np.concatenate([f.embeddings for f in files])
    logits = np.concatenate([f.logits for f in files])
    cols: dict[str, list] = {c: [] for c in ROW_COLUMNS}
    for f in files:
        n = len(f.row_ids)
        cols["row_id"] += f.row_ids
        cols["file"] += [f.file] * n
        cols["split"] += [f.split] * n
        cols["primary_label"] += [f.primary_label] * n
        cols["secondary_labels"] += [list(f.secondary_labels)] * n
        cols["start_s"] += [5.0 * i for i in range(n)]
        cols["end_s"] += [5.0 * (i + 1) for i in range(n)]
    schema = _schema(emb.shape[1], logits.shape[1])
    arrays = [pa.array(cols[c], type=schema.field(c).type) for c in ROW_COLUMNS]
    return pa.Table.from_arrays([*arrays, _fixed(emb), _fixed(logits)], schema=schema)


@dataclass
class Embeddings:
    """A store read back: row metadata as a DataFrame, arrays aligned with it."""

    frame: pd.DataFrame
    embeddings: np.ndarray
    logits: np.ndarray
    meta: StoreMeta
    root: Path

    @property
    def species(self) -> list[str]:
        return list(self.meta.species)

    def __len__(self) -> int:
        return len(self.frame)


def load(root: str | Path) -> Embeddings:
    """Read every shard of a store, sorted by file and start, with embeddings and logits as arrays."""
    fs = StoreFS(root)
    meta = read_meta(root)
    shards = fs.names("part-*.parquet")
    if not shards:
        raise StoreError(f"{fs}: store has no rows yet; run `birdkit embed` (it resumes where it stopped)")
    tables, bad = [], []
    for name in shards:
        try:
            tables.append(pq.read_table(fs.join(name), filesystem=fs.fs))
        except UNREADABLE:
            bad.append(name)
    if bad:
        raise StoreError(_corrupt_message(fs, bad))
    table = pa.concat_tables(tables)
    order = np.lexsort(
        (table.column("start_s").to_numpy(), table.column("file").to_numpy(zero_copy_only=False))
    )
    table = table.take(pa.array(order))
    frame = table.select(ROW_COLUMNS).to_pandas()
    emb = _to_matrix(table.column("embedding"))
    logits = _to_matrix(table.column("logits"))
    if frame["row_id"].duplicated().any() and frame[["file", "row_id"]].duplicated().any():
        raise StoreError(f"{fs}: duplicate rows; delete the store and run `birdkit embed` again")
    return Embeddings(frame.reset_index(drop=True), emb, logits, meta, fs.root)


def read_meta(root: str | Path) -> StoreMeta:
    """A store's ``_meta.json``, whichever birdkit version wrote it."""
    fs = StoreFS(root)
    if not fs.exists(META):
        raise StoreError(f"{fs}: not an embedding store (no {META}); create one with `birdkit embed`")
    return StoreMeta.parse(fs.read_bytes(META), fs.join(META))


def _to_matrix(col: pa.ChunkedArray) -> np.ndarray:
    arr = col.combine_chunks()
    width = arr.type.list_size
    return arr.values.to_numpy(zero_copy_only=False).reshape(-1, width).astype(np.float32, copy=False)


def _differences(key: str, old: object, new: object) -> list[str]:
    """What differs between a stored identity value and this run's, named down to the differing sub-key, so
    that a long value (an encoder record, a species list) never hides the difference."""
    if isinstance(old, dict) and isinstance(new, dict):
        return [
            d for k in sorted(set(old) | set(new)) for d in _differences(f"{key} {k}", old.get(k), new.get(k))
        ]
    if old == new:
        return []
    if isinstance(old, list) and isinstance(new, list) and len(old) > 3:
        extra, lost = [x for x in new if x not in old], [x for x in old if x not in new]
        if extra or lost:
            detail = f"this run adds {_short(extra)}, lacks {_short(lost)}"
        else:
            detail = "same items in another order"
        return [f"{key} ({len(old)} in the store, {len(new)} in this run: {detail})"]
    return [f"{key} (the store: {_short(old)}, this run: {_short(new)})"]


def _short(v: object) -> str:
    s = json.dumps(v)
    return s if len(s) < 80 else s[:77] + "..."
