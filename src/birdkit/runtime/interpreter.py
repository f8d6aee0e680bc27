"""Which TFLite interpreter to use, and the one fixed-batch loop every TFLite graph in birdkit runs through.

Preference: ``ai_edge_litert`` (current), then ``tflite_runtime`` (old Kaggle images), then
``tensorflow.lite``. A fresh interpreter's first invoke after a resize is very slow, and steady-state cost barely
depends on the batch size, so :class:`FixedBatchRunner` resizes once to a fixed batch, keeps the interpreter for
its whole life and pads the last batch with zeros.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from birdkit.errors import BirdkitError

log = logging.getLogger(__name__)

_INTERPRETERS = (
    ("ai_edge_litert.interpreter", "Interpreter"),
    ("tflite_runtime.interpreter", "Interpreter"),
    ("tensorflow.lite.python.interpreter", "Interpreter"),  # `tensorflow.lite` alone lacks it in TF 2.21
)

Fill = Callable[..., Any]
"""``fill(rows, out=buffer)``: writes a batch of rows into the interpreter's input tensor (no extra copy)."""


class RuntimeMissing(BirdkitError, ImportError):
    """No TFLite runtime is installed."""


@cache
def interpreter_class() -> tuple[str, type]:
    """(package name, Interpreter class) of the first runtime that imports."""
    errors = []
    for mod, attr in _INTERPRETERS:
        try:
            return mod.split(".")[0], getattr(importlib.import_module(mod), attr)
        except ImportError as exc:
            errors.append(f"{mod}: {exc}")
    raise RuntimeMissing(
        "no TFLite runtime found; `pip install ai-edge-litert` (or tflite-runtime, or tensorflow). Tried: "
        + "; ".join(errors)
    )


def runtime_name() -> str:
    return interpreter_class()[0]


def make_interpreter(model: str | Path | bytes, num_threads: int = 1) -> Any:
    """An Interpreter for a model path or flatbuffer bytes; tensors are allocated by the caller after resize."""
    _, cls = interpreter_class()
    if isinstance(model, bytes | bytearray):
        return cls(model_content=bytes(model), num_threads=num_threads)
    return cls(model_path=str(model), num_threads=num_threads)


def native_quiet() -> bool:
    """Whether the runtime's own C++ INFO lines are hidden: ``TF_CPP_MIN_LOG_LEVEL`` >= 1, TensorFlow's knob,
    which `birdkit` sets unless ``--verbose`` and which LiteRT's logger ignores."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")) >= 1
    except ValueError:
        return False


@contextmanager
def _stderr_hidden() -> Iterator[None]:
    """File descriptor 2 to /dev/null for the duration (C++ writes there directly, past Python's sys.stderr)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real stderr (embedded, closed): nothing to hide
        yield
        return
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def allocate(interpreter: Any) -> None:
    """``allocate_tensors()``, without LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." (printed
    once per process, at the first allocation) unless the runtime's INFO lines are wanted (:func:`native_quiet`).
    Errors still raise as exceptions with their message."""
    if not native_quiet():
        interpreter.allocate_tensors()
        return
    with _stderr_hidden():
        interpreter.allocate_tensors()


def copy_rows(rows: np.ndarray, out: np.ndarray) -> np.ndarray:
    """The default fill: rows as they are."""
    out[...] = rows
    return out


def signature_tensors(interpreter: Any, signature: str) -> tuple[dict[str, int], dict[str, int]]:
    """(input name -> tensor index, output name -> tensor index) of a signature, e.g. ``serving_default``."""
    runner = interpreter.get_signature_runner(signature)
    ins = {k: int(v["index"]) for k, v in runner.get_input_details().items()}
    outs = {k: int(v["index"]) for k, v in runner.get_output_details().items()}
    return ins, outs


class FixedBatchRunner:
    """One interpreter at a fixed batch: rows [n, ...] -> each output [n, ...], in zero-padded batches.

    ``model`` is a path, flatbuffer bytes or a ready interpreter (a TensorFlow one for Flex graphs).
    ``outputs`` names the outputs to return, in order: tensor names, or signature output names when
    ``signature`` is given; by default every output of the graph. ``input_shape`` is one row's shape at the
    graph input (default: the graph's own). A graph whose batch cannot be resized keeps its own batch size.
    """

    def __init__(
        self,
        model: str | Path | bytes | Any,
        batch_size: int,
        *,
        outputs: Sequence[str] | None = None,
        signature: str | None = None,
        input_shape: Sequence[int] | None = None,
        num_threads: int = 1,
    ) -> None:
        self._source = model
        self._num_threads = num_threads
        fresh = isinstance(model, str | Path | bytes | bytearray)
        self.interpreter = make_interpreter(model, num_threads) if fresh else model
        if signature:
            ins, outs = signature_tensors(self.interpreter, signature)
            self._in = next(iter(ins.values()))
        else:
            inp = self.interpreter.get_input_details()[0]
            self._in = int(inp["index"])
            outs = {d["name"]: int(d["index"]) for d in self.interpreter.get_output_details()}
        names = list(outputs) if outputs is not None else list(outs)
        missing = [n for n in names if n not in outs]
        if missing:
            raise KeyError(f"outputs {missing} not in the graph; it has {sorted(outs)}")
        self.output_names = names
        self._outs = [outs[n] for n in names]
        details = {int(d["index"]): d for d in self.interpreter.get_input_details()}
        native = [int(x) for x in details[self._in]["shape"]]
        self.input_shape = (
            tuple(int(x) for x in input_shape) if input_shape is not None else tuple(native[1:])
        )
        self.batch_size = self._resize(batch_size, native, fresh)
        shapes = {int(d["index"]): d["shape"] for d in self.interpreter.get_output_details()}
        self.output_shapes = [tuple(int(x) for x in shapes[i][1:]) for i in self._outs]

    def _resize(self, batch: int, native: list[int], fresh: bool) -> int:
        if native == [batch, *self.input_shape]:
            allocate(self.interpreter)
            return batch
        try:
            self.interpreter.resize_tensor_input(self._in, [batch, *self.input_shape])
            allocate(self.interpreter)
            return batch
        except (RuntimeError, ValueError) as exc:
            if not fresh or native[1:] != list(self.input_shape):
                raise
            log.info("static batch %d kept (%s)", native[0], exc)
            self.interpreter = make_interpreter(self._source, self._num_threads)
            allocate(self.interpreter)
            return native[0]

    def run(self, rows: np.ndarray, fill: Fill = copy_rows) -> list[np.ndarray]:
        """Every requested output for ``rows``, row-aligned; ``fill`` turns rows into graph input in place."""
        m, b = rows.shape[0], self.batch_size
        outs = [np.empty((m, *s), dtype=np.float32) for s in self.output_shapes]
        interp = self.interpreter
        for i in range(0, m, b):
            k = min(b, m - i)
            buf = interp.tensor(self._in)()  # the input tensor itself: no extra copy of the batch
            fill(rows[i : i + k], out=buf[:k])
            if k < b:
                buf[k:] = 0.0
            del buf  # the interpreter refuses to run while a view of its memory is alive
            interp.invoke()
            for o, idx in zip(outs, self._outs, strict=True):
                o[i : i + k] = interp.get_tensor(idx)[:k]
        return outs
