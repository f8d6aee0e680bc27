"""A compiled encoder held against the SavedModel it came from: how close its outputs are, and how much faster.

The compiled graph runs the way inference runs it (:class:`birdkit.runtime.FixedBatchRunner`: one interpreter,
fixed batches, the last one zero-padded); the SavedModel runs under TensorFlow with its default thread pools,
which is what "noncompiled" means in the paper's table. The figures land in the sidecar (``record_check``).
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from birdkit import runtime
from birdkit.encoders.classes import output_roles
from birdkit.io import atomic_write_json
from birdkit.package.compile import DEFAULT_SIGNATURE, import_tf
from birdkit.package.errors import CompileError


def signature_runner(
    model: bytes | str | Path, batch_size: int, samples: int, num_threads: int = 1
) -> runtime.FixedBatchRunner:
    """A runner over a compiled encoder's (first) signature at ``batch_size`` rows of ``samples`` each."""
    data = model if isinstance(model, bytes | bytearray) else Path(model).read_bytes()
    interp = runtime.make_interpreter(data, num_threads=num_threads)
    key = next(iter(interp.get_signature_list()))
    return runtime.FixedBatchRunner(interp, batch_size, signature=key, input_shape=(samples,))


def run_signature(
    model: bytes | str | Path, inputs: np.ndarray, batch_size: int = 8, num_threads: int = 1
) -> dict[str, np.ndarray]:
    """Run a compiled encoder over [n, samples] in fixed batches (the last one zero-padded): {output: [n, ...]}."""
    return _outputs(signature_runner(model, batch_size, inputs.shape[1], num_threads), inputs)


def _outputs(runner: runtime.FixedBatchRunner, inputs: np.ndarray) -> dict[str, np.ndarray]:
    return dict(zip(runner.output_names, runner.run(np.asarray(inputs, np.float32)), strict=True))


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
    the SavedModel with TensorFlow's default thread pools.
    """
    tflite = Path(tflite)
    card_path = tflite.with_suffix(".json")
    roles = output_roles(dict.fromkeys(_load_json(card_path)["outputs"])) if card_path.exists() else {}
    ref, call = run_saved_model(saved_model, inputs, signature, batch_size)
    runner = signature_runner(tflite, batch_size, inputs.shape[1], num_threads)
    got = _outputs(runner, inputs)
    if set(got) != set(ref):
        raise CompileError(f"{tflite}: outputs {sorted(got)} differ from the SavedModel's {sorted(ref)}")
    batch = np.ascontiguousarray(inputs[:batch_size], dtype=np.float32)
    if len(batch) < batch_size:
        batch = np.concatenate([batch, np.zeros((batch_size - len(batch), inputs.shape[1]), np.float32)])
    t_lite = median_seconds(lambda: runner.run(batch), repeats)
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
