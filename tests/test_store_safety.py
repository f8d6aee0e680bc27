"""A store survives its users: one writer at a time (a lock naming its holder), a damaged shard or ``_meta.json``
named with the fix, ``embed --repair``, temporary files of a killed run cleaned, bad options refused, and a
resume with other settings told exactly what differs."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest
from worker_jobs import TESTS

from birdkit import store
from birdkit.cli.main import main
from birdkit.competition import Competition
from birdkit.store.embed import embed_split
from birdkit.store.fs import StoreFS
from birdkit.store.lock import LOCK, StoreLock, StoreLocked
from birdkit.store.meta import StoreError


def _embed(comp, out, **kw):
    return embed_split(comp, "train_audio", out, encoder="placeholder", progress=False, **kw)


def _files_once(out) -> list[str]:
    e = store.load(out)
    assert not e.frame[["file", "row_id"]].duplicated().any()
    return sorted(e.frame["file"].unique())


def _all_files(comp) -> list[str]:
    c = Competition(comp)
    return sorted(c.relative(p, "train_audio") for p in c.audio_files("train_audio"))


def test_a_second_writer_is_refused_with_the_holder_named(synthetic_comp, tmp_path):
    out = tmp_path / "emb"
    out.mkdir()
    with StoreLock(StoreFS(out)):
        held = json.loads((out / LOCK).read_text())
        assert held["pid"] == os.getpid() and held["host"] == socket.gethostname()
        with pytest.raises(StoreLocked, match=rf"pid {os.getpid()} on host .*--wait.*{LOCK}"):
            _embed(synthetic_comp, out)
    assert not (out / LOCK).exists()
    assert _files_once(_embed(synthetic_comp, out).out) == _all_files(synthetic_comp)


def test_wait_queues_behind_the_holder(synthetic_comp, tmp_path):
    out = tmp_path / "emb"
    out.mkdir()
    lock = StoreLock(StoreFS(out))
    lock.acquire()
    timer = threading.Timer(1.5, lock.release)
    timer.start()
    t0 = time.perf_counter()
    rep = _embed(synthetic_comp, out, wait=True)
    assert time.perf_counter() - t0 >= 1.4 and rep.files_done == len(_all_files(synthetic_comp))
    timer.join()


def test_the_lock_of_a_killed_run_is_taken_over_and_another_hosts_is_not(synthetic_comp, tmp_path):
    out = tmp_path / "emb"
    out.mkdir()
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    record = {"pid": int(gone.stdout), "host": socket.gethostname(), "started": "then", "token": "x"}
    (out / LOCK).write_text(json.dumps(record))
    assert _embed(synthetic_comp, out).files_done == len(_all_files(synthetic_comp))
    assert not (out / LOCK).exists()
    (out / LOCK).write_text(json.dumps({**record, "host": "elsewhere.example"}))
    with pytest.raises(StoreLocked, match="host elsewhere.example.*delete"):
        _embed(synthetic_comp, out)


def test_two_concurrent_cli_runs_never_store_a_row_twice(synthetic_comp, tmp_path):
    """The reliability issue's item 4: two `birdkit embed` into one store; one refuses, the store is whole."""
    out = tmp_path / "emb"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "birdkit.cli.main", "embed", str(synthetic_comp), "--out", str(out)]
    cmd += ["--encoder", "worker_jobs:SlowPlaceholder", "--shard-files", "1"]
    first = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and not list(out.glob("part-*.parquet")):
        time.sleep(0.02)
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert first.wait(timeout=120) == 0
    assert second.returncode == 2 and "another run is writing this store" in second.stderr
    assert f"pid {first.pid}" in second.stderr
    assert _files_once(out) == _all_files(synthetic_comp)


def test_a_truncated_shard_is_named_and_repair_re_embeds_its_files(synthetic_comp, tmp_path, capsys):
    out = tmp_path / "emb"
    _embed(synthetic_comp, out, shard_files=4)
    shard = sorted(out.glob("part-*.parquet"))[1]
    shard.write_bytes(shard.read_bytes()[:300])
    argv = ["embed", str(synthetic_comp), "--out", str(out), "--encoder", "placeholder"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert shard.name in err and "--repair" in err and "Traceback" not in err
    with pytest.raises(StoreError, match=rf"{shard.name}.*--repair"):
        store.load(out)
    assert main([*argv, "--repair"]) == 0
    assert "4 files embedded" in capsys.readouterr().out
    assert _files_once(out) == _all_files(synthetic_comp)
    assert [p.name.startswith(shard.name) for p in (out / "_corrupt").iterdir()] == [True]


def test_a_truncated_meta_file_is_named(synthetic_comp, tmp_path, capsys):
    out = tmp_path / "emb"
    _embed(synthetic_comp, out, limit=2)
    meta = out / store.META
    meta.write_text(meta.read_text()[:40])
    with pytest.raises(StoreError, match=rf"{meta}: unreadable store metadata"):
        store.load(out)
    assert main(["embed", str(synthetic_comp), "--out", str(out), "--encoder", "placeholder"]) == 2
    assert str(meta) in capsys.readouterr().err


def test_temporary_files_of_a_killed_run_are_removed_by_the_next(synthetic_comp, tmp_path):
    out = tmp_path / "emb"
    _embed(synthetic_comp, out, limit=2)
    (out / ".part-00009-dead.parquet.1234abcd.tmp").write_bytes(b"half a shard")
    _embed(synthetic_comp, out)
    assert not list(out.glob(".*.tmp"))
    assert _files_once(out) == _all_files(synthetic_comp)


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--workers", "0"], "--workers 0"),
        (["--workers", "-1"], "--workers -1"),
        (["--shard-files", "0"], "--shard-files 0"),
        (["--limit", "-1"], "--limit -1"),
    ],
)
def test_bad_embed_options_are_refused_before_any_write(synthetic_comp, tmp_path, capsys, extra, needle):
    out = tmp_path / "emb"
    assert main(["embed", str(synthetic_comp), "--out", str(out), "--encoder", "placeholder", *extra]) == 2
    assert needle in capsys.readouterr().err
    assert not out.exists()


def test_out_naming_a_file_is_refused_and_the_file_kept(synthetic_comp, tmp_path, capsys):
    out = tmp_path / "notes.txt"
    out.write_text("keep me")
    assert main(["embed", str(synthetic_comp), "--out", str(out), "--encoder", "placeholder"]) == 2
    assert "is a file, not a store folder" in capsys.readouterr().err
    assert out.read_text() == "keep me"


def test_resuming_with_other_windows_names_the_difference(minicomp, tmp_path, capsys):
    """A BirdNET store made with the paper's windows, resumed with --windows centre: the message says so."""
    out = tmp_path / "emb"
    out.mkdir()
    made = "/tmp/round/cache/birdnet_test/_meta.json"
    if not os.path.exists(made):
        pytest.skip("no precomputed BirdNET store")
    shutil.copy(made, out / store.META)
    argv = ["embed", str(minicomp), "--split", "test_soundscapes", "--out", str(out), "--windows", "centre"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert 'encoder windows (the store: "paper", this run: "centre")' in err


def test_a_store_at_an_object_store_url_holds_the_same_rows(synthetic_comp, tmp_path):
    """fsspec's in-memory file system stands in for s3:// or gs:// (no rename, no O_EXCL): same rows, same
    values, the lock taken and released, a resume that skips every file."""
    url = "memory://birdkit-test/emb"
    _embed(synthetic_comp, tmp_path / "local")
    rep = _embed(synthetic_comp, url, shard_files=5)
    assert rep.out == url and rep.files_done == len(_all_files(synthetic_comp))
    a, b = store.load(tmp_path / "local"), store.load(url)
    assert a.frame.equals(b.frame) and (a.embeddings == b.embeddings).all() and a.meta == b.meta
    assert not StoreFS(url).exists(LOCK)
    with StoreLock(StoreFS(url)), pytest.raises(StoreLocked, match="another run is writing"):
        _embed(synthetic_comp, url)
    assert _embed(synthetic_comp, url).files_skipped == len(_all_files(synthetic_comp))
