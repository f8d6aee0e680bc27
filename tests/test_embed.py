"""Embedding store: one row per chunk, resumable after a kill (of the run or of one worker), bad files recorded,
embeddings equal to a direct TFLite run. The placeholder-encoder tests need neither BirdNET nor ../shared."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf
from worker_jobs import TESTS, chunks_digest, run_bounded

from birdkit import audio, store
from birdkit.competition import Competition
from birdkit.encoders import species_index, unmapped
from birdkit.encoders.birdnet import EMBEDDING_TENSOR, MODEL_FILE, model_dir, window_matrix
from birdkit.runtime import interpreter_class
from birdkit.store.embed import embed_split


def _expected_rows(comp_dir, split):
    comp = Competition(comp_dir)
    rows = set()
    for p in comp.audio_files(split):
        d = audio.decode(p)
        rows |= set(audio.row_ids(p.stem, audio.chunk_count(len(d.samples), d.sample_rate)))
    return rows


def test_store_has_one_row_per_chunk_with_1024d_embeddings(synthetic_comp, tmp_path):
    out = tmp_path / "emb"
    rep = embed_split(synthetic_comp, "train_audio", out, progress=False)
    e = store.load(out)
    assert set(e.frame["row_id"]) == _expected_rows(synthetic_comp, "train_audio")
    assert len(e) == rep.rows
    assert e.embeddings.shape == (len(e), 1024) and e.embeddings.dtype == np.float32
    assert e.logits.shape == (len(e), 6)
    assert np.isfinite(e.embeddings).all() and np.abs(e.embeddings).sum(axis=1).min() > 0
    # folder species travel with the rows; nothing local is stored
    assert set(e.frame["primary_label"]) == set(Competition(synthetic_comp).species)
    assert not any(str(synthetic_comp) in f for f in e.frame["file"])
    # the synthetic species are unknown to BirdNET: reported, and their logits are -inf (never predicted)
    assert sorted(e.meta.unmapped_species) == sorted(e.species)
    assert np.isneginf(e.logits).all()


def _kill_mid_run_then_resume(cmd: list[str], out, total: int, env: dict | None = None) -> None:
    """SIGKILL `birdkit embed` once two shards are written, check it stopped mid-run, run it again to the end."""
    proc = subprocess.Popen(
        [*cmd, "--shard-files", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("part-*.parquet"))) < 2:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = {f for p in out.glob("part-*.parquet") for f in pq.read_table(p).column("file").to_pylist()}
    assert 0 < len(partial) < total, "the kill should land mid-run"
    subprocess.run(
        cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, timeout=600
    )


def test_killed_embed_resumes_with_no_duplicate_and_no_missing_row(synthetic_comp, tmp_path):
    out = tmp_path / "emb"
    cmd = [sys.executable, "-m", "birdkit.cli.main", "embed", str(synthetic_comp), "--out", str(out)]
    _kill_mid_run_then_resume(cmd, out, len(Competition(synthetic_comp).audio_files("train_audio")))
    e = store.load(out)
    assert not e.frame["row_id"].duplicated().any()
    assert set(e.frame["row_id"]) == _expected_rows(synthetic_comp, "train_audio")
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


def test_bad_files_are_reported_and_the_batch_goes_on(edge_cases, minicomp, tmp_path):
    comp = tmp_path / "comp"
    (comp / "test_soundscapes").mkdir(parents=True)
    for name in ("empty.ogg", "not_audio.ogg", "short_0.9s.wav", "stereo_48k_3.7s.wav"):
        (comp / "test_soundscapes" / name).symlink_to(edge_cases / name)
    for f in ("sample_submission.csv", "eBird_Taxonomy_v2021.csv"):
        (comp / f).symlink_to(minicomp / f)
    rep = embed_split(comp, "test_soundscapes", tmp_path / "emb", progress=False)
    assert sorted(e["file"] for e in rep.errors) == ["empty.ogg", "not_audio.ogg"]
    e = store.load(tmp_path / "emb")
    assert sorted(e.frame["row_id"]) == ["short_0.9s_5", "stereo_48k_3.7s_5"]
    # a rerun retries nothing: errors are recorded in the store
    again = embed_split(comp, "test_soundscapes", tmp_path / "emb", progress=False)
    assert again.files_done == 0 and again.files_skipped == 4


def test_store_refuses_a_different_encoder_setup(synthetic_comp, tmp_path):
    out = tmp_path / "emb"
    embed_split(synthetic_comp, "train_audio", out, limit=1, progress=False)
    with pytest.raises(store.StoreError, match="different encoder"):
        embed_split(synthetic_comp, "train_audio", out, encoder_options={"windows": "centre"}, progress=False)


def test_embeddings_equal_a_direct_tflite_run_on_a_real_recording(minicomp, birdnet):
    """The chunk embedding is the mean of the [0,3] and [2,5] s windows' GLOBAL_AVG_POOL outputs."""
    cf = audio.load_chunks(minicomp / "train_audio" / "acafly" / "acafly_1.ogg", 48000)
    out = birdnet.embed(cf.chunks)
    emb, logits = out.embeddings, out.logits
    interp = interpreter_class()[1](
        model_path=str(model_dir() / MODEL_FILE), experimental_preserve_all_tensors=True, num_threads=1
    )
    windows = window_matrix(cf.chunks, "paper")
    interp.resize_tensor_input(0, list(windows.shape))
    interp.allocate_tensors()
    interp.set_tensor(interp.get_input_details()[0]["index"], windows)
    interp.invoke()
    idx = {d["name"]: d["index"] for d in interp.get_tensor_details()}
    ref_emb = interp.get_tensor(idx[EMBEDDING_TENSOR]).reshape(len(cf.chunks), 2, 1024).mean(axis=1)
    ref_logits = (
        interp.get_tensor(interp.get_output_details()[0]["index"]).reshape(len(cf.chunks), 2, -1).max(axis=1)
    )
    np.testing.assert_allclose(emb, ref_emb, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(logits, ref_logits, atol=1e-3, rtol=1e-4)


def test_every_minicomp_species_maps_to_a_birdnet_class(minicomp, birdnet):
    comp = Competition(minicomp)
    idx = species_index(birdnet.classes, comp)
    assert unmapped(comp.species, idx) == []
    # spot check through the taxonomy: Acadian Flycatcher is Empidonax virescens
    assert birdnet.classes[idx[comp.species.index("acafly")]].startswith("Empidonax virescens_")


def test_birdnet_top_species_is_the_clip_species_for_most_minicomp_clips(minicomp_train_store):
    """Max logit over a clip's chunks, among the competition species (measured: 109 of 124 clips, 0.88)."""
    e = store.load(minicomp_train_store)
    hits = 0
    files = e.frame.groupby("file").indices
    for rows in files.values():
        top = e.species[int(e.logits[rows].max(axis=0).argmax())]
        hits += top == e.frame["primary_label"].iloc[rows[0]]
    assert len(files) == 124
    assert hits / len(files) >= 0.8


# ---- the same contracts with the placeholder encoder: no model file, no ../shared ---------------------------
def _all_files(comp_dir, split):
    comp = Competition(comp_dir)
    return sorted(comp.relative(p, split) for p in comp.audio_files(split))


def test_placeholder_store_has_one_row_per_chunk_and_mapped_logits(synthetic_comp, placeholder_train_store):
    e = store.load(placeholder_train_store)
    assert set(e.frame["row_id"]) == _expected_rows(synthetic_comp, "train_audio")
    assert not e.frame[["file", "row_id"]].duplicated().any()
    assert e.embeddings.shape == (len(e), 64) and e.embeddings.dtype == np.float32
    assert np.isfinite(e.embeddings).all() and np.isfinite(e.logits).all()  # every species mapped
    assert e.meta.encoder_name == "placeholder" and e.meta.split == "train_audio"
    assert e.meta.unmapped_species == [] and sorted(e.meta.logits_index) == list(range(len(e.species)))
    assert set(e.frame["primary_label"]) == set(e.species)
    assert not any(str(synthetic_comp) in f for f in e.frame["file"])


def test_killed_placeholder_embed_resumes_with_no_duplicate_and_no_missing_row(synthetic_comp, tmp_path):
    out = tmp_path / "emb"
    cmd = [sys.executable, "-m", "birdkit.cli.main", "embed", str(synthetic_comp), "--out", str(out)]
    cmd += ["--encoder", "worker_jobs:SlowPlaceholder"]  # a file every 0.15 s: the kill lands mid-run
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    _kill_mid_run_then_resume(cmd, out, len(_all_files(synthetic_comp, "train_audio")), env)
    assert _stored_once(out) == _all_files(synthetic_comp, "train_audio")
    assert set(store.load(out).frame["row_id"]) == _expected_rows(synthetic_comp, "train_audio")
    assert not list(out.glob("*.tmp")) and not list(out.glob(".*.tmp"))


EMBED_IN_A_CHILD = """
    import json
    from birdkit.store.embed import embed_split

    r = embed_split(
        {comp!r}, "train_audio", {out!r}, encoder="worker_jobs:DyingPlaceholder",
        encoder_options={options!r}, workers=2, progress=False, shard_files=2,
    )
    print(json.dumps({{"errors": r.errors, "files_done": r.files_done}}))
"""


def _stored_once(out) -> list[str]:
    """The files of a store, after checking that no file's rows appear twice."""
    e = store.load(out)
    assert not e.frame[["file", "row_id"]].duplicated().any()
    per_file = e.frame.groupby("file")["row_id"].nunique()
    assert (per_file == e.frame.groupby("file").size()).all()
    return sorted(per_file.index)


def test_a_killed_embed_worker_costs_no_file(synthetic_comp, tmp_path):
    """One worker is SIGKILLed mid-run: the pool is rebuilt, the files it held are embedded again, and every
    readable file ends up in the store exactly once."""
    out = tmp_path / "emb"
    options = {"marker": str(tmp_path), "after": 7}
    rep = run_bounded(EMBED_IN_A_CHILD.format(comp=str(synthetic_comp), out=str(out), options=options))
    assert (tmp_path / "killed").exists(), "a worker should have died"
    assert rep["errors"] == [] and store.EmbeddingStore(out).errors() == []
    assert _stored_once(out) == _all_files(synthetic_comp, "train_audio")
    assert set(store.load(out).frame["row_id"]) == _expected_rows(synthetic_comp, "train_audio")


def test_a_file_that_kills_its_worker_every_time_is_recorded_as_an_error(synthetic_comp, tmp_path):
    files = _all_files(synthetic_comp, "train_audio")
    poison = files[4]
    digest = chunks_digest(audio.load_chunks(synthetic_comp / "train_audio" / poison, 16_000).chunks)
    out = tmp_path / "emb"
    options = {"marker": str(tmp_path), "after": 10**6, "poison": digest}
    rep = run_bounded(EMBED_IN_A_CHILD.format(comp=str(synthetic_comp), out=str(out), options=options))
    assert [e["file"] for e in rep["errors"]] == [poison]
    assert "worker process died" in rep["errors"][0]["error"]
    assert store.EmbeddingStore(out).errors() == rep["errors"]
    assert _stored_once(out) == [f for f in files if f != poison]
    # the error is recorded: a rerun retries nothing
    again = embed_split(synthetic_comp, "train_audio", out, encoder="placeholder", progress=False)
    assert again.files_done == 0 and again.files_skipped == len(files)


def test_bad_files_are_reported_with_the_placeholder_encoder(synthetic_comp, tmp_path):
    """The edge cases made here: an empty file, text named .ogg, a 0.9 s clip and a 3.7 s stereo 48 kHz one."""
    comp = tmp_path / "comp"
    sound = comp / "test_soundscapes"
    sound.mkdir(parents=True)
    (sound / "empty.ogg").write_bytes(b"")
    (sound / "not_audio.ogg").write_bytes(b"this is not audio\n" * 100)
    rng = np.random.default_rng(0)
    sf.write(sound / "short_0.9s.wav", rng.normal(0, 0.1, 28_800).astype(np.float32), 32_000)
    sf.write(sound / "stereo_48k_3.7s.wav", rng.normal(0, 0.1, (177_600, 2)).astype(np.float32), 48_000)
    for f in ("sample_submission.csv", "eBird_Taxonomy_v2021.csv"):
        (comp / f).symlink_to(synthetic_comp / f)
    rep = embed_split(comp, "test_soundscapes", tmp_path / "emb", encoder="placeholder", progress=False)
    assert sorted(e["file"] for e in rep.errors) == ["empty.ogg", "not_audio.ogg"]
    e = store.load(tmp_path / "emb")
    assert sorted(e.frame["row_id"]) == ["short_0.9s_5", "stereo_48k_3.7s_5"]
    again = embed_split(comp, "test_soundscapes", tmp_path / "emb", encoder="placeholder", progress=False)
    assert again.files_done == 0 and again.files_skipped == 4


def test_placeholder_store_refuses_another_embedding_width(synthetic_comp, tmp_path):
    out = tmp_path / "emb"
    embed_split(synthetic_comp, "train_audio", out, encoder="placeholder", limit=1, progress=False)
    with pytest.raises(store.StoreError, match="different embedding_dim"):
        embed_split(
            synthetic_comp,
            "train_audio",
            out,
            encoder="placeholder",
            encoder_options={"bands": 8},
            progress=False,
        )
    # the same setup resumes
    rep = embed_split(synthetic_comp, "train_audio", out, encoder="placeholder", limit=2, progress=False)
    assert (rep.files_done, rep.files_skipped) == (1, 1)
