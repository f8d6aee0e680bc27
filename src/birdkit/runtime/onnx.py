"""The ONNX runtime: one long-lived ``onnxruntime`` session, fed in fixed-size slices of rows.

The counterpart of :class:`birdkit.runtime.interpreter.FixedBatchRunner` for ``.onnx`` graphs (the community
exports of Perch 2.0). ONNX Runtime plans memory per input shape, so it has no resize penalty to avoid: the rows
go in slices of ``batch_size`` (a view, no copy) and the last slice runs at its own size. Everything around
``session.run`` is kept to a slice and a concatenate, so the loop costs next to nothing beside the model
(``benchmarks/onnx_speed.py``).

``onnxruntime`` is imported only when a session is built: the Kaggle notebook installs it from the exported
dataset's wheel when its Python lacks it (:func:`birdkit.workflows.notebook.ensure_wheels`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from birdkit.errors import BirdkitError


class OnnxError(BirdkitError, RuntimeError):
    """An ONNX graph that cannot run as asked (a tensor name it lacks, no onnxruntime); the message says the fix."""


def import_onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise OnnxError(
            "onnxruntime is not installed: `pip install onnxruntime` (the exported dataset carries a wheel that "
            "the Kaggle notebook installs offline)"
        ) from exc
    return onnxruntime


def onnx_runtime_name() -> str:
    return f"onnxruntime {import_onnxruntime().__version__}"


class OnnxRunner:
    """``rows [n, *input_shape] -> [out [n, ...] for each output]`` through one onnxruntime session.

    ``outputs``: names to return, in that order (default: every output). ``input_name``: the graph input to feed
    (default: its only input). ``num_threads``: intra-op threads (1: one scoring process per core, as on Kaggle).
    """

    def __init__(
        self,
        model: str | Path | bytes,
        batch_size: int = 16,
        outputs: Sequence[str] | None = None,
        input_name: str | None = None,
        num_threads: int = 1,
    ) -> None:
        ort = import_onnxruntime()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = max(1, int(num_threads))
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.log_severity_level = 3
        where = "the given bytes" if isinstance(model, bytes) else str(model)
        source = model if isinstance(model, bytes) else str(model)
        try:
            self.session = ort.InferenceSession(source, opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
            raise OnnxError(
                f"{where}: onnxruntime cannot load it ({str(exc).splitlines()[0][:200]})"
            ) from exc
        inputs = {i.name: i for i in self.session.get_inputs()}
        if input_name is None:
            if len(inputs) != 1:
                raise OnnxError(f"{where}: {len(inputs)} inputs ({', '.join(inputs)}); name one with --input")
            input_name = next(iter(inputs))
        if input_name not in inputs:
            raise OnnxError(f"{where}: no input {input_name!r}; it has {', '.join(inputs)} (--input NAME)")
        self.input_name = input_name
        self.input_shape = tuple(d if isinstance(d, int) else -1 for d in inputs[input_name].shape[1:])
        declared = {o.name: o for o in self.session.get_outputs()}
        self.outputs = list(outputs) if outputs is not None else list(declared)
        absent = [o for o in self.outputs if o not in declared]
        if absent:
            raise OnnxError(
                f"{where}: no output {', '.join(map(repr, absent))}; it has {', '.join(declared)} "
                "(--embedding NAME, --logits NAME)"
            )
        self.output_shapes = [
            tuple(d if isinstance(d, int) else -1 for d in declared[o].shape) for o in self.outputs
        ]
        batch = inputs[input_name].shape[0]
        self.batch_size = batch if isinstance(batch, int) and batch > 0 else max(1, int(batch_size))
        self._fixed_batch = isinstance(batch, int) and batch > 0

    def run(self, rows: np.ndarray) -> list[np.ndarray]:
        """One array per output, row-aligned with ``rows``."""
        rows = np.ascontiguousarray(rows, dtype=np.float32)
        n = rows.shape[0]
        parts: list[list[np.ndarray]] = [[] for _ in self.outputs]
        for start in range(0, n, self.batch_size):
            batch = rows[start : start + self.batch_size]
            if self._fixed_batch and len(batch) < self.batch_size:  # a graph exported at a fixed batch
                batch = np.concatenate(
                    [batch, np.zeros((self.batch_size - len(batch), *batch.shape[1:]), batch.dtype)]
                )
            outs = self.session.run(self.outputs, {self.input_name: batch})
            for acc, out in zip(parts, outs, strict=True):
                acc.append(out[: min(self.batch_size, n - start)])
        if n == 0:
            return [np.zeros((0, *(max(d, 0) for d in s[1:])), np.float32) for s in self.output_shapes]
        return [p[0] if len(p) == 1 else np.concatenate(p) for p in parts]
