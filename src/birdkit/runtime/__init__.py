"""The TFLite runtime: the interpreter (:mod:`.interpreter`) and graph surgery (:mod:`.graph`)."""

from birdkit.runtime.graph import (
    constant,
    constant_at,
    cut,
    op_name,
    producers,
    read_model,
    schema,
    tensor_index,
    tensor_name,
    write_model,
)
from birdkit.runtime.interpreter import (
    FixedBatchRunner,
    RuntimeMissing,
    copy_rows,
    interpreter_class,
    make_interpreter,
    runtime_name,
    signature_tensors,
)

__all__ = [
    "FixedBatchRunner",
    "RuntimeMissing",
    "constant",
    "constant_at",
    "copy_rows",
    "cut",
    "interpreter_class",
    "make_interpreter",
    "op_name",
    "producers",
    "read_model",
    "runtime_name",
    "schema",
    "signature_tensors",
    "tensor_index",
    "tensor_name",
    "write_model",
]
