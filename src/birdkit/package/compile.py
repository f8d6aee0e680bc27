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
import json
import logging
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from birdkit.errors import BirdkitError
from birdkit.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

QUANTIZE = ("none", "dynamic")
SELECT_TF_OPS = ("auto", "never", "always")
DEFAULT_SIGNATURE = "serving_default"
EMBEDDING_NAMES = ("embedding", "embeddings", "emb")
LOGITS_NAMES = ("logits", "label", "labels", "logit")


class CompileError(BirdkitError):
    """A SavedModel that cannot be compiled as asked; the message names the folder and the fix."""


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
        raise ValueError(f"quantize must be one of {QUANTIZE}, got {quantize!r}")
    if select_tf_ops not in SELECT_TF_OPS:
        raise ValueError(f"select_tf_ops must be one of {SELECT_TF_OPS}, got {select_tf_ops!r}")
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


def output_roles(outputs: dict[str, list[int]]) -> dict[str, str]:
    """Which output is the embedding and which the logits, by name ("embedding", "logits"/"label")."""
    roles: dict[str, str] = {}
    for name in outputs:
        low = name.lower()
        if any(low == n or low.startswith(n + "_") for n in EMBEDDING_NAMES):
            roles.setdefault("embedding", name)
        elif any(low == n or low.startswith(n + "_") for n in LOGITS_NAMES):
            roles.setdefault("logits", name)
    return roles


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


# --- checking a compiled encoder against its SavedModel --------------------------------------------------


def run_signature(
    model: bytes | str | Path, inputs: np.ndarray, batch_size: int = 8, num_threads: int = 1
) -> dict:
    """Run a compiled encoder over [n, samples] in fixed batches (the last one zero-padded): {output: [n, ...]}."""
    from birdkit import runtime

    data = model if isinstance(model, bytes | bytearray) else Path(model).read_bytes()
    interp = runtime.make_interpreter(data, num_threads=num_threads)
    key = next(iter(interp.get_signature_list()))
    runner = interp.get_signature_runner(key)
    (in_name,) = runner.get_input_details()
    buf = np.zeros((batch_size, inputs.shape[1]), dtype=np.float32)
    outs: dict[str, list[np.ndarray]] = {}
    for i in range(0, len(inputs), batch_size):
        k = min(batch_size, len(inputs) - i)
        buf[:k] = inputs[i : i + k]
        buf[k:] = 0.0
        for name, arr in runner(**{in_name: buf}).items():
            outs.setdefault(name, []).append(np.array(arr[:k]))
    return {k: np.concatenate(v) for k, v in outs.items()}


def run_saved_model(
    saved_model: str | Path, inputs: np.ndarray, signature: str = DEFAULT_SIGNATURE, batch_size: int = 8
) -> tuple[dict, Callable[[np.ndarray], dict]]:
    """The reference: the SavedModel's own outputs over [n, samples], and the callable that made them."""
    tf = import_tf()
    fn = tf.saved_model.load(str(saved_model)).signatures[signature]
    (in_name,) = fn.structured_input_signature[1].keys()

    def call(batch: np.ndarray) -> dict:
        return {k: v.numpy() for k, v in fn(**{in_name: tf.constant(batch)}).items()}

    outs: dict[str, list[np.ndarray]] = {}
    for i in range(0, len(inputs), batch_size):
        for name, arr in call(inputs[i : i + batch_size]).items():
            outs.setdefault(name, []).append(arr)
    return {k: np.concatenate(v) for k, v in outs.items()}, call


def agreement(ref: dict[str, np.ndarray], got: dict[str, np.ndarray], roles: dict[str, str]) -> dict:
    """Accuracy of a compiled graph against its reference: per output max/mean abs error and relative error;
    the embedding's worst cosine similarity; the logits' top-1 agreement and top-5 overlap."""
    out: dict[str, dict] = {}
    for name, r in ref.items():
        g = got[name]
        diff = np.abs(g.astype(np.float64) - r.astype(np.float64))
        stats = {
            "max_abs": float(diff.max()),
            "mean_abs": float(diff.mean()),
            "rel_l2": float(np.linalg.norm(g - r) / max(np.linalg.norm(r), 1e-12)),
        }
        if name == roles.get("embedding"):
            cos = (g * r).sum(1) / np.maximum(np.linalg.norm(g, axis=1) * np.linalg.norm(r, axis=1), 1e-12)
            stats["min_cosine"] = float(cos.min())
        if name == roles.get("logits"):
            stats["top1_agree"] = float((g.argmax(1) == r.argmax(1)).mean())
            k = min(5, r.shape[1])
            tg, tr = np.argsort(-g, 1)[:, :k], np.argsort(-r, 1)[:, :k]
            stats["top5_overlap"] = float(
                np.mean([len(set(a) & set(b)) / k for a, b in zip(tg, tr, strict=True)])
            )
        out[name] = stats
    return out


def median_seconds(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after ``warmup`` runs (first invokes allocate)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def check_compiled(
    saved_model: str | Path,
    tflite: str | Path,
    inputs: np.ndarray,
    *,
    signature: str = DEFAULT_SIGNATURE,
    batch_size: int = 8,
    repeats: int = 3,
    num_threads: int = 1,
) -> dict:
    """Compare a compiled encoder with its SavedModel on ``inputs`` [n, samples]: accuracy and median speed.

    Speed is seconds per batch of ``batch_size`` chunks and per 5 s chunk, TFLite at ``num_threads`` threads,
    the SavedModel with TensorFlow's default thread pools (what "noncompiled" means in the paper's table).
    """
    tflite = Path(tflite)
    card_path = tflite.with_suffix(".json")
    roles = output_roles(dict.fromkeys(_load_json(card_path)["outputs"])) if card_path.exists() else {}
    ref, call = run_saved_model(saved_model, inputs, signature, batch_size)
    got = run_signature(tflite, inputs, batch_size, num_threads)
    if set(got) != set(ref):
        raise CompileError(f"{tflite}: outputs {sorted(got)} differ from the SavedModel's {sorted(ref)}")
    batch = np.ascontiguousarray(inputs[:batch_size], dtype=np.float32)
    if len(batch) < batch_size:
        batch = np.concatenate([batch, np.zeros((batch_size - len(batch), inputs.shape[1]), np.float32)])

    from birdkit import runtime

    interp = runtime.make_interpreter(tflite.read_bytes(), num_threads=num_threads)
    runner = interp.get_signature_runner(next(iter(interp.get_signature_list())))
    (in_name,) = runner.get_input_details()
    t_lite = median_seconds(lambda: runner(**{in_name: batch}), repeats)
    t_tf = median_seconds(lambda: call(batch), repeats)
    return {
        "rows": int(len(inputs)),
        "batch_size": batch_size,
        "num_threads": num_threads,
        "accuracy": agreement(ref, got, roles or output_roles(dict.fromkeys(ref))),
        "seconds_per_batch": {"saved_model": t_tf, "tflite": t_lite},
        "seconds_per_chunk": {"saved_model": t_tf / batch_size, "tflite": t_lite / batch_size},
        "speedup": t_tf / t_lite if t_lite > 0 else float("inf"),
        "size_bytes": tflite.stat().st_size,
    }


def _load_json(path: Path) -> dict:
    return json.loads(path.read_text())


def record_check(tflite: str | Path, check: dict) -> None:
    """Store the check figures in the compiled encoder's sidecar."""
    card_path = Path(tflite).with_suffix(".json")
    card = _load_json(card_path)
    card["check"] = check
    atomic_write_json(card_path, card)


# --- a Perch-shaped stand-in -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StandInSpec:
    """Shape of the stand-in encoder: Perch's signature (5 s at 32 kHz in; embedding and logits out), small."""

    sample_rate: int = 32_000
    window_s: float = 5.0
    frame: int = 320  # 10 ms frames, no overlap: [B, 500, 320]
    fft: int = 512
    mels: int = 64
    channels: tuple[int, ...] = (16, 32, 64)
    embedding_dim: int = 128
    n_classes: int = 64
    seed: int = 0
    select_op: bool = (
        False  # add one op that has no TFLite builtin (bicubic resize), to exercise SELECT_TF_OPS
    )


def build_standin_encoder(out: str | Path, spec: StandInSpec = StandInSpec()) -> Path:
    """Write a SavedModel with Perch's contract (``serving_default`` and ``infer_tf``: ``inputs`` [B, 160000]
    float32 -> ``embedding`` [B, E], ``logits`` [B, C]) with fixed random weights.

    Perch itself cannot be downloaded here; this model exercises the same conversion path: an STFT front end
    (RFFT), a log-mel projection, strided convolutions, global pooling and two dense layers.
    """
    tf = import_tf()
    out = Path(out)
    rng = np.random.default_rng(spec.seed)
    n_samples = int(spec.window_s * spec.sample_rate)
    if n_samples % spec.frame:
        raise ValueError(f"window of {n_samples} samples is not a whole number of {spec.frame}-sample frames")
    bins = spec.fft // 2 + 1

    def he(*shape: int, fan_in: int) -> np.ndarray:
        return (rng.normal(size=shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    class StandIn(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.window = tf.constant(np.hanning(spec.frame).astype(np.float32))
            self.mel = tf.Variable(np.abs(rng.normal(size=(bins, spec.mels))).astype(np.float32) / bins)
            chans = (1, *spec.channels)
            self.kernels = [
                tf.Variable(he(3, 3, chans[i], chans[i + 1], fan_in=9 * chans[i]))
                for i in range(len(spec.channels))
            ]
            self.w_emb = tf.Variable(he(chans[-1], spec.embedding_dim, fan_in=chans[-1]))
            self.b_emb = tf.Variable(np.zeros(spec.embedding_dim, np.float32))
            self.w_out = tf.Variable(he(spec.embedding_dim, spec.n_classes, fan_in=spec.embedding_dim))
            self.b_out = tf.Variable(np.full(spec.n_classes, -2.0, np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, n_samples], tf.float32, name="inputs")])
        def infer_tf(self, inputs: Any) -> dict:
            n = tf.shape(inputs)[0]
            frames = tf.reshape(inputs, [n, n_samples // spec.frame, spec.frame]) * self.window
            power = tf.abs(tf.signal.rfft(frames, fft_length=[spec.fft]))
            x = tf.math.log(tf.matmul(power, self.mel) + 1e-3)[..., None]
            if spec.select_op:
                x = tf.image.resize(x, [n_samples // spec.frame, spec.mels], method="bicubic")
            for k in self.kernels:
                x = tf.nn.relu(tf.nn.conv2d(x, k, strides=2, padding="SAME"))
            pooled = tf.reduce_mean(x, axis=[1, 2])
            emb = tf.matmul(pooled, self.w_emb) + self.b_emb
            return {"embedding": emb, "logits": tf.matmul(tf.nn.relu(emb), self.w_out) + self.b_out}

    model = StandIn()
    sig = model.infer_tf.get_concrete_function()
    tf.saved_model.save(model, str(out), signatures={"serving_default": sig, "infer_tf": sig})
    return out


def spec_dict(spec: StandInSpec) -> dict:
    return asdict(spec)
