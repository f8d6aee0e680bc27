"""The embedding store: a folder of Parquet shards, one row per 5 s chunk, written atomically.

Layout of a store folder (one split of one encoder)::

    _meta.json                 encoder, version, window scheme, species order, unmapped species
    part-00000-<id>.parquet    rows; each shard is written to a .tmp name and renamed into place
    errors-<id>.json           files that could not be embedded, with the reason (not retried on resume)
    labels.parquet             written later by `birdkit label`

A file's rows always land in one shard, and a shard appears only once complete, so a killed run resumes by
skipping the files that completed shards (and error records) already name: no duplicate, no missing row.
Paths are stored relative to the split folder, never as local absolute paths.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from birdkit.errors import BirdkitError
from birdkit.io import atomic_write_json
from birdkit.store.meta import StoreMeta

META = "_meta.json"
ROW_COLUMNS = ["row_id", "file", "split", "primary_label", "secondary_labels", "start_s", "end_s"]


class StoreError(BirdkitError):
    """A store folder that is missing, foreign or inconsistent; the message names it and the fix."""


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
    """Writer and resume bookkeeping for one store folder."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    @property
    def meta_path(self) -> Path:
        return self.root / META

    def open(self, meta: StoreMeta) -> None:
        """Create the folder, or check that an existing one was written with the same encoder and species."""
        self.root.mkdir(parents=True, exist_ok=True)
        if self.meta_path.exists():
            old = read_meta(self.root).identity()
            new = meta.identity()
            for key in new:
                if old.get(key) != new[key]:
                    raise StoreError(
                        f"{self.root}: holds a store written with a different {key} "
                        f"({_short(old.get(key))} vs {_short(new[key])}); give another --out folder "
                        "or delete this one"
                    )
            return
        atomic_write_json(self.meta_path, meta.to_json())

    def shards(self) -> list[Path]:
        return sorted(self.root.glob("part-*.parquet"))

    def done_files(self) -> set[str]:
        """Files already in a complete shard or recorded as errors."""
        done: set[str] = set()
        for p in self.shards():
            done.update(pq.read_table(p, columns=["file"]).column("file").unique().to_pylist())
        for p in self.root.glob("errors-*.json"):
            done.update(e["file"] for e in json.loads(p.read_text()))
        return done

    def errors(self) -> list[dict]:
        out: list[dict] = []
        for p in sorted(self.root.glob("errors-*.json")):
            out.extend(json.loads(p.read_text()))
        return out

    def write_shard(self, files: Iterable[FileRows], errors: Iterable[dict] = ()) -> Path | None:
        """Write one shard of whole files (and their error records) atomically."""
        files = list(files)
        errors = list(errors)
        sid = uuid.uuid4().hex[:8]
        path = None
        if files:
            path = self.root / f"part-{len(self.shards()):05d}-{sid}.parquet"
            table = rows_table(files)
            tmp = path.with_name(f".{path.name}.tmp")
            pq.write_table(table, tmp, compression="zstd")
            os.replace(tmp, path)
        if errors:
            atomic_write_json(self.root / f"errors-{sid}.json", errors)
        return path


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
    root = Path(root)
    meta = read_meta(root)
    shards = sorted(root.glob("part-*.parquet"))
    if not shards:
        raise StoreError(f"{root}: store has no rows yet; run `birdkit embed` (it resumes where it stopped)")
    table = pa.concat_tables([pq.read_table(p) for p in shards])
    order = np.lexsort(
        (table.column("start_s").to_numpy(), table.column("file").to_numpy(zero_copy_only=False))
    )
    table = table.take(pa.array(order))
    frame = table.select(ROW_COLUMNS).to_pandas()
    emb = _to_matrix(table.column("embedding"))
    logits = _to_matrix(table.column("logits"))
    if frame["row_id"].duplicated().any() and frame[["file", "row_id"]].duplicated().any():
        raise StoreError(f"{root}: duplicate rows; delete the store and run `birdkit embed` again")
    return Embeddings(frame.reset_index(drop=True), emb, logits, meta, root)


def read_meta(root: str | Path) -> StoreMeta:
    """A store's ``_meta.json``, whichever birdkit version wrote it."""
    path = Path(root) / META
    if not path.exists():
        raise StoreError(f"{root}: not an embedding store (no {META}); create one with `birdkit embed`")
    try:
        return StoreMeta.read(path)
    except (ValueError, TypeError) as exc:
        raise StoreError(
            f"{path}: unreadable store metadata ({exc}); delete the store and run `birdkit embed`"
        ) from exc


def _to_matrix(col: pa.ChunkedArray) -> np.ndarray:
    arr = col.combine_chunks()
    width = arr.type.list_size
    return arr.values.to_numpy(zero_copy_only=False).reshape(-1, width).astype(np.float32, copy=False)


def _short(v: object) -> str:
    s = json.dumps(v)
    return s if len(s) < 60 else s[:57] + "..."
