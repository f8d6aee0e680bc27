"""Classification heads on frozen embeddings: embeddings [B, in_dim] float32 -> logits [B, out_dim].

Both kinds are a plain ``nn.Sequential`` of ``nn.Linear``, ``nn.BatchNorm1d``, ``nn.ReLU`` and ``nn.Dropout`` so
that the TFLite converter sees only standard layers; probabilities are ``sigmoid(logits)``, applied outside.

``linear``  Sequential(0: Linear(in_dim, out_dim))
``mlp``     Sequential(0: Linear(in_dim, hidden), 1: BatchNorm1d(hidden), 2: ReLU(), 3: Dropout(dropout),
                       4: Linear(hidden, out_dim))

The indices are the ``state_dict`` keys in ``head.pt`` (``0.weight``, ``0.bias``, ...).
A model folder holds ``head.pt`` (the state_dict) and ``card.json`` (a :class:`~birdkit.heads.card.ModelCard`,
whose ``head`` entry is the spec).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from birdkit.errors import OptionError
from birdkit.heads.card import (
    CARD,
    HEAD_KINDS,
    ModelCard,
    ModelError,
    ModelNotFoundError,
)
from birdkit.heads.card import (
    base_logits as base_logits,  # re-exported: numpy only, so inference needs no torch
)
from birdkit.heads.card import is_residual as is_residual

HIDDEN_SIZES = (64, 128, 256)
WEIGHTS = "head.pt"


def head_spec(kind: str, in_dim: int, out_dim: int, hidden: int | None = None, dropout: float = 0.0) -> dict:
    """The ``head`` entry of a card, validated: what ``build_head`` needs and nothing else."""
    if kind not in HEAD_KINDS:
        raise OptionError(f"--head {kind!r}: unknown head; choose one of {', '.join(HEAD_KINDS)}")
    if kind == "linear":
        hidden, dropout = None, 0.0
    else:
        hidden = 256 if hidden is None else int(hidden)
        if hidden < 1:
            raise OptionError(f"--hidden {hidden}: an mlp head needs 1 or more hidden units")
    if not 0.0 <= dropout < 1.0:
        raise OptionError(f"--dropout {dropout}: must lie in [0, 1)")
    return {
        "kind": kind,
        "in_dim": int(in_dim),
        "hidden": hidden,
        "dropout": float(dropout),
        "out_dim": int(out_dim),
    }


def build_head(spec: dict) -> nn.Module:
    """A freshly initialised head from a spec (a card's ``head``)."""
    kind, d_in, d_out = spec["kind"], int(spec["in_dim"]), int(spec["out_dim"])
    if kind == "linear":
        return nn.Sequential(nn.Linear(d_in, d_out))
    if kind == "mlp":
        h = int(spec["hidden"])
        return nn.Sequential(
            nn.Linear(d_in, h),
            nn.BatchNorm1d(h),
            nn.ReLU(),
            nn.Dropout(float(spec.get("dropout", 0.0))),
            nn.Linear(h, d_out),
        )
    raise ModelError(f"head kind {kind!r}: unknown; choose one of {', '.join(HEAD_KINDS)}")


def zero_last_layer(head: nn.Module) -> dict:
    """The head's state with its last Linear at zero: a residual head starting as passthrough."""
    last = [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.zero_()
    return {k: v.clone() for k, v in head.state_dict().items()}


def load_head(model_dir: str | Path) -> tuple[nn.Module, ModelCard]:
    """The trained head of a model folder, in eval mode, and its card (old dict cards load too)."""
    model_dir = Path(model_dir)
    card_path, weights = model_dir / CARD, model_dir / WEIGHTS
    for p in (card_path, weights):
        if not p.exists():
            raise ModelNotFoundError(
                f"{p}: missing; a model folder is made by `birdkit train EMB_DIR --out {model_dir}`"
            )
    card = ModelCard.read(card_path)
    if card.head.get("kind") not in HEAD_KINDS:
        raise ModelError(
            f"{card_path}: head kind {card.head.get('kind')!r} is not one of {', '.join(HEAD_KINDS)}; "
            "train it again with this birdkit"
        )
    head = build_head(card.head)
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated zip, bad pickle, not a torch file: all one fix
        raise ModelError(
            f"{weights}: not readable head weights ({type(exc).__name__}); train the model again (`birdkit train`)"
        ) from exc
    try:
        head.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"{weights}: does not fit the head in {card_path} ({exc}); train it again") from exc
    head.eval()
    return head, card


@torch.no_grad()
def predict_logits(head: nn.Module, x: np.ndarray, batch_size: int = 8192) -> np.ndarray:
    """Logits [N, out_dim] of a head over embeddings [N, in_dim], in eval mode, batched to bound memory."""
    was_training = head.training
    head.eval()
    x = np.asarray(x, dtype=np.float32)
    # from_numpy shares memory but refuses read-only arrays (stores read zero-copy from Arrow are); copy those.
    as_tensor = torch.from_numpy if x.flags.writeable else torch.tensor
    out = [head(as_tensor(x[i : i + batch_size])).numpy() for i in range(0, len(x), batch_size)]
    head.train(was_training)
    if not out:
        return np.zeros((0, head_out_dim(head)), dtype=np.float32)
    return np.concatenate(out)


def head_out_dim(head: nn.Module) -> int:
    last = [m for m in head.modules() if isinstance(m, nn.Linear)][-1]
    return int(last.out_features)
