"""Runtime wheels the exported dataset carries, for a Kaggle notebook whose Python lacks them (no internet there).

An ONNX encoder needs ``onnxruntime``; Kaggle's image may not have it. The export copies the wheel of the version
installed here into ``wheels/``, and the notebook installs it offline when the import fails
(:func:`birdkit.workflows.notebook.ensure_wheels`). The wheel is looked for, in order, in ``$BIRDKIT_WHEELS``,
pip's ``find-links`` folders, and birdkit's own cache (``~/.cache/birdkit/wheels``, where
``pip download --no-deps onnxruntime==VERSION`` puts it when the registry can be reached, unless
``BIRDKIT_WHEELS_DOWNLOAD=0``). None found: the export
goes on without it and says so; a notebook with onnxruntime already installed needs none.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

log = logging.getLogger(__name__)

WHEELS = "wheels"
# model-file suffix -> the distribution whose runtime runs it
RUNTIME_WHEELS = {".onnx": "onnxruntime"}
CACHE = Path.home() / ".cache" / "birdkit" / "wheels"


def _pip_find_links() -> list[Path]:
    """Folders pip is configured to find wheels in (``PIP_FIND_LINKS``, ``pip config``)."""
    raw = os.environ.get("PIP_FIND_LINKS", "")
    try:
        conf = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
        ).stdout
    except (OSError, subprocess.SubprocessError):
        conf = ""
    for line in conf.splitlines():
        if "find-links" in line:
            raw += " " + line.split("=", 1)[1].strip().strip("'\"")
    return [Path(p.removeprefix("file://")) for p in raw.split() if p]


def wheel_folders() -> list[Path]:
    env = os.environ.get("BIRDKIT_WHEELS")
    return [*(Path(p) for p in (env.split(os.pathsep) if env else [])), *_pip_find_links(), CACHE]


def _matches(wheel: Path, dist: str, version: str) -> bool:
    norm = re.sub(r"[-_.]+", "_", dist).lower()
    parts = wheel.name.split("-")
    return len(parts) >= 5 and re.sub(r"[-_.]+", "_", parts[0]).lower() == norm and parts[1] == version


def find_wheel(dist: str, version: str | None = None, download: bool = True) -> Path | None:
    """The wheel of ``dist`` at ``version`` (default: the installed one) for this Python, or None."""
    try:
        version = version or metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None
    for folder in wheel_folders():
        found = (
            sorted(p for p in folder.glob("*.whl") if _matches(p, dist, version)) if folder.is_dir() else []
        )
        if found:
            return found[0]
    if not download or os.environ.get("BIRDKIT_WHEELS_DOWNLOAD") == "0":
        return None
    CACHE.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", f"{dist}=={version}", "-d", str(CACHE)]
    try:
        subprocess.run(cmd, capture_output=True, timeout=300, check=True)
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("pip download %s==%s failed: %s", dist, version, exc)
        return None
    return find_wheel(dist, version, download=False)


def add_wheels(dists: list[str], folder: Path) -> list[str]:
    """Copy the wheel of each distribution into ``folder``; the file names copied (missing ones are logged)."""
    copied = []
    for dist in dists:
        wheel = find_wheel(dist)
        if wheel is None:
            log.warning(
                "no %s wheel found (set BIRDKIT_WHEELS to a folder holding one): the notebook needs %s "
                "installed in its image",
                dist, dist,
            )  # fmt: skip
            continue
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(wheel, folder / wheel.name)
        copied.append(wheel.name)
    return copied
