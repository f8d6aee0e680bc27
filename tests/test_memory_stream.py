"""Memory flat in file length: files are streamed (decode -> resample -> chunks -> encoder) in blocks, with the
same numbers as a whole-file read, and a long file's peak memory is that of a short one."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import soxr

from birdkit import audio
from birdkit.competition import Competition
from birdkit.encode import encode_file
from birdkit.encoders import get_encoder
from birdkit.infer import InferConfig, file_jobs, run_inference, schedule


def _noise(path, seconds: float, sr: int, channels: int = 1, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    y = (0.2 * rng.standard_normal((int(seconds * sr), channels))).astype(np.float32)
    sf.write(path, y, sr, subtype="PCM_16")


@pytest.mark.parametrize("seconds", [3.0, 39.0, 70.004, 95.0])
def test_stream_blocks_equal_a_whole_file_resample_bit_for_bit(tmp_path, seconds):
    p = tmp_path / "x.wav"
    _noise(p, seconds, 32000, channels=2)
    x = sf.read(p, dtype="float32", always_2d=True)[0].mean(axis=1, dtype=np.float32)
    n = audio.chunk_count(len(x), 32000)
    stream = audio.ChunkStream(p, [48000, 32000], block_chunks=3)
    blocks = list(stream)
    assert all(len(b) <= 3 for b in blocks) and [b.start for b in blocks] == list(range(0, n, 3))
    assert stream.n_chunks == n and stream.row_ids == audio.row_ids("x", n)
    assert stream.duration_s == pytest.approx(seconds, abs=1e-4)
    for rate in (48000, 32000):
        whole = audio.to_chunks(soxr.resample(x, 32000, rate, quality="HQ") if rate != 32000 else x, rate, n)
        got = np.concatenate([b.by_rate[rate] for b in blocks])
        np.testing.assert_array_equal(got, whole)


def test_stream_reports_bad_files_like_decode(tmp_path):
    empty = tmp_path / "empty.ogg"
    empty.write_bytes(b"")
    with pytest.raises(audio.AudioError, match="empty file"):
        list(audio.ChunkStream(empty, 48000))
    junk = tmp_path / "junk.ogg"
    junk.write_bytes(b"not audio at all" * 100)
    with pytest.raises(audio.AudioError, match="cannot decode"):
        list(audio.ChunkStream(junk, 48000))
    with pytest.raises(RuntimeError, match="once the stream has been read"):
        _ = audio.ChunkStream(junk, 48000).row_ids


def test_encode_file_in_blocks_gives_the_whole_file_outputs(tmp_path):
    p = tmp_path / "rec.wav"
    _noise(p, 52.0, 32000)
    enc = get_encoder("placeholder")
    blocked = encode_file(enc, str(p), block_chunks=4)
    cf = audio.load_chunks(p, enc.sample_rate)
    whole = enc.embed(cf.chunks)
    assert blocked.row_ids == cf.row_ids and len(blocked.row_ids) == 11
    np.testing.assert_array_equal(blocked.outputs.embeddings, whole.embeddings)
    assert blocked.duration_s == pytest.approx(52.0)


def test_infer_streams_a_long_file_with_the_same_submission(synthetic_comp, tmp_path, monkeypatch):
    """workers=1: the interpreter process streams the long file the decode process handed over as a path."""
    run_inference(InferConfig(synthetic_comp, tmp_path / "a.csv", passthrough="placeholder", workers=1,
                              guard=False, progress=False))  # fmt: skip
    monkeypatch.setattr(schedule, "STREAM_SECONDS", 10.0)  # every test soundscape (60 s) counts as long
    monkeypatch.setattr(audio, "BLOCK_CHUNKS", 5)
    jobs = file_jobs(Competition(synthetic_comp), "test_soundscapes", None)
    decoded = schedule.decode_bundle((32000,), schedule.Bundle(0, tuple(jobs[:1])))
    assert decoded[0] == [schedule.LongFile(jobs[0].path)]  # handed over as a path, not as audio
    run_inference(InferConfig(synthetic_comp, tmp_path / "b.csv", passthrough="placeholder", workers=1,
                              guard=False, progress=False))  # fmt: skip
    a, b = pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv")
    assert len(a) > 0
    pd.testing.assert_frame_equal(a, b)


def test_workers_stream_a_file_over_five_minutes(synthetic_comp, tmp_path, monkeypatch):
    """workers=2: a 310 s recording is streamed inside a worker, with the rows of a whole-file read in this
    process."""
    root = tmp_path / "comp"
    (root / "test_soundscapes").mkdir(parents=True)
    long, short = root / "test_soundscapes" / "long.wav", root / "test_soundscapes" / "short.wav"
    _noise(long, 310.0, 32000, seed=2)
    _noise(short, 20.0, 32000, seed=3)
    shutil.copyfile(synthetic_comp / "eBird_Taxonomy_v2021.csv", root / "eBird_Taxonomy_v2021.csv")
    columns = pd.read_csv(synthetic_comp / "sample_submission.csv", nrows=0).columns
    rows = audio.row_ids("long", 62) + audio.row_ids("short", 4)
    sub = pd.DataFrame(0.0, index=range(len(rows)), columns=columns[1:])
    sub.insert(0, columns[0], rows)
    sub.to_csv(root / "sample_submission.csv", index=False)
    jobs = file_jobs(Competition(root), "test_soundscapes", None)
    assert schedule.decode_bundle((32000,), schedule.Bundle(0, (jobs[0],)))[0] == [
        schedule.LongFile(str(long))
    ]
    run_inference(InferConfig(root, tmp_path / "w2.csv", passthrough="placeholder", workers=2, guard=False,
                              progress=False))  # fmt: skip
    monkeypatch.setattr(schedule, "STREAM_SECONDS", 1e9)  # nothing streamed: whole files, decoded inline here
    run_inference(InferConfig(root, tmp_path / "ref.csv", passthrough="placeholder", workers=1, overlap=False,
                              guard=False, progress=False))  # fmt: skip
    got, ref = pd.read_csv(tmp_path / "w2.csv"), pd.read_csv(tmp_path / "ref.csv")
    assert len(got) == 66
    pd.testing.assert_frame_equal(got, ref)


PEAK = textwrap.dedent(
    """
    import json, resource, sys
    from birdkit.encode import encode_file
    from birdkit.encoders import get_encoder
    enc = get_encoder("placeholder")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ef = encode_file(enc, sys.argv[1], block_chunks=12)
    print(json.dumps({"before_kb": before, "peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "rows": len(ef.row_ids)}))
    """
)


def _peak(path) -> dict:
    out = subprocess.run([sys.executable, "-c", PEAK, str(path)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_memory_is_flat_in_file_length(tmp_path):
    """30 minutes cost what 2 minutes cost: one minute-block of audio at a time (the whole file at 16 kHz in
    float32 would be 115 MB, several times over while decoding and resampling)."""
    short, long = tmp_path / "short.wav", tmp_path / "long.wav"
    _noise(short, 120, 16000)
    _noise(long, 1800, 16000, seed=1)
    s, lg = _peak(short), _peak(long)
    assert (s["rows"], lg["rows"]) == (24, 360)
    grown_mb = (lg["peak_kb"] - s["peak_kb"]) / 1024
    assert grown_mb < 25, (s, lg)
