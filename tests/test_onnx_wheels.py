"""The runtime wheel an export carries for a notebook whose Python lacks it: found where pip keeps wheels, copied
into the dataset's wheels/, installed offline by the notebook only when the import fails. A tiny real wheel
stands in for onnxruntime's 28 MB one."""

from __future__ import annotations

import base64
import hashlib
import importlib
import sys
import zipfile
from pathlib import Path

from birdkit.package.wheels import RUNTIME_WHEELS, add_wheels, find_wheel
from birdkit.workflows.notebook import ensure_wheels

DIST = "birdkit_probe_pkg"


def _wheel(folder: Path, version: str = "0.1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{DIST}-{version}-py3-none-any.whl"
    info = f"{DIST}-{version}.dist-info"
    files = {
        f"{DIST}/__init__.py": b"ANSWER = 42\n",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {DIST}\nVersion: {version}\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }

    def digest(data: bytes) -> str:
        return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()

    record = "".join(f"{k},sha256={digest(v)},{len(v)}\n" for k, v in files.items()) + f"{info}/RECORD,,\n"
    with zipfile.ZipFile(path, "w") as z:
        for k, v in files.items():
            z.writestr(k, v)
        z.writestr(f"{info}/RECORD", record)
    return path


def test_onnx_models_bring_onnxruntime():
    assert RUNTIME_WHEELS[".onnx"] == "onnxruntime"


def test_wheel_found_copied_and_installed_offline(tmp_path, monkeypatch):
    wheel = _wheel(tmp_path / "found")
    monkeypatch.setenv("BIRDKIT_WHEELS", str(tmp_path / "found"))
    monkeypatch.setenv("BIRDKIT_WHEELS_DOWNLOAD", "0")
    assert find_wheel(DIST, "0.1", download=False) == wheel
    assert find_wheel(DIST, "0.2", download=False) is None
    assert add_wheels([DIST], tmp_path / "ds" / "wheels") == []  # not installed here: no version to match
    (tmp_path / "ds" / "wheels").mkdir(parents=True, exist_ok=True)
    (tmp_path / "ds" / "wheels" / wheel.name).write_bytes(wheel.read_bytes())
    target = tmp_path / "site"
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("PYTHONPATH", "")
    assert ensure_wheels(tmp_path / "ds", target) == [wheel.name]
    assert importlib.import_module(DIST).ANSWER == 42
    assert ensure_wheels(tmp_path / "ds", target) == []  # importable now: nothing to install
    assert ensure_wheels(None) == [] and ensure_wheels(tmp_path / "nothing") == []
    sys.modules.pop(DIST, None)


def test_export_picks_the_installed_onnxruntime_version(tmp_path, monkeypatch):
    """Only the wheel of the version installed here is shipped (the one the stores were made with)."""
    from importlib import metadata

    version = metadata.version("onnxruntime")
    found = tmp_path / "found"
    found.mkdir()
    for v in ("1.0.0", version):
        (found / f"onnxruntime-{v}-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(v.encode())
    monkeypatch.setenv("BIRDKIT_WHEELS", str(found))
    monkeypatch.setenv("BIRDKIT_WHEELS_DOWNLOAD", "0")
    name = f"onnxruntime-{version}-cp311-cp311-manylinux_2_28_x86_64.whl"
    assert add_wheels(["onnxruntime"], tmp_path / "ds" / "wheels") == [name]
    assert (tmp_path / "ds" / "wheels" / name).read_bytes() == version.encode()
