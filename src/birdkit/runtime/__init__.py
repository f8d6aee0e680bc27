"""The TFLite runtime: the interpreter (:mod:`.interpreter`) and graph surgery (:mod:`.graph`)."""

from birdkit.runtime.graph import (
    constant,
    constant_at,
    cut,
    op_name,
    producers,
    quantize_weights,
    read_model,
    schema,
    tensor_index,
    tensor_name,
    write_model,
)
from birdkit.runtime.interpreter import (
    FixedBatchRunner,
    RuntimeMissing,
    allocate,
    copy_rows,
    interpreter_class,
    make_interpreter,
    native_quiet,
    runtime_name,
    signature_tensors,
)

__all__ = [
    "FixedBatchRunner",
    "RuntimeMissing",
    "allocate",
    "constant",
    "constant_at",
    "copy_rows",
    "cut",
    "interpreter_class",
    "make_interpreter",
    "native_quiet",
    "op_name",
    "producers",
    "quantize_weights",
    "read_model",
    "runtime_name",
    "schema",
    "signature_tensors",
    "tensor_index",
    "tensor_name",
    "write_model",
]
