"""A trained head's typed records: how it was trained (:class:`TrainConfig`) and what it is
(:class:`ModelCard`, ``card.json``). No torch here: the Kaggle side reads cards too.

Cards written by earlier birdkit versions (plain dicts, no ``format``) load unchanged; unknown keys are kept
in ``extra`` and written back.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from birdkit.encoders.base import encoder_name
from birdkit.store.labels import LabelSpec

SCHEMA_VERSION = 2
CARD = "card.json"
HEAD_KINDS = ("linear", "mlp")
LOSSES = ("bce", "asl", "sigmoidf1", "focal")
MONITORS = ("roc_auc", "f1", "loss")
INITS = ("random", "birdnet")


@dataclass(frozen=True)
class TrainConfig:
    """Every training hyperparameter, in one place: the CLI, the sweep and the card are built from it."""

    loss: str = "asl"
    loss_params: dict[str, Any] = field(default_factory=dict)  # overrides of the loss's defaults
    head: str = "linear"
    hidden: int | None = None
    dropout: float = 0.0
    labels: LabelSpec | None = None  # None: the store's labels.parquet, else the default LabelSpec
    epochs: int = 20
    batch_size: int | None = None  # None: auto (about 20 steps an epoch, at most the paper's 1,000)
    lr: float = 2e-3
    weight_decay: float = 0.0
    patience: int = 5
    monitor: str = "roc_auc"
    val_fraction: float = 0.2
    seed: int = 0
    threads: int | None = None
    init: str = "random"

    def __post_init__(self) -> None:
        from birdkit.errors import OptionError

        checks = [
            (self.loss.lower() in LOSSES, f"--loss {self.loss!r}: choose one of {', '.join(LOSSES)}"),
            (self.head in HEAD_KINDS, f"--head {self.head!r}: choose one of {', '.join(HEAD_KINDS)}"),
            (self.monitor in MONITORS, f"--monitor {self.monitor!r}: choose one of {', '.join(MONITORS)}"),
            (self.init in INITS, f"--init {self.init!r}: choose one of {', '.join(INITS)}"),
            (0.0 <= self.dropout < 1.0, f"--dropout {self.dropout}: must lie in [0, 1)"),
            (0.0 <= self.val_fraction < 1.0, f"--val-fraction {self.val_fraction}: must lie in [0, 1)"),
            (self.lr > 0 and math.isfinite(self.lr), f"--lr {self.lr}: must be a positive number"),
            (self.patience >= 0, f"--patience {self.patience}: must be 0 (never stop early) or more"),
            (self.batch_size is None or self.batch_size >= 1, f"--batch-size {self.batch_size}: must be >= 1"),
        ]
        for ok, msg in checks:
            if not ok:
                raise OptionError(msg)

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["labels"] = self.labels.to_dict() if self.labels is not None else None
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in d.items() if k in names}
        if isinstance(known.get("labels"), dict):
            known["labels"] = LabelSpec(**known["labels"])
        return cls(**known)


@dataclass
class ModelCard:
    """What a trained (or exported) head is: its species, encoder, shape, training and scores."""

    name: str
    species: list[str]
    encoder: dict[str, Any]  # the store's encoder describe(): name, version, windows, ...
    embedding_dim: int
    head: dict[str, Any]  # the head spec: kind, in_dim, hidden, dropout, out_dim
    loss: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, Any] = field(default_factory=dict)
    hyperparameters: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    data_fingerprint: str = ""
    training_store: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    created_by: str = ""
    output: str = "logits"  # what the head graph ends in: logits (the contract) or probabilities
    tflite: dict[str, Any] | None = None  # written by `birdkit export`: file, parity, output kind
    format: int = SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def encoder_name(self) -> str:
        return encoder_name(self.encoder)

    @property
    def output_kind(self) -> str:
        """``logits`` unless the exported graph already ends in a sigmoid."""
        exported = ((self.tflite or {}).get("output") or {}).get("kind")
        return str(exported or self.output or "logits")

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        extra = d.pop("extra")
        return _strict({**extra, **d})

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ModelCard:
        names = {f.name for f in fields(cls)} - {"extra"}
        known = {k: v for k, v in d.items() if k in names}
        enc = known.get("encoder")
        known["encoder"] = enc if isinstance(enc, dict) else {"name": encoder_name(enc)}
        known.setdefault("format", 1)
        return cls(**known, extra={k: v for k, v in d.items() if k not in names})

    @classmethod
    def read(cls, path: str | Path) -> ModelCard:
        return cls.from_json(json.loads(Path(path).read_text()))


def _strict(obj: Any) -> Any:
    """NaN -> None and numpy scalars -> Python, so card.json stays strict JSON."""
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_strict(v) for v in obj]
    if isinstance(obj, float):
        return None if math.isnan(obj) else obj
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return _strict(obj.item())
    return obj
