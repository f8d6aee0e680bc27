"""StoreMeta: a store's typed record. Stores written before it (format 1, a plain dict) load and resume unchanged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from birdkit import store
from birdkit.store import EmbeddingStore, FileRows, StoreError, StoreMeta

SPECIES = ["a", "b", "c"]
# What `birdkit embed` wrote before StoreMeta existed (format 1), key for key.
FORMAT_1 = {
    "format": 1,
    "encoder": {
        "name": "birdnet",
        "version": "2.4",
        "windows": "paper",
        "runtime": "ai_edge_litert",
        "path": "fast",
    },
    "embedding_dim": 4,
    "species": SPECIES,
    "split": "train_audio",
    "unmapped_species": ["c"],
    "logits_source": "birdnet",
    "logits_index": [10, 20, -1],
}


def _old_store(root, meta: dict) -> None:
    root.mkdir(parents=True)
    (root / store.META).write_text(json.dumps(meta))
    rows = FileRows("a/x.ogg", "train_audio", ["x_5", "x_10"], np.ones((2, 4)), np.zeros((2, 3)), "a")
    EmbeddingStore(root).write_shard([rows])


def test_a_format_1_store_loads_with_typed_fields(tmp_path) -> None:
    _old_store(tmp_path / "old", FORMAT_1)
    e = store.load(tmp_path / "old")
    assert isinstance(e.meta, StoreMeta) and e.meta.format == 1
    assert e.meta.encoder == FORMAT_1["encoder"] and e.meta.encoder_name == "birdnet"
    assert (e.meta.split, e.meta.embedding_dim, e.meta.logits_index) == ("train_audio", 4, [10, 20, -1])
    assert e.meta.unmapped_species == ["c"] and e.species == SPECIES
    assert e.meta.extra == {}
    assert e.meta.to_json() == FORMAT_1  # nothing lost, nothing added


def test_an_older_record_gets_defaults_and_keeps_unknown_keys(tmp_path) -> None:
    """No format, a bare encoder name, no logits index, a key this version does not know."""
    old = {"encoder": "birdnet", "embedding_dim": 4, "species": SPECIES, "split": "train_audio", "note": "x"}
    _old_store(tmp_path / "older", old)
    meta = store.load(tmp_path / "older").meta
    assert meta.format == 1 and meta.encoder == {"name": "birdnet"} and meta.encoder_name == "birdnet"
    assert meta.logits_index is None and meta.unmapped_species == [] and meta.logits_source == ""
    assert meta.extra == {"note": "x"} and meta.to_json()["note"] == "x"


def test_new_records_carry_the_schema_version_and_round_trip() -> None:
    m = StoreMeta(
        encoder={"name": "placeholder", "version": "1"}, embedding_dim=64, species=SPECIES, split="x"
    )
    assert m.format == 2 and StoreMeta.from_json(json.loads(json.dumps(m.to_json()))) == m
    assert not hasattr(m, "get") and not hasattr(m, "__getitem__")  # attributes, not string keys


def test_a_format_1_store_resumes_with_the_same_identity_and_refuses_another(tmp_path) -> None:
    _old_store(tmp_path / "old", FORMAT_1)
    # how BirdNET ran (its fast path or full graph) is not part of the identity
    same = StoreMeta.from_json({**FORMAT_1, "format": 2, "encoder": {**FORMAT_1["encoder"], "path": "full"}})
    EmbeddingStore(tmp_path / "old").open(same)
    assert json.loads((tmp_path / "old" / store.META).read_text()) == FORMAT_1  # left as it was
    centre = StoreMeta.from_json({**FORMAT_1, "encoder": {**FORMAT_1["encoder"], "windows": "centre"}})
    with pytest.raises(StoreError, match="different encoder"):
        EmbeddingStore(tmp_path / "old").open(centre)
    with pytest.raises(StoreError, match="different species"):
        EmbeddingStore(tmp_path / "old").open(StoreMeta.from_json({**FORMAT_1, "species": ["a", "b"]}))


def test_unreadable_metadata_names_the_file_and_the_fix(tmp_path) -> None:
    _old_store(tmp_path / "bad", {"encoder": "birdnet"})  # no species, split or width
    with pytest.raises(StoreError, match="_meta.json: unreadable store metadata"):
        store.load(tmp_path / "bad")
    with pytest.raises(StoreError, match="not an embedding store"):
        store.load(tmp_path / "nothing")
