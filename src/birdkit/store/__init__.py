"""The embedding store and what reads and writes it: Parquet shards (:mod:`.shards`) in a folder or at a URL
(:mod:`.fs`), the typed metadata (:mod:`.meta`), the one-writer lock (:mod:`.lock`), the embed stage
(:mod:`.embed`) with its per-file work (:mod:`.filejob`) run locally or on Dask (:mod:`.dask_engine`), and the
pseudo-labels kept beside the rows (:mod:`.labels`)."""

from birdkit.store.meta import StoreMeta
from birdkit.store.shards import (
    META,
    ROW_COLUMNS,
    Embeddings,
    EmbeddingStore,
    FileRows,
    StoreError,
    load,
    read_meta,
    rows_table,
)

__all__ = [
    "META",
    "ROW_COLUMNS",
    "Embeddings",
    "EmbeddingStore",
    "FileRows",
    "StoreError",
    "StoreMeta",
    "load",
    "read_meta",
    "rows_table",
]
