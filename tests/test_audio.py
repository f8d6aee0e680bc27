"""The audio front end: chunk rule, resampling, and every edge case in ../shared/data/edge_cases."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import soundfile as sf

from birdkit import audio
from birdkit.audio import AudioError


def _tone(seconds: float, sr: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = (0.3 * np.sin(2 * np.pi * 1000 * t)).astype(np.float32)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


def test_39s_file_gives_8_zero_padded_rows(tmp_path):
    p = tmp_path / "XC123.wav"
    sf.write(p, _tone(39.0, 32000), 32000)
    cf = audio.load_chunks(p, 48000)
    assert cf.row_ids == [f"XC123_{s}" for s in range(5, 45, 5)]
    assert cf.chunks.shape == (8, 5 * 48000)
    # the last chunk holds 4 s of tone then 1 s of zeros
    last = cf.chunks[-1]
    assert np.abs(last[: 3 * 48000]).max() > 0.2
    assert np.abs(last[int(4.01 * 48000) :]).max() == 0.0


@pytest.mark.parametrize("sr_in", [16000, 22050, 32000, 44100, 96000])
def test_resampling_never_changes_the_row_count(tmp_path, sr_in):
    """240 s at any source rate is 48 rows at 32 kHz and at 48 kHz (the count comes from the source)."""
    y = np.zeros(240 * sr_in, dtype=np.float32)
    n = audio.chunk_count(len(y), sr_in)
    assert n == 48
    for sr_out in (32000, 48000):
        z = audio.resample(y, sr_in, sr_out)
        assert audio.to_chunks(z, sr_out, n).shape == (48, 5 * sr_out)


def test_resampled_tone_keeps_its_frequency():
    sr_in, sr_out = 44100, 48000
    y = _tone(2.0, sr_in)
    z = audio.resample(y, sr_in, sr_out)
    spec = np.abs(np.fft.rfft(z))
    peak_hz = np.fft.rfftfreq(len(z), 1 / sr_out)[spec.argmax()]
    assert abs(peak_hz - 1000) < 2


def test_stereo_is_downmixed(tmp_path):
    p = tmp_path / "st.wav"
    left = _tone(1.0, 48000)
    sf.write(p, np.stack([left, -left], axis=1), 48000)  # opposite phases cancel in a mean downmix
    assert np.abs(audio.decode(p).samples).max() < 1e-4


def test_long_ogg_write_in_blocks_round_trips(tmp_path):
    """A 2-minute OGG Vorbis write (libsndfile 1.2 crashes on one long write call)."""
    p = tmp_path / "long.ogg"
    audio.write_audio(p, _tone(120.0, 32000), 32000)
    d = audio.decode(p)
    assert d.sample_rate == 32000
    assert abs(d.duration_s - 120.0) < 0.05


# ---- ../shared/data/edge_cases: a typed error naming the file, or a defined result -----------------------------
ERRORS = {"empty.ogg": "empty file", "not_audio.ogg": "cannot decode"}
ROWS = {  # file -> rows at 5 s
    "bat_256khz.wav": 2,
    "float64_16k.wav": 2,
    "short_0.9s.wav": 1,
    "silence_10s.mp3": 2,
    "soundscape_48k.flac": 24,
    "stereo_44k.mp3": 7,
    "stereo_48k_3.7s.wav": 1,
    "toad_nonbird_44k.wav": 9,
    "truncated.ogg": 1,  # libsndfile decodes the 2.06 s before the cut; that is what we score
}


def test_every_edge_case_is_covered(edge_cases):
    assert {p.name for p in edge_cases.iterdir()} == set(ERRORS) | set(ROWS)


@pytest.mark.parametrize("name", sorted(ERRORS))
def test_bad_files_raise_a_typed_error_naming_the_file(edge_cases, name):
    with pytest.raises(AudioError) as info:
        audio.load_chunks(edge_cases / name, 48000)
    assert name in str(info.value)
    assert ERRORS[name] in str(info.value)
    assert info.value.path.endswith(name)


@pytest.mark.parametrize("name", sorted(ROWS))
def test_odd_files_give_defined_rows(edge_cases, name):
    cf = audio.load_chunks(edge_cases / name, 48000)
    assert len(cf.row_ids) == ROWS[name]
    assert cf.chunks.dtype == np.float32
    assert cf.chunks.shape == (ROWS[name], 240000)
    assert np.isfinite(cf.chunks).all()


def test_missing_file_is_a_typed_error(tmp_path):
    with pytest.raises(AudioError, match="no such file"):
        audio.decode(tmp_path / "nope.ogg")


def test_one_decode_gives_chunks_at_every_rate(tmp_path):
    """Inference needs each encoder's rate from one decode: the same rows and chunks as one call per rate."""
    p = tmp_path / "XC7.wav"
    sf.write(p, _tone(12.5, 44100), 44100)
    stages: list[str] = []

    @contextlib.contextmanager
    def stage(name: str):
        stages.append(name)
        yield

    both = audio.load_chunks(p, (48000, 32000), stage)
    assert stages == ["decode", "resample"]  # decoded once
    assert list(both.by_rate) == [48000, 32000] and both.sample_rate == 48000 and both.source_rate == 44100
    assert both.row_ids == ["XC7_5", "XC7_10", "XC7_15"] and both.duration_s == pytest.approx(12.5)
    for rate in (48000, 32000):
        one = audio.load_chunks(p, rate)
        assert one.row_ids == both.row_ids and one.sample_rate == rate
        np.testing.assert_array_equal(one.chunks, both.by_rate[rate])
    assert both.chunks is both.by_rate[48000]


def test_writing_an_unknown_format_names_the_file(tmp_path):
    with pytest.raises(AudioError, match=r"x\.mp4: cannot write \.mp4"):
        audio.write_audio(tmp_path / "x.mp4", _tone(0.1, 8000), 8000)
