"""Soundscape self-training (noisy student, BirdCLEF 2024-25's winners): train on the clips plus unlabelled
soundscape rows with soft pseudo-labels, then relabel the soundscapes with the trained head and train again.

Round 0 is the head trained on the clips alone. Round 1's soundscape targets come from the surrogate, the
encoder's own logits mapped to the competition species: σ(logit) ** power. Round r > 1's come from round r-1's
head (its output plus the encoder's logits, for a residual head), with the same power transform. The student
is noisy where the config says so (``mixup``, ``feature_noise``, mlp ``dropout``): without any noise it only
distils its teacher, and a warning says so. The clips keep their labels (equations 1-4).

Every round picks its epoch on labelled soundscapes (``validation``, a `birdkit mix` set), never on the
pseudo-labels, and the round that scores highest there ships (ties: the earlier round; round 0 competes, so
self-training that does not help is not kept). ``out/round<r>/`` holds each round's model folder; ``out/`` the
chosen one, its card's ``metrics.selftrain`` the per-round scores. A rerun reuses every round whose card
records the same settings (an interrupted run resumes at the first round not finished).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from birdkit.errors import OptionError
from birdkit.heads import model as heads
from birdkit.heads.card import CARD, ModelCard, ModelError, TrainConfig
from birdkit.heads.residual import store_base
from birdkit.heads.targets import soft_targets
from birdkit.heads.train import train_head
from birdkit.io import atomic_write_bytes, atomic_write_json
from birdkit.store import Embeddings, load

log = logging.getLogger(__name__)

ROUND_FILES = (heads.WEIGHTS, "per_species_val.csv")


def head_probs_targets(model_dir: str | Path, emb: Embeddings, power: float) -> np.ndarray:
    """A trained head's soft targets on a store's rows: σ(head (+ the encoder's logits)) ** power."""
    head, card = heads.load_head(model_dir)
    logits = heads.predict_logits(head, emb.embeddings)
    if heads.is_residual(card.head):
        logits = logits + store_base(emb)
    return soft_targets(logits, power)


def _settings(
    config: TrainConfig, r: int, power: float, sound: Embeddings, targets: np.ndarray | None
) -> dict[str, Any]:
    """What makes a round's result: a finished round with the same settings (and the same soundscape targets,
    so a teacher that changed retrains its student) is reused on a rerun."""
    digest = None if targets is None else hashlib.sha256(np.ascontiguousarray(targets).tobytes()).hexdigest()
    return {
        "targets_sha256": digest,
        "round": r,
        "power": None if r == 0 else float(power),  # round 0 has no soundscape targets: any power reuses it
        "teacher": "none" if r == 0 else "surrogate" if r == 1 else f"round {r - 1}",
        "soundscapes": Path(sound.root).name,
        "soundscape_windows": len(sound),
        "config": config.to_json(),
    }


def _finished(folder: Path, settings: dict[str, Any]) -> ModelCard | None:
    try:
        card = ModelCard.read(folder / CARD)
    except (OSError, ModelError):
        return None
    done = all((folder / f).exists() for f in ROUND_FILES)
    return (
        card if done and card.hyperparameters.get("selftrain") == json.loads(json.dumps(settings)) else None
    )


def self_train(
    train_store: str | Path | Embeddings,
    soundscape_store: str | Path | Embeddings,
    out: str | Path,
    config: TrainConfig,
    *,
    validation: tuple[str | Path | Embeddings, pd.DataFrame],
    rounds: int = 2,
    power: float = 1.0,
    exclude_files: set[str] | frozenset[str] = frozenset(),
    test: tuple[str | Path | Embeddings, pd.DataFrame] | None = None,
    name: str | None = None,
    progress: bool = False,
) -> ModelCard:
    """Rounds 0..``rounds`` of self-training (see the module text); write ``out`` and return the chosen card."""
    if rounds < 1:
        raise OptionError(f"--rounds {rounds}: must be 1 or more (round 0, the clips alone, always runs)")
    if not (power > 0 and np.isfinite(power)):
        raise OptionError(f"--power {power}: must be a positive number (1: the probabilities as they are)")
    if validation is None:
        raise OptionError(
            "self-training needs labelled soundscapes to choose epochs and rounds on (--validation-store); "
            "make a set with `birdkit mix`"
        )
    if not (config.mixup or config.feature_noise or config.dropout):
        log.warning("self-training without --mixup, --feature-noise or --dropout: the student is not noisy")
    emb = train_store if isinstance(train_store, Embeddings) else load(train_store)
    sound = soundscape_store if isinstance(soundscape_store, Embeddings) else load(soundscape_store)
    out = Path(out)
    name = name or out.name
    v_store, v_truth = validation
    inputs = {  # what else a finished round depends on: the validation set and the clips left out
        "validation": f"{Path(v_store.root if isinstance(v_store, Embeddings) else v_store).name}:{len(v_truth)}",
        "excluded_sha256": hashlib.sha256("\n".join(sorted(exclude_files)).encode()).hexdigest(),
    }
    history: list[dict[str, Any]] = []
    cards: list[ModelCard] = []
    targets: np.ndarray | None = None
    for r in range(rounds + 1):
        folder = out / f"round{r}"
        if r == 1:
            targets = soft_targets(sound.logits, power)
        elif r > 1:
            targets = head_probs_targets(out / f"round{r - 1}", sound, power)
        settings = {**_settings(config, r, power, sound, targets), **inputs}
        card = _finished(folder, settings)
        if card is None:
            card = train_head(
                emb,
                folder,
                config,
                test=test,
                name=name,
                progress=progress,
                exclude_files=exclude_files,
                validation=validation,
                soundscapes=None if targets is None else (sound, targets),
            )
            card.hyperparameters["selftrain"] = settings
            atomic_write_json(folder / CARD, card.to_json())  # last: a round without it reruns
        cards.append(card)
        history.append(_round_row(r, settings["teacher"], card, targets))
    best = max(range(len(cards)), key=lambda i: (_val(cards[i]), -i))
    chosen = cards[best]
    chosen.metrics["selftrain"] = {"rounds": history, "chosen": best, "power": float(power)}
    _publish(out / f"round{best}", out, chosen)
    return ModelCard.read(out / CARD)


def _val(card: ModelCard) -> float:
    v = (card.metrics.get("val") or {}).get("roc_auc")
    return -np.inf if v is None else float(v)


def _round_row(r: int, teacher: str, card: ModelCard, targets: np.ndarray | None) -> dict[str, Any]:
    row: dict[str, Any] = {
        "round": r,
        "teacher": teacher,
        "val_roc_auc": (card.metrics.get("val") or {}).get("roc_auc"),
        "best_epoch": card.metrics.get("best_epoch"),
        "mean_target": None if targets is None else round(float(targets.mean()), 6),
    }
    if "test" in card.metrics:
        row["test_roc_auc"] = card.metrics["test"].get("roc_auc")
    return row


def _publish(src: Path, out: Path, card: ModelCard) -> None:
    """The chosen round's files into ``out`` (atomically each; the card last, so a reader never sees a card
    ahead of its weights)."""
    for f in ROUND_FILES:
        atomic_write_bytes(out / f, (src / f).read_bytes())
    atomic_write_json(out / CARD, card.to_json())
