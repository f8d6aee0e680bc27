"""Compile TensorFlow SavedModel encoders to TFLite, and measure what that costs in accuracy and gains in speed.

This is how the paper made the Bird Vocalization model (Perch) fit Kaggle's CPU budget: 9.4 s -> 1.2 s per
soundscape, by converting it with TFLite, builtin ops first and TensorFlow ("select") ops only where a layer
has no builtin kernel. ``select_tf_ops="auto"`` does exactly that: it tries builtins alone and falls back to
``TFLITE_BUILTINS + SELECT_TF_OPS`` when the converter names ops it cannot lower. A graph with select ops needs
an interpreter linked with the Flex delegate (``tf.lite.Interpreter`` in TensorFlow builds that bundle it, as
Kaggle's image does); ``ai_edge_litert`` and this machine's tensorflow-cpu 2.21 do not, so the sidecar records
it and :mod:`birdkit.encoders.tflite` says so plainly instead of failing deep in the runtime.

``quantize="dynamic"`` is dynamic-range quantisation: weights stored as int8, activations kept float, no
calibration data needed. It shrinks the file about 4x; whether it is faster depends on the kernels (see
``benchmarks/RESULTS.md``).

Next to ``X.tflite`` the compiler writes ``X.json``: the signature (input length, sample rate, output names and
shapes), the conversion options, the sha256, and the check figures when ``check`` ran. Never an absolute path.

TensorFlow is imported only inside these functions (it takes ~10 s), never at module import.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from birdkit.encoders.classes import EMBEDDING_NAMES, LOGITS_NAMES, output_roles
from birdkit.errors import OptionError
from birdkit.io import atomic_write_bytes, atomic_write_json
from birdkit.package.errors import CompileError

log = logging.getLogger(__name__)

QUANTIZE = ("none", "dynamic")
SELECT_TF_OPS = ("auto", "never", "always")
DEFAULT_SIGNATURE = "serving_default"


def import_tf() -> Any:
    """TensorFlow, imported on first use with its C++ start-up chatter silenced (it drowns the CLI output)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf

    return tf


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class CompileResult:
    """What ``compile_saved_model`` wrote and how."""

    path: Path
    size: int
    sha256: str
    quantize: str
    select_tf_ops: bool
    seconds: float
    signature: dict
    flex_ops: list[str] = field(default_factory=list)


def _converter(tf: Any, saved_model: Path, signature: str, quantize: str, select: bool) -> Any:
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model), signature_keys=[signature])
    ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if select:
        ops.append(tf.lite.OpsSet.SELECT_TF_OPS)
    conv.target_spec.supported_ops = ops
    if quantize == "dynamic":
        conv.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative dataset => dynamic range
    return conv


def _needs_select_ops(exc: Exception) -> bool:
    """True when the converter failed because some ops have no TFLite builtin kernel."""
    text = str(exc)
    return any(s in text for s in ("ERROR_NEEDS_FLEX_OPS", "ERROR_NEEDS_CUSTOM_OPS", "Select TensorFlow op"))


def convert_saved_model(
    saved_model: str | Path,
    *,
    signature: str = DEFAULT_SIGNATURE,
    quantize: str = "none",
    select_tf_ops: str = "auto",
) -> tuple[bytes, bool]:
    """SavedModel -> (TFLite flatbuffer, whether select TF ops were needed)."""
    saved_model = Path(saved_model)
    if quantize not in QUANTIZE:
        raise OptionError(f"--quantize must be one of {QUANTIZE}, got {quantize!r}")
    if select_tf_ops not in SELECT_TF_OPS:
        raise OptionError(f"--select-tf-ops must be one of {SELECT_TF_OPS}, got {select_tf_ops!r}")
    if not (saved_model / "saved_model.pb").exists():
        raise CompileError(
            f"{saved_model}: not a TensorFlow SavedModel (no saved_model.pb); give the folder that holds "
            "saved_model.pb and variables/"
        )
    tf = import_tf()
    keys = list(tf.saved_model.load(str(saved_model)).signatures.keys())
    if signature not in keys:
        raise CompileError(f"{saved_model}: no signature {signature!r}; it has {keys}. Pass --signature NAME")
    select = select_tf_ops == "always"
    try:
        return _converter(tf, saved_model, signature, quantize, select).convert(), select
    except Exception as exc:  # the converter raises ConverterError, whose class moves between TF versions
        if select or select_tf_ops == "never" or not _needs_select_ops(exc):
            hint = " (rerun with --select-tf-ops auto)" if _needs_select_ops(exc) else ""
            raise CompileError(
                f"{saved_model}: TFLite conversion failed{hint}: {_last_error_line(exc)}"
            ) from exc
        log.info("%s: builtin ops are not enough, converting with SELECT_TF_OPS", saved_model.name)
    try:
        return _converter(tf, saved_model, signature, quantize, True).convert(), True
    except Exception as exc:
        raise CompileError(
            f"{saved_model}: TFLite conversion failed even with SELECT_TF_OPS: {_last_error_line(exc)}"
        ) from exc


def _last_error_line(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if "error" in ln.lower()]
    return (lines[0] if lines else str(exc).strip().splitlines()[0])[:400]


def flex_ops(model: bytes) -> list[str]:
    """Names of the select-TF (Flex) ops a TFLite graph uses; empty for a builtins-only graph."""
    from birdkit import runtime

    m = runtime.read_model(model)
    names = set()
    for code in m.operatorCodes or []:
        c = code.customCode
        c = c.decode() if isinstance(c, bytes) else c
        if c and c.startswith("Flex"):
            names.add(c)
    return sorted(names)


def signature_info(model: bytes, signature: str | None = None) -> dict:
    """Inputs and outputs of a TFLite graph's signature: {"key", "inputs": {name: shape}, "outputs": {...}}."""
    from birdkit import runtime

    interp = runtime.make_interpreter(model)
    sigs = interp.get_signature_list()
    if not sigs:
        raise CompileError("the TFLite graph has no signature; convert from a SavedModel signature")
    key = signature if signature in sigs else next(iter(sigs))
    runner = interp.get_signature_runner(key)

    def shapes(details: dict) -> dict:
        return {n: [int(s) for s in d.get("shape_signature", d["shape"])] for n, d in details.items()}

    return {
        "key": key,
        "inputs": shapes(runner.get_input_details()),
        "outputs": shapes(runner.get_output_details()),
    }


def compile_saved_model(
    saved_model: str | Path,
    out: str | Path,
    *,
    signature: str = DEFAULT_SIGNATURE,
    quantize: str = "none",
    select_tf_ops: str = "auto",
    sample_rate: int = 32_000,
    classes: list[str] | None = None,
) -> CompileResult:
    """Compile a SavedModel encoder to ``out`` (.tflite) and write its sidecar ``out.with_suffix('.json')``.

    The encoder contract is Perch's: float32 audio [B, window samples] at ``sample_rate`` in; outputs named
    ``embedding`` and ``logits`` (or ``label``) out. ``classes`` names the logit columns, for the competition
    species mapping; it lands in the sidecar.
    """
    saved_model, out = Path(saved_model), Path(out)
    if out.suffix != ".tflite":
        raise CompileError(f"{out}: the output must end in .tflite (its card goes beside it as .json)")
    t0 = time.perf_counter()
    data, _ = convert_saved_model(
        saved_model, signature=signature, quantize=quantize, select_tf_ops=select_tf_ops
    )
    seconds = time.perf_counter() - t0
    flex = flex_ops(data)
    sig = _signature_from_saved_model(saved_model, signature) if flex else signature_info(data, signature)
    roles = output_roles(sig["outputs"])
    if "embedding" not in roles:
        raise CompileError(
            f"{saved_model}: signature {signature!r} has outputs {list(sig['outputs'])}; an encoder needs one "
            f"named one of {EMBEDDING_NAMES} (and logits named one of {LOGITS_NAMES})"
        )
    (inp_name, inp_shape), *rest = sig["inputs"].items()
    if rest or len(inp_shape) != 2 or inp_shape[1] <= 0:
        raise CompileError(
            f"{saved_model}: an encoder takes one input [batch, samples] with a fixed sample count; "
            f"signature {signature!r} has {sig['inputs']}"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out, data)
    digest = sha256_bytes(data)
    card = {
        "format": 1,
        "kind": "compiled-encoder",
        "name": out.stem,
        "source": saved_model.name,
        "signature": sig.get("key", signature),
        "input": {"name": inp_name, "shape": inp_shape},
        "outputs": sig["outputs"],
        "roles": roles,
        "sample_rate": int(sample_rate),
        "window_s": inp_shape[1] / float(sample_rate),
        "embedding_dim": int(sig["outputs"][roles["embedding"]][-1]),
        "quantize": quantize,
        "select_tf_ops": bool(flex),
        "flex_ops": flex,
        "sha256": digest,
        "size": len(data),
        "classes": list(classes) if classes is not None else None,
    }
    atomic_write_json(out.with_suffix(".json"), card)
    log.info("%s: %.1f MB, %s, select ops: %s", out.name, len(data) / 1e6, quantize, flex or "none")
    return CompileResult(out, len(data), digest, quantize, bool(flex), seconds, card, flex)


def _signature_from_saved_model(saved_model: Path, signature: str) -> dict:
    """Signature shapes read from the SavedModel, for graphs this machine's interpreters cannot load (Flex)."""
    tf = import_tf()
    fn = tf.saved_model.load(str(saved_model)).signatures[signature]
    _, kwargs = fn.structured_input_signature

    def dims(shape: Any) -> list[int]:
        return [-1 if d is None else int(d) for d in shape.as_list()]

    return {
        "key": signature,
        "inputs": {k: dims(v.shape) for k, v in kwargs.items()},
        "outputs": {k: dims(v.shape) for k, v in fn.structured_outputs.items()},
    }
