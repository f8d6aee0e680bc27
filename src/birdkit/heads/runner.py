"""Exported heads at inference time: TFLite head runners and the exported model folder they come from.

The exported dataset (``birdkit export``) holds ``heads/<name>.tflite`` (embeddings [B, D] float32 -> logits
[B, len(card.species)]) beside its model card ``heads/<name>.json``, the built-in encoders' model files under
``encoders/<encoder>/`` (BirdNET), and compiled encoders as ``encoders/<name>.tflite`` + sidecar ``<name>.json``.
This module reads that layout; it never imports torch or TensorFlow, so the Kaggle notebook needs only a TFLite
runtime.

A head runner keeps one interpreter for its whole life, resized once to a fixed batch: resizing is what makes a
TFLite invoke slow, and inference sees every row count from 1 to a few hundred.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from birdkit import runtime
from birdkit.encoders.registry import exported_model
from birdkit.errors import BirdkitError
from birdkit.heads.card import ModelCard, ModelError

log = logging.getLogger(__name__)

HEAD_BATCH = 256


class ModelsError(BirdkitError, FileNotFoundError):
    """An exported model folder that lacks something or holds what does not fit; the message names the path
    and the fix."""


@dataclass(frozen=True)
class HeadInfo:
    """One exported head: where its graph is and its model card (picklable, sent to workers)."""

    name: str
    path: Path
    card: ModelCard


@dataclass(frozen=True)
class ModelSet:
    """What an exported model folder offers: its heads, and encoder model files by encoder name."""

    root: Path
    heads: list[HeadInfo] = field(default_factory=list)
    # built-in encoders' model files, encoders/<name>/*.tflite (BirdNET)
    encoder_files: dict[str, Path] = field(default_factory=dict)
    # `birdkit compile` graphs, encoders/<name>.tflite beside their <name>.json sidecar
    compiled: dict[str, Path] = field(default_factory=dict)


def load_models(root: str | Path) -> ModelSet:
    """Read an exported dataset folder (``heads/``, ``encoders/``); raise ModelsError saying what to do."""
    root = Path(root)
    if not root.is_dir():
        raise ModelsError(f"{root}: not a folder. Give the exported model folder made by `birdkit export`.")
    heads: list[HeadInfo] = []
    for graph in sorted((root / "heads").glob("*.tflite")):
        card_path = graph.with_suffix(".json")
        if not card_path.exists():
            raise ModelsError(
                f"{graph}: no model card {card_path.name} beside it; re-export with `birdkit export`"
            )
        heads.append(HeadInfo(graph.stem, graph, _read_card(card_path)))
    encoders: dict[str, Path] = {}
    for d in sorted(p for p in (root / "encoders").glob("*") if p.is_dir()):
        model = exported_model(d)
        if model is not None:
            encoders[d.name] = model
    compiled = {
        g.stem: g for g in sorted((root / "encoders").glob("*.tflite")) if g.with_suffix(".json").exists()
    }
    if not heads and not encoders and not compiled:
        hint = (
            "it looks like a trained model folder (head.pt, card.json): export it first with `birdkit export`"
            if (root / "card.json").exists() or any(root.glob("*/card.json"))
            else "expected heads/<name>.tflite + heads/<name>.json and/or encoders/<name>/*.tflite"
        )
        raise ModelsError(f"{root}: no exported heads or encoders; {hint}")
    return ModelSet(root, heads, encoders, compiled)


def _read_card(path: Path) -> ModelCard:
    try:
        card = ModelCard.read(path)
    except ModelError as exc:  # an exported card: the fix is to export again, not to retrain
        raise ModelsError(
            f"{path}: not a model card ({exc.__cause__}); re-export with `birdkit export`"
        ) from exc
    if not card.species:
        raise ModelsError(f"{path}: the card lists no species; re-export with `birdkit export`")
    return card


class HeadRunner:
    """A TFLite head with one long-lived interpreter at a fixed batch: embeddings [n, D] -> logits [n, S]."""

    def __init__(self, path: str | Path, batch_size: int = HEAD_BATCH, num_threads: int = 1) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise ModelsError(f"{self.path}: head graph missing; re-export with `birdkit export`")
        self._runner = runtime.FixedBatchRunner(self.path, batch_size, num_threads=num_threads)
        self.input_dim = int(self._runner.input_shape[-1])
        self.batch_size = self._runner.batch_size
        self.output_dim = int(self._runner.output_shapes[0][-1])

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        x = np.asarray(embeddings, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.input_dim:
            raise ModelsError(
                f"{self.path}: expects embeddings [n, {self.input_dim}], got {list(x.shape)}; export the head "
                "again from a store of its encoder"
            )
        return self._runner.run(x)[0]
