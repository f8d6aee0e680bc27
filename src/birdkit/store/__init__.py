"""The embedding store and what reads and writes it: Parquet shards (:mod:`.shards`), the typed metadata
(:mod:`.meta`), the embed stage (:mod:`.embed`) and the pseudo-labels kept beside the rows (:mod:`.labels`)."""

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
