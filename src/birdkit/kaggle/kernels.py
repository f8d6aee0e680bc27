"""Kaggle notebooks: the submission kernel (an output-free copy of the inference notebook beside its
``kernel-metadata.json``: offline, CPU, private) and ``kaggle kernels push``."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from birdkit.io import atomic_write_bytes, atomic_write_json
from birdkit.kaggle.cli import (
    COMPETITION,
    DATASET_METADATA,
    KERNEL_METADATA,
    checked,
    command_line,
    describe_files,
    print_dry_run,
    run_kaggle,
)
from birdkit.kaggle.credentials import require_credentials
from birdkit.kaggle.datasets import read_json, validate_dataset_metadata
from birdkit.kaggle.errors import KaggleError

DEFAULT_NOTEBOOK = Path("notebooks") / "inference.ipynb"
DEFAULT_KERNEL_TITLE = "birdkit inference"
KERNEL_FIELDS = {
    "id": str,
    "id_no": int,
    "title": str,
    "code_file": str,
    "language": str,
    "kernel_type": str,
    "is_private": bool,
    "enable_gpu": bool,
    "enable_tpu": bool,
    "enable_internet": bool,
    "dataset_sources": list,
    "competition_sources": list,
    "kernel_sources": list,
    "model_sources": list,
    "keywords": list,
    "docker_image_pinning_type": str,
    "docker_image": str,
    "machine_shape": str,
}


def slugify(text: str) -> str:
    """Kaggle's slug of a title: lower case, runs of other characters -> one dash."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def kernel_metadata(
    kernel_id: str, title: str, code_file: str, dataset_sources: Sequence[str], competition: str = COMPETITION
) -> dict:
    """``kernel-metadata.json`` for a code-competition submission notebook: offline, CPU, private."""
    return {
        "id": kernel_id,
        "title": title,
        "code_file": code_file,
        "language": "python",
        "kernel_type": "notebook",
        "is_private": True,
        "enable_gpu": False,
        "enable_tpu": False,
        "enable_internet": False,
        "dataset_sources": list(dataset_sources),
        "competition_sources": [competition],
        "kernel_sources": [],
        "model_sources": [],
    }


def validate_kernel_metadata(meta: Mapping, folder: Path | None = None) -> list[str]:
    """Problems with a kernel-metadata.json against the documented fields (empty = valid)."""
    problems = [f"unknown field {k!r}" for k in meta if k not in KERNEL_FIELDS]
    for k, typ in KERNEL_FIELDS.items():
        if k in meta and not isinstance(meta[k], typ):
            problems.append(f"{k} must be a {typ.__name__}, got {type(meta[k]).__name__}")
    for k in ("id", "title", "code_file", "language", "kernel_type"):
        if not meta.get(k):
            problems.append(f"{k} is required")
    ref = meta.get("id", "")
    if isinstance(ref, str) and ref:
        owner, _, slug = ref.partition("/")
        if not owner or not slug or "/" in slug:
            problems.append(f"id must be 'owner/kernel-slug', got {ref!r}")
        elif isinstance(meta.get("title"), str) and slug != slugify(meta["title"]):
            problems.append(f"id slug {slug!r} does not match the title's slug {slugify(meta['title'])!r}")
    if isinstance(meta.get("title"), str) and len(meta["title"]) < 5:
        problems.append("title must be at least 5 characters")
    if meta.get("language") not in (None, "python", "r", "rmarkdown"):
        problems.append(f"language must be python, r or rmarkdown, got {meta.get('language')!r}")
    if meta.get("kernel_type") not in (None, "script", "notebook"):
        problems.append(f"kernel_type must be script or notebook, got {meta.get('kernel_type')!r}")
    for src in meta.get("dataset_sources", []) or []:
        if not isinstance(src, str) or src.count("/") != 1:
            problems.append(f"dataset source {src!r} must be 'owner/slug'")
    for src in meta.get("kernel_sources", []) or []:
        if not isinstance(src, str) or src.count("/") != 1:
            problems.append(f"kernel source {src!r} must be 'owner/kernel-slug'")
    code = meta.get("code_file")
    if folder is not None and isinstance(code, str) and code and not (folder / code).is_file():
        problems.append(f"code_file {code!r} is not in {folder}")
    return problems


@dataclass
class PushReport:
    kernel_dir: Path
    kernel_id: str
    command: str
    metadata: dict
    ran: bool


def find_notebook(notebook: str | Path | None = None) -> Path:
    """The inference notebook: the one given, else notebooks/inference.ipynb here or in the kit's checkout."""
    if notebook is not None:
        candidates = [Path(notebook)]
    else:
        candidates = [DEFAULT_NOTEBOOK, Path(__file__).resolve().parents[3] / DEFAULT_NOTEBOOK]
    for c in candidates:
        if c.is_file():
            return c
    raise KaggleError(f"{candidates[0]}: inference notebook not found; pass --notebook PATH")


def strip_outputs(nb: dict) -> dict:
    """A notebook without outputs or execution counts: what gets pushed (outputs may hold local paths)."""
    nb = json.loads(json.dumps(nb))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    return nb


def prepare_kernel(
    dataset_dir: str | Path,
    kernel_dir: str | Path,
    *,
    notebook: str | Path | None = None,
    kernel_id: str | None = None,
    title: str = DEFAULT_KERNEL_TITLE,
    competition: str = COMPETITION,
) -> dict:
    """Write ``kernel_dir/kernel-metadata.json`` beside an output-free copy of the inference notebook."""
    dataset_dir, kernel_dir = Path(dataset_dir), Path(kernel_dir)
    ds_meta = read_json(dataset_dir / DATASET_METADATA)
    problems = validate_dataset_metadata(ds_meta)
    if problems:
        raise KaggleError(f"{dataset_dir / DATASET_METADATA}: " + "; ".join(problems))
    owner = ds_meta["id"].split("/")[0]
    kernel_id = kernel_id or f"{owner}/{slugify(title)}"
    src = find_notebook(notebook)
    try:
        nb = json.loads(src.read_text())
    except ValueError as exc:
        raise KaggleError(f"{src}: not a valid notebook ({exc})") from exc
    if not isinstance(nb, dict) or "cells" not in nb:
        raise KaggleError(f"{src}: not a Jupyter notebook (no cells)")
    kernel_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(kernel_dir / src.name, (json.dumps(strip_outputs(nb), indent=1) + "\n").encode())
    meta = kernel_metadata(kernel_id, title, src.name, [ds_meta["id"]], competition)
    problems = validate_kernel_metadata(meta, kernel_dir)
    if problems:
        raise KaggleError(
            f"{kernel_dir / KERNEL_METADATA}: " + "; ".join(problems) + " (pass --kernel-id/--title)"
        )
    atomic_write_json(kernel_dir / KERNEL_METADATA, meta)
    return meta


def push(
    dataset_dir: str | Path,
    kernel_dir: str | Path | None = None,
    *,
    notebook: str | Path | None = None,
    kernel_id: str | None = None,
    title: str = DEFAULT_KERNEL_TITLE,
    dry_run: bool = False,
) -> PushReport:
    """Prepare the kernel folder (also on a dry run: it is local and git-ignored) and ``kaggle kernels push``."""
    dataset_dir = Path(dataset_dir)
    kernel_dir = Path(kernel_dir) if kernel_dir is not None else dataset_dir.parent / "kernel"
    meta = prepare_kernel(dataset_dir, kernel_dir, notebook=notebook, kernel_id=kernel_id, title=title)
    args = ["kernels", "push", "-p", str(kernel_dir)]
    report = PushReport(kernel_dir, meta["id"], command_line(args), meta, ran=False)
    if dry_run:
        files = [f"files in {kernel_dir}:", *describe_files(kernel_dir)]
        print_dry_run(report.command, [*files, f"{KERNEL_METADATA}: " + json.dumps(meta, sort_keys=True)])
        return report
    require_credentials()
    checked(run_kaggle(args), "kernel push")
    report.ran = True
    return report
