"""What a store records about itself (``_meta.json``), as a typed record with a schema version.

Stores written by earlier birdkit versions (format 1, a plain dict) load unchanged: missing fields take their
defaults, unknown ones are kept in ``extra`` and written back.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from birdkit.encoders.base import encoder_name
from birdkit.errors import BirdkitError

SCHEMA_VERSION = 2


class StoreError(BirdkitError):
    """A store folder that is missing, foreign or inconsistent; the message names it and the fix."""


@dataclass(frozen=True)
class StoreMeta:
    """One store: which encoder made its rows, over which species, for which split."""

    encoder: dict[str, Any]  # the encoder's describe(): name, version, windows, runtime, ...
    embedding_dim: int
    species: list[str]  # competition species order: the logits columns
    split: str
    unmapped_species: list[str] = field(default_factory=list)  # species the encoder cannot predict
    logits_source: str = ""  # the encoder whose logits the store holds
    logits_index: list[int] | None = None  # competition species -> encoder class (-1: unmapped)
    format: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def encoder_name(self) -> str:
        return encoder_name(self.encoder)

    def identity(self) -> dict[str, Any]:
        """What must match for a run to resume into this store: the encoder's name, version and windows (not
        how it ran: BirdNET's fast and full-graph paths agree to 1e-4), the species, split and width."""
        enc = {k: self.encoder.get(k) for k in ("name", "version", "windows")}
        return {
            "encoder": enc,
            "species": self.species,
            "split": self.split,
            "embedding_dim": self.embedding_dim,
        }

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        return {**extra, **d}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> StoreMeta:
        """Any version's record: format 1 had no ``format`` key (and older stores a bare encoder name)."""
        own = {f.name for f in fields(cls)} - {"extra"}
        values = {"format": 1}
        values.update((k, v) for k, v in d.items() if k in own)
        if not isinstance(values.get("encoder"), dict):
            values["encoder"] = {"name": encoder_name(values.get("encoder"))}
        return cls(**values, extra={k: v for k, v in d.items() if k not in own})

    @classmethod
    def read(cls, path: str | Path) -> StoreMeta:
        """``_meta.json`` as written by this or any earlier birdkit."""
        return cls.parse(Path(path).read_bytes(), str(path))

    @classmethod
    def parse(cls, data: bytes, where: str) -> StoreMeta:
        """The record in ``data`` (the bytes of ``where``); a damaged file is a :class:`StoreError` naming it."""
        try:
            d = json.loads(data)
            if not isinstance(d, dict):
                raise TypeError(f"a JSON {type(d).__name__}, not an object")
            return cls.from_json(d)
        except (ValueError, TypeError) as exc:
            raise StoreError(
                f"{where}: unreadable store metadata ({exc}); the store's rows cannot be trusted without it: "
                "delete the store folder and run `birdkit embed` again"
            ) from exc
