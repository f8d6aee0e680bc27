"""Graph surgery on the real BirdNET file: reading constants and ops, and cutting sub-graphs that still run."""

from __future__ import annotations

import numpy as np
import pytest

from birdkit import runtime
from birdkit.encoders.birdnet import EMBEDDING_TENSOR, MODEL_FILE, model_dir, probe_windows

SPEC = "model/concatenate/concat"


@pytest.fixture(scope="module")
def data() -> bytes:
    try:
        return (model_dir() / MODEL_FILE).read_bytes()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def model(data):
    return runtime.read_model(data)


def _run(graph: bytes, x: np.ndarray) -> list[np.ndarray]:
    interp = runtime.make_interpreter(graph)
    interp.resize_tensor_input(interp.get_input_details()[0]["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    return [interp.get_tensor(d["index"]).copy() for d in interp.get_output_details()]


def test_interpreter_prefers_ai_edge_litert():
    assert runtime.runtime_name() in ("ai_edge_litert", "tflite_runtime", "tensorflow")


def test_constants_and_ops_are_read_from_the_file(model):
    assert int(runtime.constant(model, "model/MEL_SPEC1/stft/frame_step")) == 278
    assert int(runtime.constant(model, "model/MEL_SPEC2/stft/frame_length")) == 1024
    assert runtime.constant(model, "model/MEL_SPEC1/Tensordot/MatMul").shape == (96, 1025)
    sg = model.subgraphs[0]
    assert runtime.op_name(model, sg.operators[0]) == "REDUCE_MIN"
    assert {runtime.op_name(model, op) for op in sg.operators} >= {"RFFT2D", "GATHER", "CONV_2D", "POW"}
    prod = runtime.producers(model)
    concat = sg.operators[prod[runtime.tensor_index(model, SPEC)]]
    assert runtime.op_name(model, concat) == "CONCATENATION"
    assert runtime.constant_at(model, runtime.tensor_index(model, SPEC)) is None  # an activation
    with pytest.raises(ValueError, match="not a constant"):
        runtime.constant(model, SPEC)
    with pytest.raises(KeyError, match="not in the graph"):
        runtime.tensor_index(model, "model/NO_SUCH_TENSOR")


def test_cnn_cut_at_the_spectrogram_is_bit_identical_to_the_full_graph(data):
    """front end cut + CNN cut == full graph, exactly (the same kernels on the same tensor)."""
    x = probe_windows(2)
    logits_name = runtime.tensor_name(
        runtime.read_model(data), int(runtime.read_model(data).subgraphs[0].outputs[0])
    )
    full = _run(runtime.cut(data, None, [logits_name, EMBEDDING_TENSOR]), x)
    (spec,) = _run(runtime.cut(data, None, [SPEC]), x)
    assert spec.shape == (2, 96, 511, 2)
    cnn = _run(runtime.cut(data, [SPEC], [logits_name, EMBEDDING_TENSOR]), spec)
    assert [a.shape for a in cnn] == [(2, 6522), (2, 1024)]
    for a, b in zip(cnn, full, strict=True):
        np.testing.assert_array_equal(a, b)


def test_cut_refuses_outputs_that_still_need_the_old_input(data):
    # the second spectrogram depends on the waveform, not on the first spectrogram's ExpandDims
    with pytest.raises(ValueError, match="original inputs"):
        runtime.cut(data, ["model/MEL_SPEC1/ExpandDims"], [SPEC])


def test_quantize_weights_stores_int8_per_output_channel(data):
    """Conv and classifier weights become int8 with one scale per output channel; values within half a step."""
    cnn = runtime.cut(data, [SPEC], [EMBEDDING_TENSOR])
    before = runtime.read_model(cnn)
    after = runtime.read_model(runtime.quantize_weights(cnn))
    s = runtime.schema()
    sg, sg0 = after.subgraphs[0], before.subgraphs[0]
    kinds = {"CONV_2D": 0, "DEPTHWISE_CONV_2D": 0}
    for op in sg.operators:
        kind = runtime.op_name(after, op)
        if kind not in kinds:
            continue
        t = sg.tensors[int(op.inputs[1])]
        if kind == "DEPTHWISE_CONV_2D":
            assert t.type == s.TensorType.FLOAT32  # left alone: slower and far less accurate as int8
            continue
        kinds[kind] += 1
        assert t.type == s.TensorType.INT8 and t.quantization.quantizedDimension == 0
        w = runtime.constant_at(before, int(op.inputs[1]))
        q = runtime.constant_at(after, int(op.inputs[1])).astype(np.float32)
        scale = np.asarray(t.quantization.scale, dtype=np.float32)
        assert scale.shape == (w.shape[0],) and not np.any(np.asarray(t.quantization.zeroPoint))
        assert np.all(np.abs(q * scale.reshape(-1, 1, 1, 1) - w) <= scale.reshape(-1, 1, 1, 1) / 2 + 1e-7)
    assert kinds["CONV_2D"] > 50 and len(sg.operators) == len(sg0.operators)
    with pytest.raises(ValueError, match="no float32 weights"):
        runtime.quantize_weights(cnn, ops=("UNKNOWN_OP",))


QUIET = """
import sys
from birdkit import runtime
from birdkit.encoders.birdnet import MODEL_FILE, model_dir
i = runtime.make_interpreter((model_dir() / MODEL_FILE).read_bytes())
runtime.allocate(i)
print("after", file=sys.stderr)
"""


@pytest.mark.parametrize("level, shown", [("3", False), ("0", True)])
def test_the_xnnpack_info_line_shows_only_when_asked_for(data, level, shown):
    """LiteRT ignores TF_CPP_MIN_LOG_LEVEL; `birdkit` sets it unless --verbose, and the runtime honours it."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": level}
    out = subprocess.run([sys.executable, "-c", QUIET], env=env, capture_output=True, text=True, check=True)
    assert ("XNNPACK delegate" in out.stderr) is shown
    assert "after" in out.stderr  # stderr itself is back
