"""The exported dataset folder: where each file goes, the kit's own source, the manifest, and the swap into place.

Layout (the inference side, ``birdkit.heads.runner``, reads exactly this)::

    DATASET/
      birdkit/                  the kit's package source (no __pycache__): the notebook puts DATASET on sys.path
      encoders/<name>/          an encoder's own files (its ``export_files``): BirdNET's model; a Perch 2.0
                                NAME.onnx + NAME.json (tensor names) + NAME.labels.csv; EnCodec's checkpoint
      encoders/<name>.tflite    compiled encoders (`birdkit compile`) + their <name>.json sidecar
      wheels/*.whl              runtimes the notebook installs offline if its Python lacks them (onnxruntime)
      heads/<name>.tflite       embeddings [B, embedding_dim] float32 -> logits [B, len(species)]
      heads/<name>.json         the model card + "tflite": {sha256, parity_max_abs, ...}
      manifest.json             sha256 + size of every other file (not dataset-metadata.json: kaggle keeps it)
      dataset-metadata.json     title, id owner/slug, one licence

Nothing local leaves the machine: JSON copied in has its absolute paths cut to their last component.
The folder is built beside the target and swapped in whole, so a failed export never leaves half a dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from birdkit import __version__
from birdkit.io import atomic_write_json
from birdkit.package.errors import ExportError

MANIFEST = "manifest.json"
DATASET_METADATA = "dataset-metadata.json"
HEADS = "heads"
ENCODERS = "encoders"
_SKIP_NAMES = {
    "__pycache__",
    ".DS_Store",
    ".ipynb_checkpoints",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".tmp", ".part", ".egg-info")


def safe_name(name: str) -> str:
    """A file-name-safe form of a head name (it becomes heads/<name>.tflite)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


def model_dirs(paths: Iterable[str | Path]) -> list[Path]:
    """Model folders from the arguments: a folder with card.json, or a folder of such folders (``models/``)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if (p / "card.json").is_file():
            out.append(p)
        elif p.is_dir() and any(p.glob("*/card.json")):
            out.extend(sorted(c.parent for c in p.glob("*/card.json")))
        else:
            raise ExportError(
                f"{p}: no card.json here or in its sub-folders; train a head with `birdkit train`"
            )
    return out


def scrub_paths(obj: Any) -> Any:
    """A card with every absolute path cut to its last component: local paths mean nothing on Kaggle."""
    if isinstance(obj, Mapping):
        return {k: scrub_paths(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub_paths(v) for v in obj]
    if isinstance(obj, str) and _looks_absolute(obj):
        return Path(obj.rstrip("/\\")).name or "."
    return obj


def _looks_absolute(s: str) -> bool:
    return bool(re.match(r"^(/[^/\s]|~[/\\]|[A-Za-z]:[/\\]|\\\\)", s)) and "\n" not in s and len(s) < 4096


def copy_in(src: Path | dict, dst: Path) -> None:
    """Copy one file into the folder; JSON (a compiled encoder's sidecar) with its local paths cut. A dict is a
    sidecar an encoder made for the export: written as JSON, paths cut the same way."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(src, dict):
        atomic_write_json(dst, scrub_paths(src))
    elif src.suffix == ".json":
        atomic_write_json(dst, scrub_paths(json.loads(src.read_text())))
    else:
        shutil.copyfile(src, dst)


def package_source() -> Path:
    """The birdkit package folder this process imported (src/birdkit in a checkout)."""
    import birdkit

    return Path(birdkit.__file__).resolve().parent


def copy_package(dst: Path, src: Path | None = None) -> int:
    """Copy the kit's package source without caches or temp files; the number of files copied."""
    src = src or package_source()

    def ignore(folder: str, names: list[str]) -> set[str]:
        return {n for n in names if n in _SKIP_NAMES or n.endswith(_SKIP_SUFFIXES) or n.startswith(".")}

    shutil.copytree(src, dst, ignore=ignore)
    return sum(1 for p in dst.rglob("*") if p.is_file())


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_manifest(root: Path) -> dict:
    """sha256 and size of every file under ``root`` except the manifest and dataset-metadata.json (which kaggle
    reads and does not upload), with posix paths relative to ``root``."""
    files = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root).as_posix()
        if p.is_file() and rel not in (MANIFEST, DATASET_METADATA):
            files[rel] = {"sha256": sha256_file(p), "size": p.stat().st_size}
    return {"format": 1, "created_by": f"birdkit {__version__}", "files": files}


def verify_manifest(root: str | Path) -> list[str]:
    """Problems between a dataset folder and its manifest (empty = every file present and intact)."""
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        return [f"{path}: missing; re-export with `birdkit export`"]
    manifest = json.loads(path.read_text())
    problems = []
    for rel, entry in manifest["files"].items():
        p = root / rel
        if not p.is_file():
            problems.append(f"{p}: missing")
        elif p.stat().st_size != entry["size"] or sha256_file(p) != entry["sha256"]:
            problems.append(f"{p}: differs from the manifest (corrupt or edited after export)")
    return problems


def check_target(out: Path) -> None:
    """Refuse to replace a folder that is not an earlier export: it may hold someone's work."""
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise ExportError(
            f"{out}: exists and is not a birdkit export (no {MANIFEST}); give an empty or new --out"
        )


def staging_folder(out: Path) -> Path:
    """A fresh hidden folder beside ``out`` (same file system, so the swap is a rename)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    return stage


def swap_into_place(stage: Path, out: Path) -> None:
    """Replace ``out`` by ``stage``: rename the old one aside, rename the new one in, then delete the old."""
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    if out.exists():
        os.replace(out, old)
    os.replace(stage, out)
    shutil.rmtree(old, ignore_errors=True)
