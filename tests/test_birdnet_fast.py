"""BirdNET's fast path (numpy front end + CNN cut) against the full graph, on real minicomp recordings."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from birdkit import audio, runtime
from birdkit.encoders import birdnet_frontend
from birdkit.encoders.birdnet import (
    LABELS_FILE,
    MODEL_FILE,
    BirdNET,
    model_dir,
    probe_windows,
    window_matrix,
)
from birdkit.encoders.birdnet_frontend import FrontEnd

pytestmark = pytest.mark.shared

# Measured on minicomp (these clips): logits 3e-5, embeddings 4e-6, spectrogram 7e-6.
LOGITS_ATOL = 1e-3
EMB_ATOL = 1e-4
SPEC_ATOL = 1e-4


@pytest.fixture(scope="module")
def model_bytes() -> bytes:
    return (model_dir() / MODEL_FILE).read_bytes()


@pytest.fixture(scope="module")
def full() -> BirdNET:
    return BirdNET(fast=False, batch_size=8)


@pytest.fixture(scope="module")
def real_windows(minicomp) -> np.ndarray:
    """22 windows: a field soundscape, two xeno-canto clips (high-passed, 32 kHz: an empty top band), and a
    short unlabeled recording; both window schemes."""
    parts = []
    soundscape = sorted((minicomp / "test_soundscapes").glob("*.ogg"))[0]
    chunks = audio.load_chunks(soundscape, 48000).chunks[:4]
    parts += [window_matrix(chunks, "paper"), window_matrix(chunks, "centre")]
    for rel in ("train_audio/acafly/acafly_1.ogg", sorted((minicomp / "train_audio").glob("*/*.ogg"))[-1]):
        parts.append(window_matrix(audio.load_chunks(minicomp / rel, 48000).chunks[:2], "paper"))
    unlabeled = sorted((minicomp / "unlabeled_soundscapes").glob("*.ogg"))[0]
    parts.append(window_matrix(audio.load_chunks(unlabeled, 48000).chunks[:1], "paper"))
    return np.concatenate(parts)


def test_fast_path_is_the_default_and_says_so(birdnet):
    d = birdnet.describe()
    assert birdnet.path == "fast" and d["path"] == "fast"
    assert "fallback_reason" not in d
    assert birdnet.self_check["max_abs_logits"] <= 1e-4  # measured 2e-5 on the probe windows
    fe = d["frontend"]
    # read from the model file, not typed in: BirdNET V2.4's two spectrograms
    assert [(b["frame_length"], b["frame_step"]) for b in fe["branches"]] == [(2048, 278), (1024, 280)]


def test_numpy_front_end_matches_the_graph_spectrogram(model_bytes, real_windows):
    fe = FrontEnd.from_model(model_bytes)
    graph = runtime.cut(model_bytes, None, [fe.output_tensor])
    interp = runtime.make_interpreter(graph)
    x = real_windows[:6]
    interp.resize_tensor_input(interp.get_input_details()[0]["index"], list(x.shape))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], x)
    interp.invoke()
    ref = interp.get_tensor(interp.get_output_details()[0]["index"])
    ours = fe(x)
    assert ours.shape == ref.shape == (6, 96, 511, 2)
    assert float(np.abs(ours - ref).max()) <= SPEC_ATOL


def test_fast_logits_and_embeddings_match_the_full_graph_on_real_recordings(birdnet, full, real_windows):
    emb, logits = birdnet.run_windows(real_windows)
    ref_emb, ref_logits = full.run_windows(real_windows)
    d_logits = float(np.abs(logits - ref_logits).max())
    d_emb = float(np.abs(emb - ref_emb).max())
    assert d_logits <= LOGITS_ATOL, d_logits
    assert d_emb <= EMB_ATOL, d_emb
    # the same decisions, not merely close numbers
    assert np.array_equal(logits.argmax(axis=1), ref_logits.argmax(axis=1))


def test_front_end_and_cnn_halves_compose_to_run_windows(birdnet, real_windows):
    x = real_windows[:3]
    emb, logits = birdnet.run_spectrograms(birdnet.spectrograms(x))
    emb2, logits2 = birdnet.run_windows(x)
    np.testing.assert_array_equal(logits, logits2)
    np.testing.assert_array_equal(emb, emb2)


def test_chunk_embedding_is_still_mean_and_max_over_windows(birdnet, minicomp):
    chunks = audio.load_chunks(minicomp / "train_audio" / "acafly" / "acafly_1.ogg", 48000).chunks[:3]
    out = birdnet.embed(chunks)
    emb, logits = out.embeddings, out.logits
    w_emb, w_logits = birdnet.run_windows(window_matrix(chunks, "paper"))
    np.testing.assert_allclose(emb, w_emb.reshape(3, 2, -1).mean(axis=1), rtol=1e-6)
    np.testing.assert_array_equal(logits, w_logits.reshape(3, 2, -1).max(axis=1))


def _modified_model(tmp_path, model_bytes: bytes, edit) -> str:
    m = runtime.read_model(model_bytes)
    edit(m)
    path = tmp_path / MODEL_FILE
    path.write_bytes(runtime.write_model(m))
    (tmp_path / LABELS_FILE).write_text((model_dir() / LABELS_FILE).read_text(encoding="utf-8"), "utf-8")
    return str(path)


def test_unknown_front_end_falls_back_to_the_full_graph_with_a_logged_reason(tmp_path, model_bytes, caplog):
    """A BirdNET file whose first spectrogram is flipped in time rather than in frequency: still a valid
    graph that the full path runs, but not the front end the numpy code knows."""

    def flip_time(m):
        s = runtime.schema()
        sg = m.subgraphs[0]
        prod = runtime.producers(m)
        rev = sg.operators[prod[runtime.tensor_index(m, "model/MEL_SPEC1/ReverseV2")]]
        buf = s.BufferT()
        buf.data = np.frombuffer(np.array([1], dtype=np.int32).tobytes(), dtype=np.uint8).copy()
        m.buffers.append(buf)
        axis = s.TensorT()
        axis.shape, axis.type, axis.buffer, axis.name = (
            np.array([1], np.int32),
            s.TensorType.INT32,
            len(m.buffers) - 1,
            b"time_axis",
        )
        sg.tensors.append(axis)
        rev.inputs = np.array([rev.inputs[0], len(sg.tensors) - 1], dtype=np.int32)  # the old axis is shared

    path = _modified_model(tmp_path, model_bytes, flip_time)
    with caplog.at_level(logging.WARNING, logger="birdkit.encoders.birdnet"):
        enc = BirdNET(model_path=path, batch_size=2)
    assert enc.path == "full-graph"
    assert "REVERSE_V2" in enc.describe()["fallback_reason"]
    assert any(
        "fast path unavailable" in r.getMessage() and "REVERSE_V2" in r.getMessage() for r in caplog.records
    )
    emb, logits = enc.run_windows(probe_windows(2))
    assert emb.shape == (2, 1024) and logits.shape == (2, 6522) and np.isfinite(logits).all()
    with pytest.raises(RuntimeError, match="full graph"):
        enc.spectrograms(probe_windows(1))


def test_a_front_end_that_reads_but_disagrees_fails_the_self_check(monkeypatch, caplog):
    real = birdnet_frontend.FrontEnd.normalise
    monkeypatch.setattr(birdnet_frontend.FrontEnd, "normalise", lambda self, x: real(self, x) * 0.5)
    with caplog.at_level(logging.WARNING, logger="birdkit.encoders.birdnet"):
        enc = BirdNET(batch_size=2)
    assert enc.path == "full-graph"
    assert "self-check failed" in enc.fallback_reason
    assert any("self-check failed" in r.getMessage() for r in caplog.records)


def test_fast_false_runs_the_reference_graph(full):
    assert full.path == "full-graph" and full.describe()["path"] == "full-graph"
    assert full.frontend is None and full.fallback_reason is None


def test_three_window_scheme_adds_the_centre_window_to_the_papers_pair(minicomp):
    """Chunk logits are the max over the windows: the three-window scheme's are the paper pair's max with the
    centre window's, and its embedding the mean of all three (the same windows, one definition)."""
    chunks = audio.load_chunks(sorted((minicomp / "test_soundscapes").glob("*.ogg"))[0], 48000).chunks[:3]
    out = {w: BirdNET(windows=w, verify=False).embed(chunks) for w in ("paper", "centre", "three")}
    np.testing.assert_allclose(
        out["three"].logits, np.maximum(out["paper"].logits, out["centre"].logits), atol=1e-5
    )
    np.testing.assert_allclose(
        out["three"].embeddings, (2 * out["paper"].embeddings + out["centre"].embeddings) / 3, atol=1e-5
    )
    assert not np.allclose(out["three"].logits, out["paper"].logits)
