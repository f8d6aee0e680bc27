"""Edits of TFLite graphs, on the flatbuffer schema of whichever runtime is installed.

Graph edits use the flatbuffer schema's object API, from whichever of those packages is installed, so a
model's inner tensor (BirdNET's 1024-d embedding) can be made a graph output instead of being read with
``experimental_preserve_all_tensors`` (which keeps every intermediate tensor alive and is slower), or a graph
cut at an inner tensor (BirdNET's CNN from its spectrogram on); ``op_name``, ``producers`` and ``constant_at``
let code walk a graph and read its constants (BirdNET's front end is read this way, not typed in).
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable
from functools import cache
from types import ModuleType
from typing import Any

from birdkit.runtime.interpreter import RuntimeMissing

log = logging.getLogger(__name__)

_SCHEMAS = (
    "ai_edge_litert.schema_py_generated",
    "tflite_runtime.schema_py_generated",
    "tensorflow.lite.python.schema_py_generated",
)


@cache
def schema() -> ModuleType:
    """The TFLite flatbuffer schema module (object API) from an installed runtime."""
    for mod in _SCHEMAS:
        try:
            return importlib.import_module(mod)
        except ImportError:
            continue
    raise RuntimeMissing("no TFLite flatbuffer schema found; `pip install ai-edge-litert` or tensorflow")


def read_model(data: bytes) -> Any:
    """Flatbuffer bytes -> mutable ModelT."""
    s = schema()
    return s.ModelT.InitFromObj(s.Model.GetRootAsModel(data, 0))


def write_model(model: Any) -> bytes:
    """ModelT -> flatbuffer bytes (with the TFLite file identifier)."""
    import flatbuffers

    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def _name(t: Any) -> str:
    n = t.name
    return n.decode() if isinstance(n, bytes) else n


def tensor_name(model: Any, index: int, subgraph: int = 0) -> str:
    return _name(model.subgraphs[subgraph].tensors[index])


@cache
def _op_names() -> dict[int, str]:
    ops = schema().BuiltinOperator
    return {v: k for k, v in vars(ops).items() if not k.startswith("_") and isinstance(v, int)}


def op_name(model: Any, op: Any) -> str:
    """Builtin name of an operator ("CONV_2D", "RFFT2D", ...), or "CUSTOM:<code>"."""
    code = model.operatorCodes[op.opcodeIndex]
    # opcodes >= 127 live in builtinCode only; older files keep small ones in deprecatedBuiltinCode
    b = max(int(code.builtinCode), int(code.deprecatedBuiltinCode))
    name = _op_names().get(b, str(b))
    if name == "CUSTOM":
        cc = code.customCode
        return "CUSTOM:" + (cc.decode() if isinstance(cc, bytes) else str(cc))
    return name


def producers(model: Any, subgraph: int = 0) -> dict[int, int]:
    """tensor index -> index of the operator that writes it (constants and graph inputs have none)."""
    out: dict[int, int] = {}
    for k, op in enumerate(model.subgraphs[subgraph].operators):
        for t in op.outputs:
            out[int(t)] = k
    return out


def tensor_index(model: Any, name: str, subgraph: int = 0) -> int:
    """Index of the tensor called ``name`` in a subgraph; KeyError lists near names."""
    tensors = model.subgraphs[subgraph].tensors
    for i, t in enumerate(tensors):
        if _name(t) == name:
            return i
    near = [_name(t) for t in tensors if name.split("/")[-1].lower() in _name(t).lower()][:5]
    raise KeyError(f"tensor {name!r} not in the graph; similar names: {near}")


def cut(data: bytes | Any, inputs: Iterable[str] | None, outputs: Iterable[str]) -> bytes:
    """A new model computing ``outputs`` from ``inputs`` (by tensor name), keeping only the ops needed.

    ``inputs=None`` keeps the model's own inputs: that is how an inner tensor becomes an extra output.
    Signature defs are dropped because they name the old inputs and outputs. ``data`` is flatbuffer bytes or
    a ModelT from :func:`read_model` (saves re-parsing it; that ModelT is edited in place).
    """
    model = read_model(data) if isinstance(data, bytes | bytearray) else data
    sg = model.subgraphs[0]
    in_idx = list(sg.inputs) if inputs is None else [tensor_index(model, n) for n in inputs]
    out_idx = [tensor_index(model, n) for n in outputs]
    producer = {}
    for k, op in enumerate(sg.operators):
        for t in op.outputs:
            producer[int(t)] = k
    needed_ops: set[int] = set()
    stack = list(out_idx)
    seen = set(in_idx)
    while stack:
        t = stack.pop()
        if t in seen or t < 0:
            continue
        seen.add(t)
        k = producer.get(t)
        if k is None:
            continue  # a constant or a graph input
        if k not in needed_ops:
            needed_ops.add(k)
            stack.extend(int(x) for x in sg.operators[k].inputs)
    missing = [
        _name(sg.tensors[t])
        for t in seen
        if t not in producer
        and t not in in_idx
        and not _has_data(model, sg.tensors[t])
        and t in set(int(x) for x in sg.inputs)
    ]
    if missing:
        raise ValueError(f"outputs depend on original inputs {missing} not among the new inputs")
    sg.operators = [op for k, op in enumerate(sg.operators) if k in needed_ops]
    sg.inputs = in_idx
    sg.outputs = out_idx
    model.signatureDefs = []
    return write_model(model)


def _has_data(model: Any, tensor: Any) -> bool:
    buf = model.buffers[tensor.buffer] if tensor.buffer is not None else None
    return buf is not None and buf.data is not None and len(buf.data) > 0


def constant(model: Any, name: str) -> Any:
    """The value of a constant tensor by name, as a numpy array (for reading a graph's own front-end constants)."""
    v = constant_at(model, tensor_index(model, name))
    if v is None:
        raise ValueError(f"tensor {name!r} is not a constant")
    return v


def constant_at(model: Any, index: int, subgraph: int = 0) -> Any:
    """The value of tensor ``index`` as a numpy array if it is a constant (has a data buffer), else None."""
    import numpy as np

    s = schema()
    t = model.subgraphs[subgraph].tensors[index]
    if not _has_data(model, t):
        return None
    dtypes = {
        s.TensorType.FLOAT32: np.float32,
        s.TensorType.INT32: np.int32,
        s.TensorType.INT64: np.int64,
        s.TensorType.FLOAT16: np.float16,
        s.TensorType.INT8: np.int8,
        s.TensorType.UINT8: np.uint8,
    }
    if t.type not in dtypes:
        raise ValueError(f"constant {_name(t)!r} has tensor type {t.type}, which is not read here")
    raw = np.asarray(model.buffers[t.buffer].data, dtype=np.uint8).tobytes()
    return np.frombuffer(raw, dtype=dtypes[t.type]).reshape(list(t.shape) if t.shape is not None else [])


def quantize_weights(data: bytes | Any, ops: Iterable[str] = ("CONV_2D", "FULLY_CONNECTED")) -> bytes:
    """The graph with the float32 weights of ``ops`` stored as int8, one symmetric scale per output channel.

    Activations stay float32: TFLite runs these as hybrid ops (XNNPACK quantizes each input on the fly), which
    cuts BirdNET's CNN time by about a third on AVX-512 VNNI. Depthwise convolutions are left alone by default:
    int8 depthwise weights were slower and cost far more accuracy (benchmarks/RESULTS.md).
    """
    import numpy as np

    s = schema()
    model = read_model(data) if isinstance(data, bytes | bytearray) else data
    sg = model.subgraphs[0]
    wanted = set(ops)
    done: set[int] = set()
    for op in sg.operators:
        kind = op_name(model, op)
        if kind not in wanted or len(op.inputs) < 2 or int(op.inputs[1]) in done:
            continue
        t = int(op.inputs[1])
        w = constant_at(model, t)
        if w is None or w.dtype != np.float32:
            continue
        done.add(t)
        axis = 3 if kind == "DEPTHWISE_CONV_2D" else 0  # the output-channel axis of TFLite's weight layouts
        other = tuple(i for i in range(w.ndim) if i != axis)
        scale = (np.abs(w).max(axis=other) / 127.0).astype(np.float32)
        scale[scale == 0] = 1.0
        shape = [1] * w.ndim
        shape[axis] = -1
        q = np.clip(np.round(w / scale.reshape(shape)), -127, 127).astype(np.int8)
        tensor = sg.tensors[t]
        model.buffers[tensor.buffer].data = np.frombuffer(q.tobytes(), dtype=np.uint8).copy()
        tensor.type = s.TensorType.INT8
        qp = s.QuantizationParametersT()
        qp.scale, qp.zeroPoint, qp.quantizedDimension = scale.tolist(), [0] * len(scale), axis
        tensor.quantization = qp
    if not done:
        raise ValueError(f"no float32 weights of {sorted(wanted)} to quantize")
    return write_model(model)
