"""The embedding store and what reads and writes it: Parquet shards (:mod:`.shards`), the embed stage
(:mod:`.embed`) and the pseudo-labels kept beside the rows (:mod:`.labels`)."""

from birdkit.store.shards import (
    META,
    ROW_COLUMNS,
    Embeddings,
    EmbeddingStore,
    FileRows,
    StoreError,
    load,
    rows_table,
)

__all__ = ["META", "ROW_COLUMNS", "Embeddings", "EmbeddingStore", "FileRows", "StoreError", "load", "rows_table"]
