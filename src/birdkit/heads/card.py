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

import numpy as np

from birdkit.encoders.base import encoder_name
from birdkit.errors import BirdkitError, OptionError
from birdkit.store.labels import LabelSpec

SCHEMA_VERSION = 2
CARD = "card.json"
HEAD_KINDS = ("linear", "mlp")
LOSSES = ("bce", "asl", "sigmoidf1", "focal")
MONITORS = ("roc_auc", "f1", "loss")
INITS = ("auto", "random", "birdnet")
RESIDUAL = ("auto", "on", "off")


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
        "auto",
        "birdnet: a linear head starts from BirdNET's own classifier rows (it starts as passthrough); "
        "auto: that wherever the store is BirdNET's and the head linear, else random",
        "model",
        choices=INITS,
    )
    residual: str = _option(
        "auto",
        "on: the head learns a correction added to the encoder's own logits, starting at zero (passthrough) and "
        "kept at zero unless validation says it helps; auto: on where the store has the encoder's logits",
        "model",
        choices=RESIDUAL,
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
    # regularisers the anchors have (BirdNET-Analyzer, perch-hoplite, OpenSoundscape); 0/1/False: off
    label_smoothing: float = _option(0.0, "eps: every target t becomes t (1 - eps) + eps/2 (0: off)")
    mixup: float = _option(
        0.0,
        "alpha: each batch is mixed with a shuffled copy of itself, weight lam ~ Beta(alpha, alpha), in the "
        "embeddings, targets, loss weights and residual base logits alike (0: off)",
    )
    feature_noise: float = _option(
        0.0, "Gaussian noise added to each training embedding, in units of each dimension's std (0: off)"
    )
    weak_negatives: float = _option(
        1.0,
        "w: a 0 in a clip's labels for a species other than its folder species counts with weight w in the "
        "loss (its recordist never said it is absent); 1: every negative counts fully",
    )
    balanced: bool = _option(
        False,
        "class-balanced sampling: each epoch draws its windows with replacement so that every folder species "
        "(and the soundscape rows, as one group) is drawn equally often",
    )

    def __post_init__(self) -> None:
        checks = [
            (self.loss.lower() in LOSSES, f"--loss {self.loss!r}: choose one of {', '.join(LOSSES)}"),
            (self.head in HEAD_KINDS, f"--head {self.head!r}: choose one of {', '.join(HEAD_KINDS)}"),
            (self.monitor in MONITORS, f"--monitor {self.monitor!r}: choose one of {', '.join(MONITORS)}"),
            (self.init in INITS, f"--init {self.init!r}: choose one of {', '.join(INITS)}"),
            (self.residual in RESIDUAL, f"--residual {self.residual!r}: choose one of {', '.join(RESIDUAL)}"),
            (0.0 <= self.dropout < 1.0, f"--dropout {self.dropout}: must lie in [0, 1)"),
            (0.0 <= self.val_fraction < 1.0, f"--val-fraction {self.val_fraction}: must lie in [0, 1)"),
            (self.lr > 0 and math.isfinite(self.lr), f"--lr {self.lr}: must be a positive number"),
            (self.patience >= 0, f"--patience {self.patience}: must be 0 (never stop early) or more"),
            (
                self.batch_size is None or self.batch_size >= 1,
                f"--batch-size {self.batch_size}: must be 1 or more",
            ),
            (self.epochs >= 1, f"--epochs {self.epochs}: must be 1 or more (a head needs one pass at least)"),
            (self.threads is None or self.threads >= 1, f"--threads {self.threads}: must be 1 or more"),
            *_param_checks(self.loss, self.loss_params),
            *self._regulariser_checks(),
        ]
        problems = [msg for ok, msg in checks if not ok]
        if problems:
            raise OptionError("; ".join(problems))

    def _regulariser_checks(self) -> list[tuple[bool, str]]:
        return [
            (
                0.0 <= self.label_smoothing < 0.5,
                f"--label-smoothing {self.label_smoothing}: must lie in [0, 0.5)",
            ),
            (self.mixup >= 0 and math.isfinite(self.mixup), f"--mixup {self.mixup}: must be 0 (off) or more"),
            (
                self.feature_noise >= 0 and math.isfinite(self.feature_noise),
                f"--feature-noise {self.feature_noise}: must be 0 (off) or more",
            ),
            (
                0.0 <= self.weak_negatives <= 1.0,
                f"--weak-negatives {self.weak_negatives}: must lie in [0, 1]",
            ),
        ]

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
    # per-file post-processing chosen on validation (`birdkit tune`), applied by infer/postprocess.py
    postprocess: dict[str, Any] = field(default_factory=dict)
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
        if not d["postprocess"]:  # none chosen: the card reads as cards did before the field existed
            d.pop("postprocess")
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
        try:
            return cls.from_json(json.loads(Path(path).read_text()))
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError, AttributeError) as exc:
            raise ModelError(
                f"{path}: not a model card birdkit can read ({type(exc).__name__}: {exc}); train the model again "
                "(`birdkit train`) or restore the file"
            ) from exc


def is_residual(spec: dict) -> bool:
    """A residual head outputs a correction added to its encoder's own logits (``base_index`` maps each of its
    species to an encoder class, -1: none, base 0): at zero it is passthrough."""
    return spec.get("base_index") is not None


def base_logits(spec: dict, encoder_logits: np.ndarray) -> np.ndarray:
    """[n, out_dim] float64: the encoder's logits for each of the head's species (0 where it has none)."""
    idx = np.asarray(spec["base_index"], dtype=np.int64)
    out = np.zeros((len(encoder_logits), len(idx)), dtype=np.float64)
    ok = idx >= 0
    if len(encoder_logits) and ok.any():
        out[:, ok] = encoder_logits[:, idx[ok]]
    return out


def _param_checks(loss: str, params: dict[str, Any]) -> list[tuple[bool, str]]:
    """Loss parameters are numbers, but sigmoidF1's ``on`` (probability|logits): checked before any data is
    read (which names each loss takes is checked in heads/losses.py)."""
    checks = []
    for k, v in (params or {}).items():
        if k == "on":
            checks.append((v in ("probability", "logits"), f"--param on={v!r}: choose probability or logits"))
        else:
            ok = isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
            checks.append((ok, f"--param {k}={v!r}: loss {loss} takes a number"))
    return checks


def _strict(obj: Any) -> Any:
    """NaN (and inf) -> None and numpy values -> Python, so card.json stays strict JSON: one JSON round trip."""
    return json.loads(json.dumps(obj, default=_plain), parse_constant=lambda _: None)


def _plain(obj: Any) -> Any:
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy scalars and arrays
        return obj.tolist()
    return str(obj)  # a Path or another plain value a card may carry
