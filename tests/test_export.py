"""`birdkit export`: trained heads -> TFLite (parity with PyTorch on real embeddings), the encoders they need,
the kit itself, model cards, manifest and Kaggle metadata, with nothing local or secret inside."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from birdkit import store
from birdkit.heads.card import ModelCard
from birdkit.heads.model import is_residual, load_head, predict_logits
from birdkit.package import convert, layout, scan
from birdkit.package.export import DEFAULT_TITLE, ExportError, encoder_files, export

pytestmark = pytest.mark.shared

ROOT = Path(__file__).resolve().parents[1]
DATASET_ID = "someone/birdkit-models"
FAKE_KEY = "0123456789abcdef0123456789abcdef"
FAKE_TOKEN = "KGAT_fake_token_for_tests_0123456789"


@pytest.fixture(scope="module")
def trained(minicomp_train_store, minicomp_test_store, minicomp, tmp_path_factory) -> Path:
    """Two heads trained with `birdkit.heads.train` on minicomp's BirdNET embeddings: linear and MLP (BatchNorm)."""
    from birdkit.heads.card import TrainConfig
    from birdkit.heads.train import train_head

    truth = pd.read_csv(minicomp / "test_labels_5s.csv")
    models = tmp_path_factory.mktemp("models")
    for name, kind in (("lin", "linear"), ("mlp", "mlp")):
        config = TrainConfig(head=kind, hidden=64, dropout=0.2, epochs=4, seed=1)
        train_head(
            minicomp_train_store,
            models / name,
            config,
            progress=False,
            test=(minicomp_test_store, truth),
            name=name,
        )
    return models


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory) -> Path:
    """`birdkit export models/ --out DATASET --id someone/birdkit-models`, through the CLI."""
    from birdkit.cli.main import main

    out = tmp_path_factory.mktemp("submission") / "dataset"
    assert main(["export", str(trained), "--out", str(out), "--id", DATASET_ID]) == 0
    return out


def test_each_head_matches_pytorch_on_real_embeddings(trained, exported, minicomp_test_store):
    """Parity, stated: max |TFLite logit - PyTorch logit| <= 1e-4 x max(1, max |logit|) on held-out embeddings
    (the two ten-minute test soundscapes, never seen in training), through the runner the notebook uses."""
    from birdkit.heads.runner import HeadRunner

    x = store.load(minicomp_test_store).embeddings
    assert len(x) > 200  # two ten-minute soundscapes, 5 s rows
    for name in ("lin", "mlp"):
        module, card = load_head(trained / name)
        ref = predict_logits(module, x)
        tol = convert.PARITY_TOL * max(1.0, float(np.abs(ref).max()))
        got = convert.tflite_logits(exported / "heads" / f"{name}.tflite", x)
        assert got.shape == ref.shape == (len(x), len(card.species))
        assert np.abs(got - ref).max() <= tol, (name, np.abs(got - ref).max())
        runner = HeadRunner(exported / "heads" / f"{name}.tflite", batch_size=64)  # the inference path
        assert np.abs(runner(x) - ref).max() <= tol
        exported_card = json.loads((exported / "heads" / f"{name}.json").read_text())
        t = exported_card["tflite"]
        assert t["parity_max_abs"] <= t["parity_tolerance"] <= convert.PARITY_TOL * max(1.0, 50.0)
        assert t["parity_inputs"].startswith("store train")  # the training store, found from the card
        assert t["sha256"] == layout.sha256_file(exported / "heads" / f"{name}.tflite")
        assert t["input"]["shape"] == [-1, 1024] and t["output"]["kind"] == "logits"
        assert exported_card["species"] == card.species and exported_card["loss"] == card.loss
        assert exported_card["metrics"]["val"] == card.metrics["val"]
        assert ModelCard.from_json(exported_card).to_json() == exported_card  # a card, with "tflite" set


def test_batchnorm_folds_wherever_it_sits():
    """BatchNorm before, after and between Linears (and at the end) folds exactly; Dropout vanishes."""
    torch.manual_seed(0)
    m = nn.Sequential(
        nn.BatchNorm1d(16),
        nn.Linear(16, 32),
        nn.BatchNorm1d(32),
        nn.ReLU(),
        nn.Dropout(0.5),
        nn.Linear(32, 8),
        nn.ReLU(),
        nn.BatchNorm1d(8),
    )
    for bn in (m[0], m[2], m[7]):
        bn.running_mean.normal_(0, 2)
        bn.running_var.uniform_(0.2, 3)
        bn.weight.data.normal_(1, 0.3)
        bn.bias.data.normal_(0, 0.3)
    m.eval()
    x = np.random.default_rng(0).normal(size=(50, 16)).astype(np.float32)
    layers = convert.fold_head(m)
    assert [type(lay).__name__ if not isinstance(lay, str) else lay for lay in layers] == [
        "Affine",
        "relu",
        "Affine",
        "relu",
        "Affine",
    ]
    assert layers[-1].diagonal  # a lone BatchNorm after a ReLU stays a scale and shift, not a dense matrix
    y = x.astype(np.float64)
    for lay in layers:
        y = np.maximum(y, 0) if lay == "relu" else (y * lay.w + lay.b if lay.diagonal else y @ lay.w + lay.b)
    with torch.no_grad():
        ref = m(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(y, ref, atol=1e-5)
    with pytest.raises(ExportError, match="Tanh"):
        convert.fold_head(nn.Sequential(nn.Linear(4, 4), nn.Tanh()))


def test_layout_manifest_and_metadata(exported):
    ds = exported
    assert sorted(p.name for p in ds.iterdir()) == [
        "birdkit",
        "dataset-metadata.json",
        "encoders",
        "heads",
        "manifest.json",
    ]
    assert sorted(p.name for p in (ds / "heads").iterdir()) == [
        "lin.json",
        "lin.tflite",
        "mlp.json",
        "mlp.tflite",
    ]
    birdnet = ds / "encoders" / "birdnet"
    assert (birdnet / "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite").stat().st_size > 40e6
    assert len((birdnet / "BirdNET_GLOBAL_6K_V2.4_Labels.txt").read_text().splitlines()) == 6522
    # the kit's package, without caches
    assert (ds / "birdkit" / "__init__.py").exists() and (ds / "birdkit" / "heads" / "runner.py").exists()
    assert not [p for p in (ds / "birdkit").rglob("*") if p.name == "__pycache__" or p.suffix == ".pyc"]
    # manifest: every file but itself and dataset-metadata.json (kaggle reads that one, does not upload it)
    manifest = json.loads((ds / "manifest.json").read_text())
    files = {p.relative_to(ds).as_posix() for p in ds.rglob("*") if p.is_file()}
    assert set(manifest["files"]) == files - {"manifest.json", "dataset-metadata.json"}
    assert layout.verify_manifest(ds) == []
    meta = json.loads((ds / "dataset-metadata.json").read_text())
    assert meta == {"title": DEFAULT_TITLE, "id": DATASET_ID, "licenses": [{"name": "CC-BY-NC-SA-4.0"}]}
    from birdkit.kaggle.datasets import validate_dataset_metadata

    assert validate_dataset_metadata(meta) == []


def test_manifest_catches_a_changed_file(exported, tmp_path):
    ds = tmp_path / "copy"
    shutil.copytree(exported, ds)
    (ds / "heads" / "lin.json").write_text("{}")
    (ds / "birdkit" / "errors.py").unlink()
    problems = layout.verify_manifest(ds)
    assert any("lin.json" in p and "differs" in p for p in problems)
    assert any("errors.py" in p and "missing" in p for p in problems)


def test_exported_kit_imports_offline_from_the_dataset(exported):
    """The notebook puts DATASET on sys.path: the copied package (not the checkout) must import and work."""
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import birdkit, birdkit.heads.runner as hr; "
        "print(birdkit.__file__); print(len(hr.load_models(sys.argv[1]).heads))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(exported)], capture_output=True, text=True, check=True
    )
    path, n = out.stdout.split()
    assert Path(path).is_relative_to(exported) and n == "2"


def _all_text(root: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_no_secret_or_local_path_lands_in_the_export(trained, tmp_path, monkeypatch):
    """Credentials in the environment and in ~/.kaggle, absolute paths in the cards (training store, test store):
    none of it may reach any file of the exported folder."""
    home = tmp_path / "home"
    (home / ".kaggle").mkdir(parents=True)
    (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "someone", "key": FAKE_KEY}))
    (home / ".kaggle" / "access_token").write_text(FAKE_TOKEN)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KAGGLE_KEY", FAKE_KEY)
    monkeypatch.setenv("KAGGLE_API_TOKEN", FAKE_TOKEN)
    model = tmp_path / "lin"
    shutil.copytree(trained / "lin", model)
    card = json.loads((model / "card.json").read_text())
    card["training_store"]["path"] = str(trained / "emb")  # a card written by hand, or by an older birdkit...
    (model / "card.json").write_text(json.dumps(card))
    out = tmp_path / "dataset"
    r = export([model], out)  # no --id: the owner comes from kaggle.json
    assert r.dataset_id == "someone/birdkit-models"
    blob = _all_text(out)
    for needle in (str(home), str(ROOT), str(tmp_path), "/tmp/", FAKE_KEY, FAKE_TOKEN):
        assert needle.encode() not in blob, needle
    assert scan.scan_for_secrets(out) == []
    exported_card = json.loads((out / "heads" / "lin.json").read_text())
    assert (
        exported_card["training_store"]["path"] == Path(card["training_store"]["path"]).name
    )  # ...cut to a name
    assert not [p for p in out.rglob("*") if p.name in ("kaggle.json", "access_token")]


def test_export_refuses_a_leak_and_writes_nothing(trained, tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_KEY", FAKE_KEY)
    model = tmp_path / "leaky"
    shutil.copytree(trained / "lin", model)
    card = json.loads((model / "card.json").read_text())
    card["notes"] = f"trained with key {FAKE_KEY}"
    (model / "card.json").write_text(json.dumps(card))
    out = tmp_path / "dataset"
    with pytest.raises(ExportError, match=r"heads/lin\.json: holds the value of \$KAGGLE_KEY"):
        export([model], out, dataset_id=DATASET_ID)
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["leaky"]  # no half-written folder


def test_scan_finds_planted_secrets_and_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("KAGGLE_KEY", FAKE_KEY)
    (tmp_path / "ok.txt").write_text("nothing to see")
    (tmp_path / "cfg.py").write_text(f'path = "{Path.home()}/data"\n')
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01" + FAKE_KEY.encode() + b"\x02")
    (tmp_path / "kaggle.json").write_text("{}")
    (tmp_path / "notes.md").write_text('{"username": "x", "key": "' + "ab" * 16 + '"}')
    findings = "\n".join(scan.scan_for_secrets(tmp_path))
    assert "cfg.py:1: holds an absolute path under the home folder" in findings
    assert "blob.bin: holds the value of $KAGGLE_KEY" in findings
    assert "kaggle.json: a credential file" in findings
    assert "notes.md: holds a kaggle.json key" in findings
    assert "ok.txt" not in findings


def _random_head(folder: Path, encoder: str, in_dim: int, species: list[str]) -> Path:
    """A model folder with an untrained linear head on ``encoder``'s embeddings: no store, no training."""
    from birdkit.heads.model import build_head, head_spec

    folder.mkdir(parents=True)
    spec = head_spec("linear", in_dim, len(species))
    torch.manual_seed(0)
    torch.save(build_head(spec).state_dict(), folder / "head.pt")
    card = ModelCard(folder.name, species, {"name": encoder}, in_dim, spec)
    (folder / "card.json").write_text(json.dumps(card.to_json()))
    return folder


def test_encoder_files_are_what_the_encoder_class_declares(tmp_path):
    from birdkit.encoders.registry import resolve

    files, cls = encoder_files("birdnet", {})
    assert files == {f"encoders/birdnet/{k}": p for k, p in resolve("birdnet").export_files().items()}
    assert "encoders/birdnet/BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite" in files and cls.embedding_dim == 1024
    files, cls = encoder_files("placeholder", {})  # a built-in that needs no file: nothing to ship, no error
    assert files == {} and cls.name == "placeholder"
    for name in ("perch", "no-such-encoder"):  # nothing of their own to ship, none given
        with pytest.raises(ExportError, match=f"--encoder {name}={name}.tflite"):
            encoder_files(name, {})
    graph = tmp_path / "any_name.tflite"
    graph.write_bytes(b"graph")
    with pytest.raises(ExportError, match=r"any_name\.json: encoder 'mine' needs this file"):
        encoder_files("mine", {"mine": graph})
    graph.with_suffix(".json").write_text(json.dumps({"embedding_dim": 8, "source": str(tmp_path)}))
    files, _ = encoder_files("mine", {"mine": graph})
    assert files == {"encoders/mine.tflite": graph, "encoders/mine.json": graph.with_suffix(".json")}
    with pytest.raises(ExportError, match="not a compiled encoder"):
        encoder_files("mine", {"mine": graph.with_suffix(".json")})


def test_export_of_an_untrained_head_needs_no_shared_data(tmp_path):
    """Without a store the parity check runs on Gaussian inputs; BirdNET's files come from its class; a head
    whose size does not fit its encoder is refused before anything is written."""
    species = ["amecro", "amerob", "bkcchi"]
    model = _random_head(tmp_path / "models" / "tiny", "birdnet", 1024, species)
    r = export([model], tmp_path / "ds", dataset_id=DATASET_ID)
    ds = tmp_path / "ds"
    assert [h.parity_inputs for h in r.heads] == ["gaussian (256 rows; no store available)"]
    assert r.encoders == ["birdnet"] and layout.verify_manifest(ds) == []
    assert sorted(p.name for p in (ds / "heads").iterdir()) == ["tiny.json", "tiny.tflite"]
    for rel, src in encoder_files("birdnet", {})[0].items():
        assert (ds / rel).read_bytes() == src.read_bytes()
    card = ModelCard.read(ds / "heads" / "tiny.json")
    assert card.species == species and card.tflite["file"] == "heads/tiny.tflite"
    assert card.tflite["parity_max_abs"] <= card.tflite["parity_tolerance"]
    wrong = _random_head(tmp_path / "models" / "wrong", "birdnet", 16, species)
    with pytest.raises(
        ExportError, match="encoder 'birdnet' gives 1024-d embeddings but its heads take 16-d"
    ):
        export([wrong], tmp_path / "ds2", dataset_id=DATASET_ID)
    assert not (tmp_path / "ds2").exists()


def test_export_errors_name_the_fix(trained, tmp_path):
    with pytest.raises(ExportError, match="birdkit train"):
        export([tmp_path], tmp_path / "out", dataset_id=DATASET_ID)
    with pytest.raises(ExportError, match="title must be"):
        export([trained / "lin"], tmp_path / "out", dataset_id=DATASET_ID, title="abc")
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not a birdkit export"):
        export([trained / "lin"], tmp_path / "mine", dataset_id=DATASET_ID)
    assert (tmp_path / "mine" / "precious.txt").exists()


def test_export_replaces_a_previous_export_whole(trained, exported, tmp_path):
    out = tmp_path / "dataset"
    shutil.copytree(exported, out)
    (out / "heads" / "stale.tflite").write_bytes(b"old")
    export([trained / "mlp"], out, dataset_id=DATASET_ID)
    assert sorted(p.name for p in (out / "heads").iterdir()) == ["mlp.json", "mlp.tflite"]
    assert [p.name for p in tmp_path.iterdir()] == ["dataset"]


def _mount_as_kaggle(dataset: Path, mount: Path) -> Path:
    """What Kaggle serves for `kaggle datasets create -p DATASET -r zip`: top-level files (not the metadata),
    each folder zipped by the CLI and unpacked by Kaggle; read-only."""
    mount.mkdir(parents=True)
    for p in dataset.iterdir():
        if p.is_dir():
            archive = shutil.make_archive(str(mount.parent / p.name), "zip", p)
            shutil.unpack_archive(archive, mount / p.name)
        elif p.name != "dataset-metadata.json":
            shutil.copy2(p, mount / p.name)
    for p in [mount, *mount.rglob("*")]:
        p.chmod(p.stat().st_mode & ~0o222)
    return mount


def _one_minute_competition(minicomp: Path, out: Path, seconds: int = 60) -> Path:
    """A competition folder whose test set is the first minute of a minicomp soundscape (lossless WAV, same stem,
    so its rows are the store's first rows), to keep the end-to-end run short."""
    import soundfile as sf

    from birdkit.audio import decode

    (out / "test_soundscapes").mkdir(parents=True)
    shutil.copy(minicomp / "eBird_Taxonomy_v2021.csv", out / "eBird_Taxonomy_v2021.csv")
    src = sorted((minicomp / "test_soundscapes").glob("*.ogg"))[0]
    rows = {f"{src.stem}_{5 * (i + 1)}" for i in range(seconds // 5)}
    for name in ("sample_submission.csv", "test_labels_5s.csv"):  # only the rows the minute has
        frame = pd.read_csv(minicomp / name, keep_default_na=False)
        frame[frame["row_id"].isin(rows)].to_csv(out / name, index=False)
    d = decode(src)
    sf.write(
        out / "test_soundscapes" / f"{src.stem}.wav",
        d.samples[: seconds * d.sample_rate],
        d.sample_rate,
        subtype="FLOAT",
    )
    return out


@pytest.mark.slow
def test_notebook_on_the_mounted_export_equals_birdkit_infer(
    trained, exported, minicomp, minicomp_test_store, tmp_path
):
    """Done-when: the notebook, run against the exported folder as Kaggle mounts it (importing the kit from
    it), writes the same submission as `birdkit infer`, and both equal the PyTorch heads on the same chunks."""
    from birdkit.cli.main import main
    from birdkit.workflows.notebook import NOTEBOOK, run_notebook

    if not NOTEBOOK.exists():
        pytest.skip("notebooks/inference.ipynb is not there yet")
    comp = _one_minute_competition(minicomp, tmp_path / "comp")
    mount = _mount_as_kaggle(exported, tmp_path / "input" / "birdkit-models")
    assert layout.verify_manifest(mount) == []
    try:
        cli_csv = tmp_path / "cli" / "submission.csv"
        args = [
            "infer",
            "--data-dir",
            str(comp),
            "--out",
            str(cli_csv),
            "--models",
            str(mount),
            "--workers",
            "1",
            "--no-guard",
            "--quiet",
        ]
        assert main(args) == 0
        nb = run_notebook(
            comp,
            tmp_path / "nb",
            models_dir=mount,
            workers=1,
            parameters={"KIT_DIR": None, "BUDGET_MIN": 1e9},
        )
        assert f"from {mount / 'birdkit'}" in nb.notebook.read_text()  # the kit came from the dataset
        a = pd.read_csv(cli_csv).set_index("row_id")
        b = pd.read_csv(nb.submission).set_index("row_id")
        assert len(a) == 12 and list(a.index) == list(b.index) and list(a.columns) == list(b.columns)
        np.testing.assert_allclose(a.to_numpy(), b.to_numpy(), atol=1e-6)
        # and both are the trained PyTorch heads (probabilities averaged over heads) on the store's rows; a
        # residual head's output is a correction over BirdNET's own chunk logits, which the store holds
        from birdkit.heads.residual import store_base

        test = store.load(minicomp_test_store)

        def logits(name: str) -> np.ndarray:
            head, card = load_head(trained / name)
            out = predict_logits(head, test.embeddings)
            return out + store_base(test) if is_residual(card.head) else out

        probs = np.mean([torch.sigmoid(torch.from_numpy(logits(n))).numpy() for n in ("lin", "mlp")], axis=0)
        ref = pd.DataFrame(probs, index=test.frame["row_id"], columns=test.species).loc[a.index, a.columns]
        np.testing.assert_allclose(a.to_numpy(), ref.to_numpy(), atol=2e-3)
    finally:
        for p in [mount, *mount.rglob("*")]:
            p.chmod(p.stat().st_mode | 0o200)
