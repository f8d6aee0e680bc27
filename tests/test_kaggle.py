"""`birdkit kaggle download|publish|push`, without a network.

The real CLI code paths run against a fake ``kaggle`` executable placed first on PATH, which records its
arguments (and what the folder it was pointed at held at that moment). The real kaggle CLI is run too, with
dummy credentials in a temporary HOME and its API pointed at localhost: a valid folder must get past its local
validation and fail only when it tries to connect; an invalid one must fail at validation.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from birdkit.cli.main import main
from birdkit.kaggle import KaggleError, cli, credentials, datasets, download, kernels

DATASET_ID = "someone/birdkit-models"

FAKE_KAGGLE = r'''#!{python}
"""A stand-in for the kaggle CLI: records argv and the -p folder's files, answers like the real one."""
import json, os, shutil, sys
from pathlib import Path

args = sys.argv[1:]
folder = Path(args[args.index("-p") + 1]) if "-p" in args else None
entry = {{"args": args}}
if folder is not None and folder.is_dir():
    entry["files"] = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    meta = folder / "kernel-metadata.json"
    if meta.exists():
        entry["kernel_metadata"] = json.loads(meta.read_text())
with open(os.environ["FAKE_KAGGLE_LOG"], "a") as f:
    f.write(json.dumps(entry) + "\n")
cmd = " ".join(args[:2])
if cmd == "competitions download":
    shutil.copy(os.environ["FAKE_KAGGLE_ZIP"], folder / (args[2] + ".zip"))
    print("Downloading " + args[2] + ".zip to " + str(folder))
elif cmd == "datasets create":
    if os.environ.get("FAKE_KAGGLE_EXISTS"):
        print('Dataset creation error: The requested title "birdkit BirdCLEF models" is already in use by a '
              "dataset. Please choose another title.")
    else:
        print("Your private Dataset is being created. Please check progress at https://www.kaggle.com/datasets/x")
elif cmd == "datasets version":
    print("Dataset version is being created. Please check progress at https://www.kaggle.com/datasets/x")
elif cmd == "kernels push":
    print("Kernel version 1 successfully pushed.  Please check progress at https://www.kaggle.com/code/x")
else:
    print("unexpected command", args, file=sys.stderr)
    sys.exit(2)
'''


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    """An empty HOME and no Kaggle variables: the tests decide which credentials exist."""
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("HOME", str(h))
    for k in list(os.environ):
        if k.startswith("KAGGLE_") or k == "XDG_CONFIG_HOME":
            monkeypatch.delenv(k)
    return h


@pytest.fixture
def fake_kaggle(tmp_path, monkeypatch, home) -> Path:
    """A fake `kaggle` first on PATH and dummy legacy credentials; returns the log of its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "kaggle"
    exe.write_text(FAKE_KAGGLE.format(python=sys.executable))
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    log = tmp_path / "kaggle-calls.jsonl"
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_KAGGLE_LOG", str(log))
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "0" * 32)
    return log


def calls(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture
def dataset(tmp_path) -> Path:
    """A small folder in the exported layout (what `birdkit export` writes; its own tests cover the content)."""
    d = tmp_path / "submission" / "dataset"
    for rel, text in {
        "birdkit/__init__.py": '__version__ = "0.1.0"\n',
        "heads/lin.json": "{}",
        "heads/lin.tflite": "tflite",
        "encoders/birdnet/labels.txt": "x\n",
        "manifest.json": "{}",
    }.items():
        (d / rel).parent.mkdir(parents=True, exist_ok=True)
        (d / rel).write_text(text)
    (d / "dataset-metadata.json").write_text(
        json.dumps(datasets.dataset_metadata(DATASET_ID, "birdkit BirdCLEF models", "CC-BY-NC-SA-4.0"))
    )
    return d


@pytest.fixture
def notebook(tmp_path) -> Path:
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "metadata": {},
                "execution_count": 3,
                "source": ["print(1)\n"],
                "outputs": [{"output_type": "stream", "name": "stdout", "text": ["/home/me/secret\n"]}],
            }
        ],
        "metadata": {},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    p = tmp_path / "nb" / "inference.ipynb"
    p.parent.mkdir()
    p.write_text(json.dumps(nb))
    return p


# --- credentials -------------------------------------------------------------------------------------------


def test_missing_credentials_say_exactly_what_is_missing(home):
    creds = credentials.find_credentials()
    assert not creds
    with pytest.raises(KaggleError) as e:
        credentials.require_credentials()
    msg = str(e.value)
    for part in (
        "KAGGLE_API_TOKEN is not set",
        "~/.kaggle/access_token does not exist",
        "kaggle.json does not exist",
        "KAGGLE_USERNAME/KAGGLE_KEY are not set",
        "kaggle.com/settings",
    ):
        assert part in msg, part


def test_each_credential_source_is_found(home, monkeypatch):
    monkeypatch.setenv("KAGGLE_API_TOKEN", "KGAT_abc")
    assert credentials.find_credentials().method == "KAGGLE_API_TOKEN"
    monkeypatch.delenv("KAGGLE_API_TOKEN")
    (home / ".kaggle").mkdir()
    (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "someone"}))
    creds = credentials.find_credentials()
    assert not creds and "~/.kaggle/kaggle.json lacks key" in creds.describe()
    (home / ".kaggle" / "kaggle.json").write_text(json.dumps({"username": "someone", "key": "k" * 32}))
    creds = credentials.find_credentials()
    assert (creds.method, creds.source, creds.username) == ("kaggle.json", "~/.kaggle/kaggle.json", "someone")
    assert "k" * 32 not in creds.describe()  # where, never the value
    (home / ".kaggle" / "access_token").write_text("KGAT_abc\n")  # the token wins, as in kaggle 2.2
    creds = credentials.find_credentials()
    assert (creds.method, creds.username) == ("access_token", "someone")


def test_legacy_env_pair_and_half_pairs(home, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    assert "KAGGLE_USERNAME is set but KAGGLE_KEY is not" in credentials.find_credentials().describe()
    monkeypatch.setenv("KAGGLE_KEY", "k" * 32)
    assert credentials.find_credentials().method == "KAGGLE_USERNAME/KAGGLE_KEY"


def test_xdg_config_dir_when_no_dot_kaggle(home, monkeypatch):
    if not sys.platform.startswith("linux"):
        pytest.skip("kaggle uses ~/.config/kaggle only on Linux")
    cfg = home / ".config" / "kaggle"
    cfg.mkdir(parents=True)
    (cfg / "kaggle.json").write_text(json.dumps({"username": "someone", "key": "k" * 32}))
    assert credentials.find_credentials().source == "~/.config/kaggle/kaggle.json"


def test_the_kaggle_package_is_never_imported():
    """`import kaggle` authenticates (and exits without credentials): birdkit must only ever run the CLI."""
    code = (
        "import sys, birdkit.kaggle, birdkit.kaggle.download, birdkit.package.export, birdkit.package.check, "
        "birdkit.cli.main as m; m.build_parser(); "
        "print('kaggle' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- metadata ----------------------------------------------------------------------------------------------


def test_dataset_metadata_validation():
    ok = datasets.dataset_metadata(DATASET_ID, "birdkit BirdCLEF models", "CC-BY-NC-SA-4.0")
    assert datasets.validate_dataset_metadata(ok) == []
    assert any("title" in p for p in datasets.validate_dataset_metadata({**ok, "title": "abc"}))
    assert any("title" in p for p in datasets.validate_dataset_metadata({**ok, "title": "x" * 51}))
    assert any("owner/slug" in p for p in datasets.validate_dataset_metadata({**ok, "id": "no-owner"}))
    assert any("slug" in p for p in datasets.validate_dataset_metadata({**ok, "id": "me/Bad Slug"}))
    two = [{"name": "CC0-1.0"}, {"name": "MIT"}]
    assert any("exactly one" in p for p in datasets.validate_dataset_metadata({**ok, "licenses": two}))
    assert any(
        "licence 'MIT'" in p
        for p in datasets.validate_dataset_metadata({**ok, "licenses": [{"name": "MIT"}]})
    )
    assert any(
        "no real owner" in p
        for p in datasets.validate_dataset_metadata({**ok, "id": "INSERT_OWNER/birdkit-x"})
    )
    assert any("unknown field" in p for p in datasets.validate_dataset_metadata({**ok, "licence": "x"}))


def test_kernel_metadata_has_the_documented_fields(tmp_path):
    (tmp_path / "inference.ipynb").write_text("{}")
    meta = kernels.kernel_metadata(
        "someone/birdkit-inference", "birdkit inference", "inference.ipynb", [DATASET_ID]
    )
    assert kernels.validate_kernel_metadata(meta, tmp_path) == []
    assert set(meta) <= set(kernels.KERNEL_FIELDS)
    assert meta["enable_internet"] is False and meta["enable_gpu"] is False and meta["enable_tpu"] is False
    assert meta["competition_sources"] == ["birdclef-2024"] and meta["dataset_sources"] == [DATASET_ID]
    assert (meta["language"], meta["kernel_type"], meta["code_file"]) == (
        "python",
        "notebook",
        "inference.ipynb",
    )
    bad = {**meta, "enable_gpu": "false", "language": "cobol", "id": "someone/other-name", "colour": 1}
    problems = " | ".join(kernels.validate_kernel_metadata(bad, tmp_path))
    for part in (
        "enable_gpu must be a bool",
        "language must be",
        "does not match the title",
        "unknown field",
    ):
        assert part in problems, part
    assert "code_file" in " ".join(
        kernels.validate_kernel_metadata({**meta, "code_file": "gone.ipynb"}, tmp_path)
    )


# --- the real kaggle CLI, offline ----------------------------------------------------------------------------


def _real_kaggle(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess:
    """The installed kaggle CLI with dummy legacy credentials in a temp HOME, its API at http://localhost
    (KAGGLE_API_ENVIRONMENT=LOCALHOST), so nothing can reach Kaggle even where a network exists."""
    exe = cli.kaggle_executable({"PATH": str(Path(sys.executable).parent)})
    home = tmp_path / "kaggle-home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "KAGGLE_USERNAME": "someone",
        "KAGGLE_KEY": "0" * 32,
        "KAGGLE_API_ENVIRONMENT": "LOCALHOST",
    }
    return subprocess.run([*exe, *args], capture_output=True, text=True, env=env, timeout=120)


def _network_failure(out: str) -> bool:
    """Failed at the first API call (to the unreachable localhost API), i.e. after all local validation."""
    return "host='localhost'" in out and any(s in out for s in ("Connection refused", "Max retries exceeded"))


def test_real_kaggle_accepts_our_dataset_folder_until_the_network(dataset, tmp_path):
    r = _real_kaggle(["datasets", "create", "-p", str(dataset), "-r", "zip"], tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and _network_failure(out), out[-800:]
    assert "must be between" not in out and "Please specify" not in out
    # the same CLI rejects an invalid title before any connection: the check above is not vacuous
    meta = json.loads((dataset / "dataset-metadata.json").read_text())
    (dataset / "dataset-metadata.json").write_text(json.dumps({**meta, "title": "abc"}))
    r = _real_kaggle(["datasets", "create", "-p", str(dataset), "-r", "zip"], tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "title must be between 6 and 50" in out and not _network_failure(out)


def test_real_kaggle_accepts_our_kernel_folder_until_the_network(dataset, notebook, tmp_path):
    meta = kernels.prepare_kernel(dataset, tmp_path / "kernel", notebook=notebook)
    r = _real_kaggle(["kernels", "push", "-p", str(tmp_path / "kernel")], tmp_path)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and _network_failure(out), out[-800:]
    assert "does not resolve to the specified id" not in out  # title and id agree
    (tmp_path / "kernel" / "kernel-metadata.json").write_text(json.dumps({**meta, "language": "cobol"}))
    r = _real_kaggle(["kernels", "push", "-p", str(tmp_path / "kernel")], tmp_path)
    out = r.stdout + r.stderr
    assert "A valid language must be specified" in out and not _network_failure(out)


# --- publish -----------------------------------------------------------------------------------------------


def test_publish_creates_first_then_versions(dataset, fake_kaggle):
    r1 = datasets.publish(dataset, "first")
    r2 = datasets.publish(dataset, "retrained heads")
    log = calls(fake_kaggle)
    assert [c["args"] for c in log] == [
        ["datasets", "create", "-p", str(dataset), "-r", "zip"],
        ["datasets", "version", "-p", str(dataset), "-m", "retrained heads", "-r", "zip"],
    ]
    assert (r1.action, r2.action) == ("create", "version") and r1.ran and r2.ran
    # the sub-folders were there for `-r zip` to send (kaggle skips folders without it)
    assert {"birdkit/__init__.py", "heads/lin.tflite", "encoders/birdnet/labels.txt"} <= set(log[0]["files"])
    state = dataset.parent / datasets.PUBLISH_STATE
    assert json.loads(state.read_text()) == {"datasets": [DATASET_ID]}
    assert not (dataset / datasets.PUBLISH_STATE).exists()  # never inside the uploaded folder


def test_publish_falls_back_to_a_version_when_kaggle_has_it(dataset, fake_kaggle, monkeypatch):
    monkeypatch.setenv("FAKE_KAGGLE_EXISTS", "1")
    r = datasets.publish(dataset, "from another machine")
    assert [c["args"][:2] for c in calls(fake_kaggle)] == [["datasets", "create"], ["datasets", "version"]]
    assert r.action == "version"


def test_publish_dry_run_prints_the_command_and_files_and_runs_nothing(dataset, fake_kaggle, capsys):
    assert main(["kaggle", "publish", str(dataset), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would run: kaggle datasets create -p {dataset} -r zip" in out
    assert f"kaggle datasets version -p {dataset} -m 'birdkit export' -r zip" in out
    assert "birdkit/  (1 files" in out and "heads/  (2 files" in out and "manifest.json" in out
    assert "credentials found: KAGGLE_USERNAME/KAGGLE_KEY" in out
    assert calls(fake_kaggle) == []


def test_publish_without_credentials_stops_before_kaggle(dataset, fake_kaggle, monkeypatch, capsys):
    monkeypatch.delenv("KAGGLE_KEY")
    assert main(["kaggle", "publish", str(dataset)]) == 2
    err = capsys.readouterr().err
    assert "no Kaggle credentials" in err and "KAGGLE_USERNAME is set but KAGGLE_KEY is not" in err
    assert calls(fake_kaggle) == []


def test_publish_refuses_invalid_metadata(dataset, fake_kaggle):
    (dataset / "dataset-metadata.json").write_text(
        json.dumps(datasets.dataset_metadata("INSERT_OWNER/birdkit-models", "birdkit models", "CC0-1.0"))
    )
    with pytest.raises(KaggleError, match="--id YOUR_KAGGLE_USERNAME/birdkit-models"):
        datasets.publish(dataset)
    assert calls(fake_kaggle) == []


def test_a_kaggle_error_printed_with_exit_0_is_a_failure(dataset, fake_kaggle, monkeypatch):
    monkeypatch.setenv("FAKE_KAGGLE_EXISTS", "1")
    with pytest.raises(KaggleError, match="already in use"):
        datasets.publish(dataset, mode="create")


# --- push --------------------------------------------------------------------------------------------------


def test_push_writes_kernel_metadata_and_pushes(dataset, notebook, fake_kaggle):
    r = kernels.push(dataset, notebook=notebook)
    kernel = dataset.parent / "kernel"
    (call,) = calls(fake_kaggle)
    assert call["args"] == ["kernels", "push", "-p", str(kernel)]
    assert call["files"] == ["inference.ipynb", "kernel-metadata.json"]
    meta = call["kernel_metadata"]
    assert meta == json.loads((kernel / "kernel-metadata.json").read_text()) == r.metadata
    assert kernels.validate_kernel_metadata(meta, kernel) == []
    assert meta["id"] == "someone/birdkit-inference" and meta["title"] == "birdkit inference"
    assert meta["code_file"] == "inference.ipynb" and meta["dataset_sources"] == [DATASET_ID]
    assert meta["competition_sources"] == ["birdclef-2024"]
    assert meta["enable_internet"] is False and meta["enable_gpu"] is False
    pushed = json.loads((kernel / "inference.ipynb").read_text())
    assert pushed["cells"][0]["outputs"] == [] and pushed["cells"][0]["execution_count"] is None


def test_push_dry_run(dataset, notebook, fake_kaggle, capsys):
    args = ["kaggle", "push", "--dataset", str(dataset), "--notebook", str(notebook), "--dry-run"]
    assert main(args) == 0
    out = capsys.readouterr().out
    kernel = dataset.parent / "kernel"
    assert f"would run: kaggle kernels push -p {kernel}" in out
    assert "inference.ipynb" in out and "kernel-metadata.json" in out and '"enable_internet": false' in out
    assert calls(fake_kaggle) == []


# --- download ----------------------------------------------------------------------------------------------


def _competition_zip(path: Path, missing_audio: bool = False) -> Path:
    """A zip in the BirdCLEF 2024 layout with stub files (the layout check does not decode audio)."""
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(
            "train_metadata.csv",
            "primary_label,secondary_labels,filename\nasbfly,[],asbfly/XC1.ogg\nashdro1,[],ashdro1/XC2.ogg\n",
        )
        z.writestr("sample_submission.csv", "row_id,asbfly,ashdro1\n")
        z.writestr("eBird_Taxonomy_v2021.csv", "SPECIES_CODE,PRIMARY_COM_NAME,SCI_NAME\n")
        z.writestr("train_audio/asbfly/XC1.ogg", b"stub")
        if not missing_audio:
            z.writestr("train_audio/ashdro1/XC2.ogg", b"stub")
        z.writestr("test_soundscapes/readme.txt", "hidden test set")
        z.writestr("unlabeled_soundscapes/460830.ogg", b"stub")
    return path


def test_download_unzips_checks_and_resumes(fake_kaggle, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FAKE_KAGGLE_ZIP", str(_competition_zip(tmp_path / "src.zip")))
    out = tmp_path / "data" / "birdclef-2024"
    assert main(["kaggle", "download", "--out", str(out)]) == 0
    assert [c["args"] for c in calls(fake_kaggle)] == [
        ["competitions", "download", "birdclef-2024", "-p", str(out)]
    ]
    assert (out / "train_audio" / "ashdro1" / "XC2.ogg").read_bytes() == b"stub"
    assert not (out / "birdclef-2024.zip").exists()
    assert "layout ok: 2 species, 2 training recordings" in capsys.readouterr().out
    r = download.download(out, keep_zip=True)  # again: a fresh zip, every member already there
    assert r.skipped == 7 and r.extracted == 0 and r.layout_problems == []


def test_download_reports_a_broken_layout(fake_kaggle, tmp_path, monkeypatch):
    monkeypatch.setenv("FAKE_KAGGLE_ZIP", str(_competition_zip(tmp_path / "src.zip", missing_audio=True)))
    r = download.download(tmp_path / "out")
    assert (
        len(r.layout_problems) == 1
        and "1 files named in train_metadata.csv are missing" in r.layout_problems[0]
    )


def test_unzip_refuses_paths_outside_the_folder(tmp_path):
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(bad, "w") as z:
        z.writestr("../escape.txt", "x")
    with pytest.raises(KaggleError, match="outside"):
        download.unzip(bad, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_download_dry_run(fake_kaggle, tmp_path, capsys):
    assert main(["kaggle", "download", "--out", str(tmp_path / "d"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"would run: kaggle competitions download birdclef-2024 -p {tmp_path / 'd'}" in out
    assert calls(fake_kaggle) == [] and not (tmp_path / "d").exists()


def test_credential_files_readable_by_others_are_warned_about(home, caplog):
    """A kaggle.json or access_token others can read is found, and a warning says to chmod 600 it."""
    (home / ".kaggle").mkdir()
    token = home / ".kaggle" / "access_token"
    token.write_text("KGAT_0123456789abcdef")
    token.chmod(0o600)
    with caplog.at_level("WARNING", logger="birdkit.kaggle.credentials"):
        assert credentials.find_credentials().method == "access_token"
    assert not caplog.records
    token.chmod(0o644)
    with caplog.at_level("WARNING", logger="birdkit.kaggle.credentials"):
        assert credentials.find_credentials().method == "access_token"
    assert "~/.kaggle/access_token is readable by other users" in caplog.text and "chmod 600" in caplog.text
    token.unlink()
    caplog.clear()
    cfg = home / ".kaggle" / "kaggle.json"
    cfg.write_text(json.dumps({"username": "someone", "key": "0" * 32}))
    cfg.chmod(0o604)
    with caplog.at_level("WARNING", logger="birdkit.kaggle.credentials"):
        assert credentials.find_credentials().method == "kaggle.json"
    assert "kaggle.json is readable by other users" in caplog.text
    assert "0" * 32 not in caplog.text  # where, never the value
