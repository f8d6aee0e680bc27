"""Embedding store: one row per chunk, resumable after a kill, embeddings equal to a direct TFLite run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest

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
    assert sorted(e.meta["unmapped_species"]) == sorted(e.species)
    assert np.isneginf(e.logits).all()


def test_killed_embed_resumes_with_no_duplicate_and_no_missing_row(synthetic_comp, tmp_path):
    out = tmp_path / "emb"
    cmd = [sys.executable, "-m", "birdkit.cli.main", "embed", str(synthetic_comp), "--out", str(out)]
    proc = subprocess.Popen(
        [*cmd, "--shard-files", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("part-*.parquet"))) < 2:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = {f for p in out.glob("part-*.parquet") for f in pq.read_table(p).column("file").to_pylist()}
    total = len(Competition(synthetic_comp).audio_files("train_audio"))
    assert 0 < len(partial) < total, "the kill should land mid-run"
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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
