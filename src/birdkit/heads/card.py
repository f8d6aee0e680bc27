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
from birdkit.errors import BirdkitError, OptionError
from birdkit.store.labels import LabelSpec

SCHEMA_VERSION = 2
CARD = "card.json"
HEAD_KINDS = ("linear", "mlp")
LOSSES = ("bce", "asl", "sigmoidf1", "focal")
MONITORS = ("roc_auc", "f1", "loss")
INITS = ("random", "birdnet")


class ModelError(BirdkitError):
    """A model folder that cannot be used; the message names the file and the fix."""


class ModelNotFoundError(ModelError, FileNotFoundError):
    """A model folder without its card or weights."""


def _option(default: Any = None, help: str = "", group: str = "training", **cli: Any) -> Any:
    """A TrainConfig field with its help text and how the CLI offers it (``cli/train.py`` reads these)."""
    meta = {"help": help, "group": group, **cli}
    if callable(default):
        return field(default_factory=default, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    """Every training hyperparameter, in one place: the CLI options, the sweep's runs and the card's
    ``hyperparameters`` are all built from these fields (``group``: which CLI option group offers one;
    ``labels`` comes from `birdkit label`'s options)."""

    loss: str = _option("asl", "the loss, as in the paper's section 5.4", "model", choices=LOSSES)
    loss_params: dict[str, Any] = _option(
        dict,
        "loss parameter, repeatable: asl gamma_pos (1) gamma_neg (4) clip (0.05); "
        "sigmoidf1 S (-30) E (0) on (probability|logits); focal gamma (2) alpha (-1: none)",
        "model",
        flag="--param",
        metavar="KEY=VALUE",
    )
    head: str = _option("linear", "head on the embeddings", "model", choices=HEAD_KINDS)
    hidden: int | None = _option(None, "mlp hidden units (64, 128, 256; default 256)", "model")
    dropout: float = _option(0.0, "mlp dropout", "model")
    init: str = _option(
        "random",
        "linear heads on BirdNET stores: start from BirdNET's own classifier rows",
        "model",
        choices=INITS,
    )
    labels: LabelSpec | None = _option(
        None, "None: the store's labels.parquet, else the default LabelSpec", "labels"
    )
    epochs: int = _option(20, "training epochs; early stopping may end sooner")
    batch_size: int | None = _option(None, "default: n_train/20 within [32, 1000]")
    lr: float = _option(2e-3, "Adam learning rate")
    weight_decay: float = _option(0.0, "Adam weight decay")
    patience: int = _option(5, "epochs without improvement before stopping; 0: never")
    monitor: str = _option("roc_auc", "validation metric that picks the best epoch", choices=MONITORS)
    val_fraction: float = _option(0.2, "share of recordings held out for validation")
    seed: int = _option(0, "seed of the split, the initial weights and the batch order")
    threads: int | None = _option(None, "torch threads (default: 1 for small heads, else min(2, cores))")

    def __post_init__(self) -> None:
        checks = [
            (self.loss.lower() in LOSSES, f"--loss {self.loss!r}: choose one of {', '.join(LOSSES)}"),
            (self.head in HEAD_KINDS, f"--head {self.head!r}: choose one of {', '.join(HEAD_KINDS)}"),
            (self.monitor in MONITORS, f"--monitor {self.monitor!r}: choose one of {', '.join(MONITORS)}"),
            (self.init in INITS, f"--init {self.init!r}: choose one of {', '.join(INITS)}"),
            (0.0 <= self.dropout < 1.0, f"--dropout {self.dropout}: must lie in [0, 1)"),
            (0.0 <= self.val_fraction < 1.0, f"--val-fraction {self.val_fraction}: must lie in [0, 1)"),
            (self.lr > 0 and math.isfinite(self.lr), f"--lr {self.lr}: must be a positive number"),
            (self.patience >= 0, f"--patience {self.patience}: must be 0 (never stop early) or more"),
            (
                self.batch_size is None or self.batch_size >= 1,
                f"--batch-size {self.batch_size}: must be 1 or more",
            ),
        ]
        problems = [msg for ok, msg in checks if not ok]
        if problems:
            raise OptionError("; ".join(problems))

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
