"""Our own self-supervised encoder end to end on minicomp at a tiny size: `birdkit ssl pretrain` -> `birdkit
embed --encoder ssl` -> `birdkit train` -> `birdkit export` -> the inference notebook, plus resume and parity."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from birdkit.cli.main import build_parser, main
from birdkit.encoders.registry import get_encoder, resolve
from birdkit.ssl.artifacts import PARITY_TOLERANCE, parity_waves
from birdkit.ssl.pretrain import PretrainConfig, pretrain
from birdkit.store.meta import StoreMeta

TINY = ["--size", "tiny", "--batch-size", "8", "--no-progress"]


@pytest.fixture(scope="module")
def ssl_model(minicomp, tmp_path_factory):
    """A tiny MAE ViT pretrained for two epochs on minicomp's first unlabeled soundscapes."""
    out = tmp_path_factory.mktemp("ssl") / "model"
    argv = ["ssl", "pretrain", str(minicomp), "--splits", "unlabeled_soundscapes", "--limit", "2"]
    assert main([*argv, "--out", str(out), "--epochs", "2", *TINY]) == 0
    return out


def test_pretrain_writes_the_encoder_files_with_parity(ssl_model):
    for name in (
        "encoder.tflite",
        "encoder.onnx",
        "encoder.pt",
        "encoder.json",
        "loss_curve.png",
        "history.json",
        "checkpoint.pt",
    ):
        assert (ssl_model / name).stat().st_size > 0, name
    card = json.loads((ssl_model / "encoder.json").read_text())
    assert card["objective"] == "mae" and card["sample_rate"] == 32_000
    assert card["pool"] == "band" and card["embedding_dim"] == 4 * 64  # 4 frequency rows of a 64-wide ViT
    assert card["tflite"]["parity_max_abs"] <= PARITY_TOLERANCE
    assert card["onnx"]["parity_max_abs"] <= PARITY_TOLERANCE
    rows = json.loads((ssl_model / "history.json").read_text())["rows"]
    assert [r[0] for r in rows] == list(range(1, len(rows) + 1)) and all(np.isfinite(r[2]) for r in rows)


def test_tflite_onnx_and_torch_runtimes_agree_and_the_contract_holds(ssl_model):
    x = parity_waves(5, seed=1)  # other chunks than the export's parity check, and a padded last batch
    encs = {
        r: get_encoder("ssl", model_path=ssl_model / f, runtime=r, batch_size=3)
        for r, f in (("tflite", "encoder.json"), ("onnx", "encoder.onnx"), ("torch", "encoder.pt"))
    }
    out = {r: e.embed(x) for r, e in encs.items()}
    tfl = out["tflite"]
    assert tfl.logits is None and tfl.embeddings.shape == (5, encs["tflite"].embedding_dim)
    for r in ("onnx", "torch"):
        assert np.abs(tfl.embeddings - out[r].embeddings).max() <= PARITY_TOLERANCE, r
    assert not np.allclose(tfl.embeddings[0], tfl.embeddings[1])  # noise and a chirp differ
    assert encs["tflite"].describe()["name"] == "ssl" and encs["tflite"].classes == []
    files = resolve("ssl").export_files(model_path=ssl_model)
    assert sorted(files) == ["encoder.json", "encoder.tflite"] and all(p.is_file() for p in files.values())


def test_export_changes_the_pooling_and_adds_tflite_to_an_old_model(ssl_model, tmp_path, capsys):
    """`birdkit ssl export`: a model from before the TFLite export (ONNX only, no pool recorded: cls+mean) gets
    its graph; the runtimes still agree; another --pool changes the embedding and the version."""
    import shutil

    import torch

    old = tmp_path / "old"
    shutil.copytree(ssl_model, old, ignore=shutil.ignore_patterns("cache", "checkpoint.pt"))
    weights = torch.load(old / "encoder.pt", weights_only=False)
    del weights["pool"]
    torch.save(weights, old / "encoder.pt")
    (old / "encoder.tflite").unlink()
    with pytest.raises(Exception, match="birdkit ssl export"):
        get_encoder("ssl", model_path=old)
    assert main(["ssl", "export", str(old)]) == 0
    card = json.loads((old / "encoder.json").read_text())
    assert card["pool"] == "cls+mean" and card["embedding_dim"] == 2 * 64 and card["objective"] == "mae"
    x = parity_waves(3, seed=2)
    a = get_encoder("ssl", model_path=old).embed(x).embeddings
    b = get_encoder("ssl", model_path=old, runtime="torch").embed(x).embeddings
    assert a.shape == (3, 128) and np.abs(a - b).max() <= PARITY_TOLERANCE
    assert main(["ssl", "export", str(old), "--pool", "mean", "--no-onnx"]) == 0
    assert "pool mean, 64-d" in capsys.readouterr().out
    again = json.loads((old / "encoder.json").read_text())
    assert again["version"] != card["version"] and "onnx" not in again and not (old / "encoder.onnx").exists()
    assert get_encoder("ssl", model_path=old).embed(x).embeddings.shape == (3, 64)


def test_missing_model_names_the_fix(tmp_path, capsys):
    with pytest.raises(Exception, match="birdkit ssl pretrain"):
        get_encoder("ssl", model_path=tmp_path / "nothing")


def test_bad_options_fail_cleanly(minicomp, tmp_path, capsys):
    argv = ["ssl", "pretrain", str(minicomp), "--out", str(tmp_path / "m"), "--epochs", "1", *TINY]
    assert main([*argv, "--mask-ratio", "0.95"]) == 2
    assert "--mask-ratio 0.95" in capsys.readouterr().err


def test_a_stopped_run_resumes_where_an_unbroken_one_would_be(minicomp, tmp_path):
    """Two epochs in one run, or one epoch then a second run asked for two: the same steps, losses, weights."""
    cache = tmp_path / "cache"

    def run(out, epochs):
        cfg = PretrainConfig(
            size="tiny", batch_size=8, epochs=epochs, splits=["unlabeled_soundscapes"], limit=1
        )
        return pretrain(minicomp, tmp_path / out, cfg, cache, threads=1, progress=False)

    whole = run("whole", 2)
    run("parts", 1)
    parts = run("parts", 2)
    assert parts.resumed_from == whole.steps // 2 and parts.steps == whole.steps
    h1, h2 = (json.loads((tmp_path / d / "history.json").read_text())["rows"] for d in ("whole", "parts"))
    assert [r[2] for r in h1] == pytest.approx([r[2] for r in h2], abs=1e-5)
    with pytest.raises(Exception, match="checkpoint of another run"):
        pretrain(
            minicomp, tmp_path / "parts", PretrainConfig(size="small", batch_size=8, epochs=1, limit=1), cache
        )


@pytest.mark.slow
def test_pretrain_embed_train_export_notebook(ssl_model, minicomp, tmp_path):
    """The issue's chain on minicomp, every step through the CLI or the notebook as a user runs it."""
    from birdkit.heads.runner import load_models
    from birdkit.workflows.notebook import run_notebook

    emb = tmp_path / "emb"
    embed = ["embed", str(minicomp), "--encoder", "ssl", "--split", "train_audio", "--out", str(emb)]
    args = build_parser().parse_args([*embed, "--model", str(ssl_model)])
    assert args.model == str(ssl_model)
    assert main([*embed, "--model", str(ssl_model)]) == 0
    meta = StoreMeta.read(emb / "_meta.json")
    assert meta.encoder_name == "ssl" and meta.embedding_dim == 256
    assert (
        main(
            [
                "train",
                str(emb),
                "--out",
                str(tmp_path / "models" / "ssl-lin"),
                "--epochs",
                "20",
                "--folder-labels",
                "all",
            ]
        )
        == 0
    )
    ds = tmp_path / "dataset"
    export = ["export", str(tmp_path / "models" / "ssl-lin"), "--out", str(ds), "--id", "me/birdkit-ssl"]
    assert main(export) == 0  # the store recorded the model's card: its files are found without --encoder
    graph = ssl_model / "encoder.tflite"
    assert (ds / "encoders" / "ssl" / "encoder.tflite").read_bytes() == graph.read_bytes()
    assert not (ds / "encoders" / "ssl" / "encoder.onnx").exists() and not (ds / "wheels").exists()
    assert json.loads((ds / "encoders" / "ssl" / "encoder.json").read_text())["embedding_dim"] == 256
    assert load_models(ds).encoder_files["ssl"].name == "encoder.tflite"
    # naming the graph by hand ships the same files (it is the encoder's own export, not a `compile` graph)
    by_hand = tmp_path / "dataset_by_hand"
    assert main([*export[:3], str(by_hand), "--id", "me/birdkit-ssl", "--encoder", f"ssl={graph}"]) == 0
    assert (by_hand / "encoders" / "ssl" / "encoder.tflite").read_bytes() == graph.read_bytes()
    assert not (by_hand / "encoders" / "ssl.tflite").exists()
    assert load_models(by_hand).encoder_files["ssl"].name == "encoder.tflite"
    # the shipped encoder runs where neither torch nor onnxruntime can be imported (the notebook's promise)
    probe = (
        "import sys; sys.modules.update(torch=None, onnxruntime=None); import numpy as np; "
        "from birdkit.encoders.registry import get_encoder; "
        f"e = get_encoder('ssl', model_path={str(ds / 'encoders' / 'ssl')!r}); "
        "print(e.embed(np.zeros((2, 160000), np.float32)).embeddings.shape)"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "(2, 256)", done.stderr[-2000:]
    run = run_notebook(minicomp, tmp_path / "nb", models_dir=ds, parameters={"KIT_DIR": None})
    sub = json.loads(run.profile.read_text())
    assert sub["failed_files"] == 0 and sub["config"]["heads"] == ["ssl-lin"]


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_last_checkpoint(minicomp, tmp_path):
    """SIGKILL to `birdkit ssl pretrain` once it has checkpointed: the same command continues from that step."""
    import signal
    import time

    import torch

    out = tmp_path / "m"
    argv = [sys.executable, "-m", "birdkit.cli.main", "ssl", "pretrain", str(minicomp), "--out", str(out)]
    argv += [
        "--splits",
        "unlabeled_soundscapes",
        "--limit",
        "1",
        "--threads",
        "1",
        "--checkpoint-every",
        "0.5",
    ]
    proc = subprocess.Popen([*argv, "--epochs", "100000", *TINY], stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (out / "checkpoint.pt").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.1)
    time.sleep(1.0)  # a few more checkpoints, so the kill may land during one
    proc.send_signal(signal.SIGKILL)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
    stopped = torch.load(out / "checkpoint.pt", weights_only=False)["step"]
    assert stopped > 0 and not (out / "encoder.tflite").exists()
    per_epoch = 27 // 8
    epochs = stopped // per_epoch + 1
    assert main([*argv[3:], "--epochs", str(epochs), *TINY]) == 0
    state = torch.load(out / "checkpoint.pt", weights_only=False)
    assert state["step"] == epochs * per_epoch and [h[0] for h in state["history"]] == list(
        range(1, state["step"] + 1)
    )
    assert (out / "encoder.tflite").exists()
