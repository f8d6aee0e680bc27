"""`birdkit embed --engine dask`: the same store as the local engine (rows and values, max abs difference 0),
on a LocalCluster and on a scheduler and workers started by hand as a user would; a worker killed mid-run
costs no file and stores none twice; a file that kills a worker twice is recorded as an error."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from worker_jobs import TESTS, chunks_digest, run_bounded

from birdkit import audio, store
from birdkit.cli.main import main
from birdkit.competition import Competition
from birdkit.store import dask_engine
from birdkit.store.embed import embed_split

pytest.importorskip("distributed")

EMBED_ON_DASK = """
    import json
    from birdkit.store.embed import embed_split

    r = embed_split(
        {comp!r}, "train_audio", {out!r}, encoder="worker_jobs:DyingPlaceholder",
        encoder_options={options!r}, workers=2, progress=False, shard_files=2, engine="dask",
    )
    print(json.dumps({{"errors": r.errors, "files_done": r.files_done}}))
"""


def assert_same_store(a: Path, b: Path, same_encoder: bool = True) -> None:
    ea, eb = store.load(a), store.load(b)
    pd.testing.assert_frame_equal(ea.frame, eb.frame)
    assert ea.embeddings.shape == eb.embeddings.shape and ea.logits.shape == eb.logits.shape
    assert np.abs(ea.embeddings - eb.embeddings).max() == 0
    assert np.array_equal(ea.logits, eb.logits)
    assert ea.meta == eb.meta or not same_encoder


def _files_once(out: Path) -> list[str]:
    e = store.load(out)
    assert not e.frame[["file", "row_id"]].duplicated().any()
    return sorted(e.frame["file"].unique())


def _all_files(comp: Path) -> list[str]:
    c = Competition(comp)
    return sorted(c.relative(p, "train_audio") for p in c.audio_files("train_audio"))


def test_a_local_dask_cluster_writes_the_same_store_as_the_local_engine(synthetic_comp, tmp_path):
    local = embed_split(
        synthetic_comp, "train_audio", tmp_path / "local", encoder="placeholder", progress=False
    )
    rep = embed_split(
        synthetic_comp,
        "train_audio",
        f"file://{tmp_path / 'dask'}",
        encoder="placeholder",
        progress=False,
        engine="dask",
        workers=2,
        shard_files=3,
    )
    assert (rep.rows, rep.files_done, rep.errors) == (local.rows, local.files_done, [])
    assert_same_store(tmp_path / "local", tmp_path / "dask")
    assert not list((tmp_path / "dask").glob("_lock.json"))
    again = embed_split(
        synthetic_comp, "train_audio", tmp_path / "dask", encoder="placeholder", progress=False, engine="dask"
    )
    assert again.files_done == 0 and again.files_skipped == local.files_done


def test_a_worker_killed_mid_run_costs_no_file(synthetic_comp, tmp_path):
    """The encoder SIGKILLs its worker process once, on its 7th call: the files that worker held run again,
    and every file ends up in the store exactly once, with no error."""
    out = tmp_path / "emb"
    options = {"marker": str(tmp_path), "after": 7}
    rep = run_bounded(EMBED_ON_DASK.format(comp=str(synthetic_comp), out=str(out), options=options))
    assert (tmp_path / "killed").exists(), "a worker should have died"
    assert rep["errors"] == []
    assert _files_once(out) == _all_files(synthetic_comp)
    embed_split(synthetic_comp, "train_audio", tmp_path / "local", encoder="placeholder", progress=False)
    assert_same_store(tmp_path / "local", out, same_encoder=False)  # the dying encoder is the placeholder


def test_a_file_that_kills_workers_twice_is_recorded_as_an_error(synthetic_comp, tmp_path):
    files = _all_files(synthetic_comp)
    poison = files[4]
    digest = chunks_digest(audio.load_chunks(synthetic_comp / "train_audio" / poison, 16_000).chunks)
    out = tmp_path / "emb"
    options = {"marker": str(tmp_path), "after": 10**6, "poison": digest}
    rep = run_bounded(EMBED_ON_DASK.format(comp=str(synthetic_comp), out=str(out), options=options))
    assert [e["file"] for e in rep["errors"]] == [poison]
    assert "died each time" in rep["errors"][0]["error"]
    assert _files_once(out) == [f for f in files if f != poison]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask(*args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    exe = Path(sys.executable).with_name("dask")
    return subprocess.Popen([str(exe), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


@pytest.mark.slow
def test_the_cli_on_a_hand_started_scheduler_survives_a_killed_worker(synthetic_comp, tmp_path):
    """As the issue's owner will: `dask scheduler --port P`, two `dask worker tcp://127.0.0.1:P`, `birdkit
    embed ... --engine dask --scheduler tcp://127.0.0.1:P`, one worker killed mid-run, compared with a local run."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    procs = [_dask("scheduler", "--port", str(port), "--no-dashboard")]
    try:
        time.sleep(2)
        procs += [_dask("worker", address, "--nthreads", "1", "--no-dashboard") for _ in range(2)]
        out = tmp_path / "emb"
        cmd = [sys.executable, "-m", "birdkit.cli.main", "embed", str(synthetic_comp), "--out", str(out)]
        cmd += ["--encoder", "worker_jobs:SlowPlaceholder", "--engine", "dask", "--scheduler", address]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
        run = subprocess.Popen([*cmd, "--shard-files", "1"], env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.time() + 120
        while time.time() < deadline and len(list(out.glob("part-*.parquet"))) < 2:
            time.sleep(0.05)
        # the machine is lost: the worker process holding tasks, then its nanny (`dask worker` itself)
        children = subprocess.run(["pgrep", "-P", str(procs[1].pid)], capture_output=True, text=True).stdout
        for pid in [*map(int, children.split()), procs[1].pid]:
            os.kill(pid, signal.SIGKILL)
        _, err = run.communicate(timeout=180)
        assert run.returncode == 0, err[-2000:]
        assert "its worker was lost; running it again" in err
        assert _files_once(out) == _all_files(synthetic_comp)
        assert (
            main(["embed", str(synthetic_comp), "--out", str(tmp_path / "local"), "--encoder", "placeholder"])
            == 0
        )
        assert_same_store(tmp_path / "local", out, same_encoder=False)
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_an_unreachable_scheduler_is_a_clear_error(synthetic_comp, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(dask_engine, "CONNECT_TIMEOUT_S", 2)
    address = f"tcp://127.0.0.1:{_free_port()}"
    argv = ["embed", str(synthetic_comp), "--out", str(tmp_path / "e"), "--encoder", "placeholder"]
    assert main([*argv, "--engine", "dask", "--scheduler", address]) == 2
    err = capsys.readouterr().err
    assert f"--scheduler {address}" in err and "dask scheduler --port" in err
    assert main([*argv, "--scheduler", address]) == 2
    assert "needs --engine dask" in capsys.readouterr().err


def test_birdnet_on_dask_writes_the_same_store_as_local(minicomp, tmp_path):
    """Real BirdNET on three short minicomp soundscapes (35 s): a Dask worker keeps each result until the client
    fetches it, so a result that pinned the interpreter's buffers would break the next file's run."""
    comp = tmp_path / "comp"
    (comp / "unlabeled_soundscapes").mkdir(parents=True)
    for name in ("unlabeled_004.ogg", "unlabeled_005.ogg", "unlabeled_006.ogg"):
        (comp / "unlabeled_soundscapes" / name).symlink_to(minicomp / "unlabeled_soundscapes" / name)
    for f in ("sample_submission.csv", "eBird_Taxonomy_v2021.csv"):
        (comp / f).symlink_to(minicomp / f)
    kw = {"encoder": "birdnet", "progress": False}
    embed_split(comp, "unlabeled_soundscapes", tmp_path / "local", **kw)
    rep = embed_split(comp, "unlabeled_soundscapes", tmp_path / "dask", engine="dask", workers=1, **kw)
    assert rep.errors == [] and rep.files_done == 3
    assert_same_store(tmp_path / "local", tmp_path / "dask")
