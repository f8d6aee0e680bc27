"""Export trained heads as the Kaggle dataset folder that the offline inference notebook mounts.

The steps, each in its own module: every head becomes a TFLite graph that must match PyTorch on real
embeddings (:mod:`.convert`); the encoders the heads need are copied in as their own classes declare
(``export_files``); the kit's source, the manifest and the Kaggle metadata are written (:mod:`.layout`, which
also documents the folder); the whole folder is scanned for credentials and local paths (:mod:`.scan`); only
then is it swapped in place of the target.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from birdkit import __version__
from birdkit.io import atomic_write_bytes, atomic_write_json
from birdkit.kaggle.credentials import find_credentials
from birdkit.kaggle.datasets import dataset_metadata, validate_dataset_metadata
from birdkit.package.convert import HEAD_INPUT, HEAD_OUTPUT, head_to_tflite, parity, parity_inputs
from birdkit.package.errors import ExportError
from birdkit.package.layout import (
    DATASET_METADATA,
    HEADS,
    MANIFEST,
    build_manifest,
    check_target,
    copy_in,
    copy_package,
    model_dirs,
    safe_name,
    scrub_paths,
    staging_folder,
    swap_into_place,
)
from birdkit.package.layout import (
    ENCODERS as ENCODERS_DIR,
)
from birdkit.package.scan import scan_for_secrets
from birdkit.package.wheels import RUNTIME_WHEELS, WHEELS, add_wheels

if TYPE_CHECKING:
    from birdkit.heads.card import ModelCard

log = logging.getLogger(__name__)

DEFAULT_TITLE = "birdkit BirdCLEF models"
DEFAULT_SLUG = "birdkit-models"
# BirdNET's model (shipped inside the dataset when a head uses it) is CC BY-NC-SA 4.0; the dataset inherits it.
DEFAULT_LICENSE = "CC-BY-NC-SA-4.0"
PLACEHOLDER_OWNER = "INSERT_OWNER"


@dataclass
class HeadExport:
    name: str
    encoder: str
    in_dim: int
    out_dim: int
    parity_max_abs: float
    parity_tolerance: float
    parity_inputs: str
    size: int


@dataclass
class ExportReport:
    out: Path
    dataset_id: str
    heads: list[HeadExport] = field(default_factory=list)
    encoders: list[str] = field(default_factory=list)
    # runtimes the notebook installs offline when its Python lacks them (wheels/)
    wheels: list[str] = field(default_factory=list)
    files: int = 0
    bytes: int = 0


def default_dataset_id(slug: str = DEFAULT_SLUG) -> str:
    """owner/slug with the owner from the Kaggle credentials when they name one, else a placeholder that
    `birdkit kaggle publish` refuses with instructions."""
    user = find_credentials().username
    return f"{user or PLACEHOLDER_OWNER}/{slug}"


def export(
    models: Iterable[str | Path],
    out: str | Path,
    *,
    dataset_id: str | None = None,
    title: str = DEFAULT_TITLE,
    license_name: str = DEFAULT_LICENSE,
    parity_store: str | Path | None = None,
    encoders: Mapping[str, str | Path] | None = None,
    include_encoders: Iterable[str] = (),
) -> ExportReport:
    """Write the Kaggle dataset folder ``out`` for the trained heads in ``models``.

    ``encoders`` maps encoder names to their model files: a compiled ``.tflite`` (`birdkit compile`), a
    ``.onnx`` (Perch 2.0), an EnCodec checkpoint; ``include_encoders`` adds encoders no head needs (BirdNET
    alone, for a passthrough submission). An ONNX encoder brings the onnxruntime wheel (``wheels/``) when one
    is found (:mod:`.wheels`), for a notebook whose Python lacks it.
    """
    out = Path(out)
    dirs = model_dirs(models)
    compiled = {k: Path(v) for k, v in (encoders or {}).items()}
    dataset_id, meta = _metadata(dataset_id, title, license_name)
    check_target(out)

    report = ExportReport(out, dataset_id)
    stage = staging_folder(out)
    try:
        needed, options = _export_heads(dirs, stage, Path(parity_store) if parity_store else None, report)
        runtimes: set[str] = set()
        for enc in sorted(set(needed) | set(include_encoders) | set(compiled)):
            files = _export_encoder(enc, needed.get(enc), compiled, stage, options.get(enc, {}))
            runtimes |= {RUNTIME_WHEELS[Path(f).suffix] for f in files if Path(f).suffix in RUNTIME_WHEELS}
            report.encoders.append(enc)
        report.wheels = add_wheels(sorted(runtimes), stage / WHEELS)
        copy_package(stage / "birdkit")
        atomic_write_json(stage / DATASET_METADATA, meta)
        atomic_write_json(stage / MANIFEST, build_manifest(stage))
        findings = scan_for_secrets(stage, extra_paths=[stage.resolve(), out.resolve()])
        if findings:
            raise ExportError(
                "the export would leak local information, so nothing was written:\n  "
                + "\n  ".join(findings)
                + "\nRemove the path or value from the named source file and export again."
            )
        swap_into_place(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    files = [p for p in out.rglob("*") if p.is_file()]
    report.files, report.bytes = len(files), sum(p.stat().st_size for p in files)
    if dataset_id.startswith(PLACEHOLDER_OWNER + "/"):
        log.warning(
            "%s: id %s has no owner; pass --id YOUR_KAGGLE_USERNAME/%s before publishing",
            out / DATASET_METADATA,
            dataset_id,
            dataset_id.split("/")[1],
        )
    return report


def _metadata(dataset_id: str | None, title: str, license_name: str) -> tuple[str, dict]:
    """The dataset id (owner from the credentials when only a slug is given) and its dataset-metadata.json;
    a missing owner passes here (publish refuses it), anything else kaggle would refuse stops the export."""
    if not dataset_id or "/" not in dataset_id:
        dataset_id = default_dataset_id(dataset_id or DEFAULT_SLUG)
    meta = dataset_metadata(dataset_id, title, license_name)
    problems = [
        p for p in validate_dataset_metadata(meta) if PLACEHOLDER_OWNER not in p and "no real owner" not in p
    ]
    if problems:
        raise ExportError(
            "dataset metadata: " + "; ".join(problems) + " (use --id OWNER/SLUG, --title, --license)"
        )
    return dataset_id, meta


def _export_heads(
    dirs: list[Path], stage: Path, parity_store: Path | None, report: ExportReport
) -> tuple[dict[str, int], dict[str, dict]]:
    """Write heads/<name>.tflite + heads/<name>.json for each model folder; {encoder name: embedding size} and
    {encoder name: the constructor options its stores recorded (label file, tensor names)}."""
    from birdkit.heads.model import load_head

    (stage / HEADS).mkdir()
    needed: dict[str, int] = {}
    options: dict[str, dict] = {}
    stores: dict[Path, np.ndarray] = {}
    for d in dirs:
        module, card = load_head(d)
        name = safe_name(card.name or d.name)
        if any(h.name == name for h in report.heads):
            raise ExportError(f"{d}: a second head named {name!r}; rename one (card.json 'name')")
        in_dim, out_dim = int(card.head["in_dim"]), int(card.head["out_dim"])
        if len(card.species) != out_dim:
            raise ExportError(f"{d / 'card.json'}: {len(card.species)} species but out_dim {out_dim}")
        enc = card.encoder_name
        needed.setdefault(enc, in_dim)
        options.setdefault(enc, dict(card.encoder.get("options") or {}))
        if needed[enc] != in_dim:
            raise ExportError(
                f"{d}: heads on encoder {enc!r} disagree on embedding size ({needed[enc]} vs {in_dim})"
            )
        x, source = parity_inputs(card, in_dim, parity_store, stores)
        report.heads.append(_write_head(stage, d, name, module, card, x, source))
    return needed, options


def _write_head(
    stage: Path, d: Path, name: str, module: Any, card: ModelCard, x: np.ndarray, source: str
) -> HeadExport:
    """Convert one head, check it against PyTorch on ``x``, write its graph and its card with "tflite" set."""
    in_dim, out_dim = int(card.head["in_dim"]), int(card.head["out_dim"])
    data = head_to_tflite(module, in_dim)
    max_abs, tol = parity(module, data, x)
    if not max_abs <= tol:
        raise ExportError(f"{d}: TFLite head differs from PyTorch by {max_abs:.3g} > {tol:.3g}; not exported")
    graph = f"{HEADS}/{name}.tflite"
    atomic_write_bytes(stage / graph, data)
    tflite = {
        "file": graph,
        "sha256": hashlib.sha256(data).hexdigest(),
        "size": len(data),
        "input": {"name": HEAD_INPUT, "shape": [-1, in_dim], "dtype": "float32"},
        "output": {"name": HEAD_OUTPUT, "shape": [-1, out_dim], "dtype": "float32", "kind": "logits"},
        "parity_max_abs": max_abs,
        "parity_tolerance": tol,
        "parity_inputs": source,
        "exported_by": f"birdkit {__version__}",
    }
    atomic_write_json(stage / HEADS / f"{name}.json", scrub_paths(replace(card, tflite=tflite).to_json()))
    log.info("%s: parity max |diff| %.2e (tol %.1e) on %s", name, max_abs, tol, source)
    return HeadExport(name, card.encoder_name, in_dim, out_dim, max_abs, tol, source, len(data))


def _export_encoder(
    name: str, heads_dim: int | None, compiled: Mapping[str, Path], stage: Path, options: Mapping[str, Any]
) -> list[str]:
    """Copy one encoder's files in; ``heads_dim`` is the embedding size its heads take (None: no head). The
    dataset-relative paths written."""
    files, cls = encoder_files(name, compiled, options)
    dim = _declared_dim(cls, files)
    if heads_dim is not None and dim is not None and dim != heads_dim:
        raise ExportError(f"encoder {name!r} gives {dim}-d embeddings but its heads take {heads_dim}-d")
    for rel, src in files.items():
        copy_in(src, stage / rel)
    return list(files)


def encoder_files(
    name: str, compiled: Mapping[str, Path], options: Mapping[str, Any] | None = None
) -> tuple[dict[str, Path | dict], type]:
    """Dataset-relative path -> source file (or a JSON sidecar to write) for one encoder, as its class declares
    them (``export_files``), and that class.

    A model file given as NAME=FILE: a compiled ``.tflite`` lands as encoders/NAME.tflite beside its NAME.json
    sidecar; any other (``.onnx``, a torch checkpoint) goes under encoders/NAME/ with what its class adds (label
    file, sidecar). A built-in encoder's own files go under encoders/NAME/. ``options``: the constructor
    options the heads' stores recorded (a label file, tensor names), so the sidecar rebuilds the same encoder;
    their ``model_path``, when that file is still here, stands in for a NAME=FILE not given.
    """
    from birdkit.encoders.registry import COMPILED, ENCODERS, resolve
    from birdkit.errors import OptionError

    opts = {k: v for k, v in (options or {}).items() if v is not None}
    recorded = opts.pop("model_path", None)  # the file the heads' stores were embedded with
    if name not in compiled and recorded and Path(recorded).is_file():
        compiled = {**compiled, name: Path(recorded)}
    nothing_to_ship = ExportError(
        f"a head needs encoder {name!r}, which has no files of its own to ship and was not given; compile "
        f"it with `birdkit compile SAVED_MODEL --out {name}.tflite` and pass `--encoder {name}={name}.tflite` "
        f"(or pass its .onnx or checkpoint file the same way)"
    )
    if name in compiled:
        src = compiled[name]
        if src.is_dir():
            raise ExportError(
                f"{src}: a folder; compile a SavedModel first with `birdkit compile {src} --out X.tflite`"
            )
        if not src.is_file():
            raise ExportError(f"{src}: no such encoder file")
        own_graph = name in ENCODERS and getattr(resolve(name), "own_graph", False)
        if src.suffix == ".tflite" and not own_graph:
            cls = resolve(COMPILED)
            found = cls.export_files(model_path=src, **opts)
            files = {f"{ENCODERS_DIR}/{name}{Path(k).suffix}": p for k, p in found.items()}
        else:
            if src.suffix != ".onnx" and name not in ENCODERS:
                raise ExportError(
                    f"{src}: not a compiled encoder (.tflite) nor an ONNX graph (.onnx); make one with "
                    "`birdkit compile`, or name a registered encoder (perch, encodec) for its checkpoint"
                )
            cls = resolve(name if name in ENCODERS else "onnx")
            found = cls.export_files(model_path=src, **opts)
            files = {f"{ENCODERS_DIR}/{name}/{k}": p for k, p in found.items()}
    else:
        try:
            cls = resolve(name)
        except OptionError:
            raise nothing_to_ship from None
        files = {f"{ENCODERS_DIR}/{name}/{k}": p for k, p in cls.export_files().items()}
        if not files and not getattr(cls, "needs_files", True):
            return files, cls  # a built-in that needs no file (the placeholder): nothing to ship
    if not files:
        raise nothing_to_ship
    missing = [p for p in files.values() if isinstance(p, Path) and not p.is_file()]
    if missing:
        raise ExportError(f"{missing[0]}: encoder {name!r} needs this file in the export, and it is missing")
    return files, cls


def _declared_dim(cls: type, files: Mapping[str, Path]) -> int | None:
    """The embedding size an encoder declares: its class's ``embedding_dim``, else its exported card's."""
    dim: Any = getattr(cls, "embedding_dim", None)
    if isinstance(dim, int):
        return dim
    for src in files.values():
        if isinstance(src, dict):
            if "embedding_dim" in src:
                return int(src["embedding_dim"])
        elif src.suffix == ".json":
            side = json.loads(src.read_text())
            if "embedding_dim" in side:
                return int(side["embedding_dim"])
    return None
