"""BirdNET's opt-in precision modes (int8 CNN weights, float32 FFT): built after the exact path passed its
self-check, said in describe(), and close to the exact numbers on real recordings (their metric cost is a
benchmark: benchmarks/birdnet_speed.py --modes)."""

from __future__ import annotations

import numpy as np
import pytest

from birdkit import audio
from birdkit.encoders import get_encoder
from birdkit.encoders.birdnet import BirdNET, window_matrix
from birdkit.errors import OptionError

pytestmark = pytest.mark.shared


@pytest.fixture(scope="module")
def windows(minicomp) -> np.ndarray:
    soundscape = sorted((minicomp / "test_soundscapes").glob("*.ogg"))[0]
    clip = minicomp / "train_audio" / "acafly" / "acafly_1.ogg"  # 32 kHz, an empty top band
    return np.concatenate(
        [window_matrix(audio.load_chunks(f, 48000).chunks[:3], "paper") for f in (soundscape, clip)]
    )


def test_the_default_is_exact_and_its_description_unchanged(birdnet):
    assert birdnet.precision == "exact"
    assert "precision" not in birdnet.describe()  # stores made before the modes existed still resume
    assert birdnet.describe()["frontend"]["fft"] == "float64"


@pytest.mark.parametrize("precision, max_err", [("int8", 2.0), ("fft32", 0.01)])
def test_a_mode_stays_close_to_the_exact_path(birdnet, windows, precision, max_err):
    enc = get_encoder("birdnet", precision=precision)
    assert enc.path == "fast" and enc.describe()["precision"] == precision
    assert enc.self_check["max_abs_logits"] <= 1e-3  # the exact path was checked first
    assert 0 <= enc.self_check["mode_max_abs_logits"] <= max_err
    emb, logits = enc.run_windows(windows)
    ref_emb, ref_logits = birdnet.run_windows(windows)
    err = float(np.abs(logits - ref_logits).max())
    assert 0 < err <= max_err, err  # not the exact numbers, but near them
    top = logits.argmax(axis=1) == ref_logits.argmax(axis=1)
    assert top.mean() >= 0.8
    assert np.corrcoef(emb.ravel(), ref_emb.ravel())[0, 1] > 0.99


def test_fft32_changes_only_the_2048_point_branch(birdnet, windows):
    enc = BirdNET(precision="fft32", verify=False)
    a, b = birdnet.spectrograms(windows[:2]), enc.spectrograms(windows[:2])
    np.testing.assert_array_equal(a[..., 1], b[..., 1])
    assert 0 < np.abs(a[..., 0] - b[..., 0]).max() < 1e-2
    assert enc.describe()["frontend"]["fft"] == ["float32", "float64"]


def test_bad_precision_options_are_refused():
    with pytest.raises(OptionError, match="int4"):
        BirdNET(precision="int4", verify=False)
    with pytest.raises(OptionError, match="fast path"):
        BirdNET(precision="int8", fast=False)
