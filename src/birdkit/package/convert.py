"""A trained PyTorch head as a TFLite graph, and the parity check that it still computes the same logits.

Heads are rebuilt in TensorFlow from the PyTorch weights instead of going through ONNX: in eval mode a head is
affine maps and ReLUs, so each BatchNorm folds into its neighbouring Linear (in float64, then float32) and
Dropout vanishes. Every exported head is run through the TFLite runtime against the PyTorch head on real
embeddings (the training store, or a given one) and must agree within ``PARITY_TOL`` x the logit scale.

Torch and TensorFlow are imported inside the functions that need them, never at module import.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from birdkit import runtime
from birdkit.package.compile import import_tf
from birdkit.package.errors import ExportError

if TYPE_CHECKING:
    from birdkit.heads.card import ModelCard

log = logging.getLogger(__name__)

HEAD_INPUT = "embedding"
HEAD_OUTPUT = "logits"
# |TFLite - PyTorch| on logits must stay under PARITY_TOL * max(1, max |logit|): float32 summation order only.
PARITY_TOL = 1e-4
PARITY_ROWS = 1024


@dataclass
class Affine:
    """x -> x @ w + b, with w [in, out] (dense) or a vector [in] (diagonal, a lone BatchNorm), in float64."""

    w: np.ndarray
    b: np.ndarray
    diagonal: bool = False

    def then(self, nxt: Affine) -> Affine:
        """The composition ``nxt(self(x))``."""
        if nxt.diagonal:
            w = self.w * nxt.w if self.diagonal else self.w * nxt.w[None, :]
            return Affine(w, self.b * nxt.w + nxt.b, self.diagonal)
        if self.diagonal:
            return Affine(self.w[:, None] * nxt.w, self.b @ nxt.w + nxt.b)
        return Affine(self.w @ nxt.w, self.b @ nxt.w + nxt.b)


Layer = Affine | str  # "relu"


def fold_head(module: Any) -> list[Layer]:
    """An eval-mode head as affine maps and "relu"s, BatchNorm folded into its neighbours, Dropout dropped."""
    from torch import nn

    def leaves(m: nn.Module) -> Iterable[nn.Module]:
        if isinstance(m, nn.Sequential):
            for child in m:
                yield from leaves(child)
        else:
            yield m

    layers: list[Layer] = []
    for m in leaves(module):
        if isinstance(m, nn.Linear):
            w = m.weight.detach().double().numpy().T
            b = m.bias.detach().double().numpy() if m.bias is not None else np.zeros(w.shape[1])
            step: Layer = Affine(w, b)
        elif isinstance(m, nn.BatchNorm1d):
            step = _folded_batchnorm(m)
        elif isinstance(m, nn.ReLU):
            step = "relu"
        elif isinstance(m, nn.Dropout | nn.Identity):
            continue
        else:
            raise ExportError(
                f"head layer {type(m).__name__} has no TFLite export here; heads are Linear, BatchNorm1d, ReLU, "
                "Dropout (birdkit.heads.build_head)"
            )
        last = layers[-1] if layers else None
        if isinstance(step, Affine) and isinstance(last, Affine) and _worth_merging(last, step):
            layers[-1] = last.then(step)
        else:
            layers.append(step)
    return layers


def _folded_batchnorm(m: Any) -> Affine:
    """An eval-mode BatchNorm1d as a diagonal affine map: its running statistics and scale folded together."""
    if m.running_mean is None or m.running_var is None:
        raise ExportError("BatchNorm1d without running statistics cannot be exported; train with them")
    scale = 1.0 / np.sqrt(m.running_var.detach().double().numpy() + m.eps)
    if m.affine:
        scale = scale * m.weight.detach().double().numpy()
    shift = -m.running_mean.detach().double().numpy() * scale
    if m.affine:
        shift = shift + m.bias.detach().double().numpy()
    return Affine(scale, shift, diagonal=True)


def _worth_merging(a: Affine, b: Affine) -> bool:
    """Merge two adjacent affine maps unless the product matrix is larger than both (a wide bottleneck)."""
    if a.diagonal or b.diagonal:
        return True
    return a.w.shape[0] * b.w.shape[1] <= a.w.size + b.w.size


def head_to_tflite(module: Any, in_dim: int) -> bytes:
    """A head as a TFLite flatbuffer: signature ``serving_default``, input ``embedding`` [B, in_dim] float32
    (dynamic batch), output ``logits``."""
    tf = import_tf()
    layers = fold_head(module)
    consts = [
        (tf.constant(lay.w.astype(np.float32)), tf.constant(lay.b.astype(np.float32)), lay.diagonal)
        if isinstance(lay, Affine)
        else lay
        for lay in layers
    ]

    class Head(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, in_dim], tf.float32, name=HEAD_INPUT)])
        def serve(self, x: Any) -> dict:
            for c in consts:
                if c == "relu":
                    x = tf.nn.relu(x)
                else:
                    w, b, diagonal = c
                    x = x * w + b if diagonal else tf.matmul(x, w) + b
            return {HEAD_OUTPUT: x}

    head = Head()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([head.serve.get_concrete_function()], head)
    return conv.convert()


def tflite_logits(model: bytes | str | Path, x: np.ndarray) -> np.ndarray:
    """Run an exported head over embeddings [n, D] with the TFLite runtime (the one the notebook uses)."""
    interp = runtime.make_interpreter(model if isinstance(model, bytes) else Path(model))
    runner = interp.get_signature_runner("serving_default")
    return np.asarray(runner(**{HEAD_INPUT: np.ascontiguousarray(x, dtype=np.float32)})[HEAD_OUTPUT])


def parity(module: Any, model: bytes | str | Path, x: np.ndarray) -> tuple[float, float]:
    """(max |TFLite - PyTorch| over the logits of ``x``, the tolerance it must meet)."""
    from birdkit.heads.model import predict_logits

    ref = predict_logits(module, np.array(x, dtype=np.float32))
    got = tflite_logits(model, x)
    if got.shape != ref.shape:
        raise ExportError(f"TFLite head output {got.shape} differs from PyTorch {ref.shape}")
    return float(np.abs(got - ref).max()), PARITY_TOL * max(1.0, float(np.abs(ref).max()))


def parity_rows(x: np.ndarray, n: int = PARITY_ROWS) -> np.ndarray:
    """Up to ``n`` rows spread evenly over a store (so every file and species region is represented)."""
    if len(x) <= n:
        return x
    return x[np.linspace(0, len(x) - 1, n).round().astype(int)]


def parity_inputs(
    card: ModelCard, in_dim: int, parity_store: Path | None, loaded: dict[Path, np.ndarray]
) -> tuple[np.ndarray, str]:
    """Real embeddings to check parity on, and where they came from: the given store, else the card's
    training store when it is here. ``loaded`` keeps stores already read (a sweep's heads share one)."""
    from birdkit.store import StoreError, load

    candidates = [parity_store] if parity_store is not None else []
    train = card.training_store.get("path") if isinstance(card.training_store, Mapping) else None
    if parity_store is None and train:
        candidates.append(Path(train))
    for c in candidates:
        if c not in loaded:
            try:
                loaded[c] = parity_rows(load(c).embeddings)
            except StoreError:
                if c is parity_store:
                    raise
                continue
        x = loaded[c]
        if x.shape[1] != in_dim:
            raise ExportError(f"{c}: embeddings are {x.shape[1]}-d, the head takes {in_dim}-d")
        return x, f"store {c.name} ({len(x)} rows)"
    log.warning("no embedding store for parity (pass --parity-store); checking on Gaussian inputs instead")
    rng = np.random.default_rng(0)
    return rng.normal(size=(256, in_dim)).astype(np.float32), "gaussian (256 rows; no store available)"
