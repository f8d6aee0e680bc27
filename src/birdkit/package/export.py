"""Export trained heads as a Kaggle dataset folder that the offline inference notebook mounts.

Layout (the inference side, ``birdkit.heads.runner``, reads exactly this)::

    DATASET/
      birdkit/                  the kit's package source (no __pycache__): the notebook puts DATASET on sys.path
      encoders/birdnet/         BirdNET V2.4 model + labels (+ its CC BY-NC-SA licence) when a head needs it
      encoders/<name>.tflite    compiled encoders (`birdkit compile`) + their <name>.json sidecar
      heads/<name>.tflite       embeddings [B, embedding_dim] float32 -> logits [B, len(species)]
      heads/<name>.json         the model card + "tflite": {sha256, parity_max_abs, ...}
      manifest.json             sha256 + size of every other file (not dataset-metadata.json: kaggle keeps it)
      dataset-metadata.json     title, id owner/slug, one licence

Heads are rebuilt in TensorFlow from the PyTorch weights instead of going through ONNX: in eval mode a head is
affine maps and ReLUs, so each BatchNorm folds into its neighbouring Linear (in float64, then float32) and
Dropout vanishes. Every exported head is run through the TFLite runtime against the PyTorch head on real
embeddings (the training store, or ``parity_store``) and the export fails when they differ by more than
``PARITY_TOL`` x the logit scale.

Nothing local leaves the machine: cards are copied with absolute paths cut to their last component, and a final
scan refuses the folder if any file holds the home, repository or temp path, or a credential value.
The folder is built beside the target and swapped in whole, so a failed export never leaves half a dataset.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from birdkit import __version__
from birdkit.errors import BirdkitError
from birdkit.io import atomic_write_bytes, atomic_write_json
from birdkit.kaggle import dataset_metadata, find_credentials, validate_dataset_metadata
from birdkit.package.compile import import_tf

log = logging.getLogger(__name__)

HEAD_INPUT = "embedding"
HEAD_OUTPUT = "logits"
# |TFLite - PyTorch| on logits must stay under PARITY_TOL * max(1, max |logit|): float32 summation order only.
PARITY_TOL = 1e-4
PARITY_ROWS = 1024
MANIFEST = "manifest.json"
DATASET_METADATA = "dataset-metadata.json"
DEFAULT_TITLE = "birdkit BirdCLEF models"
DEFAULT_SLUG = "birdkit-models"
# BirdNET's model (shipped inside the dataset when a head uses it) is CC BY-NC-SA 4.0; the dataset inherits it.
DEFAULT_LICENSE = "CC-BY-NC-SA-4.0"
PLACEHOLDER_OWNER = "INSERT_OWNER"
BIRDNET_FILES = ("BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite", "BirdNET_GLOBAL_6K_V2.4_Labels.txt", "LICENSE")
_SKIP_NAMES = {
    "__pycache__",
    ".DS_Store",
    ".ipynb_checkpoints",
    ".pytest_cache",
    ".mypy_cache",
    ".ruff_cache",
}
_SKIP_SUFFIXES = (".pyc", ".pyo", ".tmp", ".part", ".egg-info")
_CREDENTIAL_FILES = {"kaggle.json", "access_token", "access_token.txt", "credentials.json", ".env", ".netrc"}


class ExportError(BirdkitError):
    """An export that cannot be made as asked; the message names the file and the fix."""


def safe_name(name: str) -> str:
    """A file-name-safe form of a head name (it becomes heads/<name>.tflite)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "model"


# --- heads: PyTorch -> folded affine layers -> TensorFlow -> TFLite ---------------------------------------


@dataclass
class Affine:
    """x -> x @ w + b, with w [in, out] (dense) or a vector [in] (diagonal, a lone BatchNorm), in float64."""

    w: np.ndarray
    b: np.ndarray
    diagonal: bool = False

    def then(self, nxt: Affine) -> Affine:
        """The composition ``nxt(self(x))``."""
        if nxt.diagonal:
            w = self.w * nxt.w if self.diagonal else self.w * nxt.w[None, :]
            return Affine(w, self.b * nxt.w + nxt.b, self.diagonal)
        if self.diagonal:
            return Affine(self.w[:, None] * nxt.w, self.b @ nxt.w + nxt.b)
        return Affine(self.w @ nxt.w, self.b @ nxt.w + nxt.b)


Layer = Affine | str  # "relu"


def fold_head(module: Any) -> list[Layer]:
    """An eval-mode head as affine maps and "relu"s, BatchNorm folded into its neighbours, Dropout dropped."""
    from torch import nn

    def leaves(m: nn.Module) -> Iterable[nn.Module]:
        if isinstance(m, nn.Sequential):
            for child in m:
                yield from leaves(child)
        else:
            yield m

    layers: list[Layer] = []
    for m in leaves(module):
        if isinstance(m, nn.Linear):
            w = m.weight.detach().double().numpy().T
            b = m.bias.detach().double().numpy() if m.bias is not None else np.zeros(w.shape[1])
            step: Layer = Affine(w, b)
        elif isinstance(m, nn.BatchNorm1d):
            if m.running_mean is None or m.running_var is None:
                raise ExportError(
                    "BatchNorm1d without running statistics cannot be exported; train with them"
                )
            scale = 1.0 / np.sqrt(m.running_var.detach().double().numpy() + m.eps)
            if m.affine:
                scale = scale * m.weight.detach().double().numpy()
            shift = -m.running_mean.detach().double().numpy() * scale
            if m.affine:
                shift = shift + m.bias.detach().double().numpy()
            step = Affine(scale, shift, diagonal=True)
        elif isinstance(m, nn.ReLU):
            step = "relu"
        elif isinstance(m, nn.Dropout | nn.Identity):
            continue
        else:
            raise ExportError(
                f"head layer {type(m).__name__} has no TFLite export here; heads are Linear, BatchNorm1d, ReLU, "
                "Dropout (birdkit.heads.build_head)"
            )
        last = layers[-1] if layers else None
        if isinstance(step, Affine) and isinstance(last, Affine) and _worth_merging(last, step):
            layers[-1] = last.then(step)
        else:
            layers.append(step)
    return layers


def _worth_merging(a: Affine, b: Affine) -> bool:
    """Merge two adjacent affine maps unless the product matrix is larger than both (a wide bottleneck)."""
    if a.diagonal or b.diagonal:
        return True
    return a.w.shape[0] * b.w.shape[1] <= a.w.size + b.w.size


def head_to_tflite(module: Any, in_dim: int) -> bytes:
    """A head as a TFLite flatbuffer: signature ``serving_default``, input ``embedding`` [B, in_dim] float32
    (dynamic batch), output ``logits``."""
    tf = import_tf()
    layers = fold_head(module)
    consts = [
        (tf.constant(lay.w.astype(np.float32)), tf.constant(lay.b.astype(np.float32)), lay.diagonal)
        if isinstance(lay, Affine)
        else lay
        for lay in layers
    ]

    class Head(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, in_dim], tf.float32, name=HEAD_INPUT)])
        def serve(self, x: Any) -> dict:
            for c in consts:
                if c == "relu":
                    x = tf.nn.relu(x)
                else:
                    w, b, diagonal = c
                    x = x * w + b if diagonal else tf.matmul(x, w) + b
            return {HEAD_OUTPUT: x}

    head = Head()
    conv = tf.lite.TFLiteConverter.from_concrete_functions([head.serve.get_concrete_function()], head)
    return conv.convert()


def tflite_logits(model: bytes | str | Path, x: np.ndarray) -> np.ndarray:
    """Run an exported head over embeddings [n, D] with the TFLite runtime (the one the notebook uses)."""
    from birdkit import runtime

    interp = runtime.make_interpreter(model if isinstance(model, bytes) else Path(model))
    runner = interp.get_signature_runner("serving_default")
    return np.asarray(runner(**{HEAD_INPUT: np.ascontiguousarray(x, dtype=np.float32)})[HEAD_OUTPUT])


def parity(module: Any, model: bytes | str | Path, x: np.ndarray) -> tuple[float, float]:
    """(max |TFLite - PyTorch| over the logits of ``x``, the tolerance it must meet)."""
    from birdkit.heads.model import predict_logits

    ref = predict_logits(module, np.array(x, dtype=np.float32))
    got = tflite_logits(model, x)
    if got.shape != ref.shape:
        raise ExportError(f"TFLite head output {got.shape} differs from PyTorch {ref.shape}")
    return float(np.abs(got - ref).max()), PARITY_TOL * max(1.0, float(np.abs(ref).max()))


def parity_rows(x: np.ndarray, n: int = PARITY_ROWS) -> np.ndarray:
    """Up to ``n`` rows spread evenly over a store (so every file and species region is represented)."""
    if len(x) <= n:
        return x
    return x[np.linspace(0, len(x) - 1, n).round().astype(int)]


# --- the dataset folder ------------------------------------------------------------------------------------


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
    files: int = 0
    bytes: int = 0


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


def encoder_name(card: Mapping) -> str:
    enc = card.get("encoder")
    if isinstance(enc, Mapping):
        return str(enc.get("name") or "birdnet")
    return str(enc or "birdnet")


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


def default_dataset_id(slug: str = DEFAULT_SLUG) -> str:
    """owner/slug with the owner from the Kaggle credentials when they name one, else a placeholder that
    `birdkit kaggle publish` refuses with instructions."""
    user = find_credentials().username
    return f"{user or PLACEHOLDER_OWNER}/{slug}"


# --- no secrets, no local paths ----------------------------------------------------------------------------


def _secret_values(env: Mapping[str, str]) -> list[tuple[str, bytes]]:
    """Credential values that must never be exported: env secrets and the contents of Kaggle's token files."""
    found: list[tuple[str, bytes]] = []
    for k, v in env.items():
        if re.search(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL", k, re.I) and len(v.strip()) >= 8:
            found.append((f"the value of ${k}", v.strip().encode()))
    home = Path(env.get("HOME") or Path.home())
    for p in (
        home / ".kaggle" / "access_token",
        home / ".kaggle" / "kaggle.json",
        home / ".config/kaggle/kaggle.json",
    ):
        try:
            text = p.read_text().strip()
        except OSError:
            continue
        if p.suffix == ".json":
            try:
                key = json.loads(text).get("key", "")
            except ValueError:
                key = ""
            if len(key) >= 8:
                found.append((f"the key in ~/{p.relative_to(home)}", key.encode()))
        elif len(text) >= 8:
            found.append((f"the token in ~/{p.relative_to(home)}", text.encode()))
    return found


def _local_paths(extra: Iterable[Path]) -> list[tuple[str, str]]:
    """Absolute local paths whose appearance in an exported file would leak this machine's layout."""
    paths = {
        "the home folder": Path.home(),
        "the package checkout": package_source().parent.parent,
        "the working directory": Path.cwd(),
        "the temp folder": Path(tempfile.gettempdir()),
    }
    for i, p in enumerate(extra):
        paths[f"the export folder ({i})"] = p
    out = []
    for label, p in paths.items():
        s = str(p.resolve()) if p.exists() else str(p)
        if len(s) > 1 and s not in ("/", "\\"):
            out.append((label, s))
            if str(p) != s:
                out.append((label, str(p)))
    return out


_KEY_PATTERNS = [
    ("a kaggle.json key", re.compile(rb'"key"\s*:\s*"[0-9a-f]{32}"')),
    ("a KAGGLE_KEY assignment", re.compile(rb"KAGGLE_KEY\s*[=:]\s*['\"]?[0-9a-fA-F]{32}")),
    ("a KAGGLE_API_TOKEN assignment", re.compile(rb"KAGGLE_API_TOKEN\s*[=:]\s*['\"]?[A-Za-z0-9_\-]{20,}")),
]


def scan_for_secrets(
    root: str | Path, env: Mapping[str, str] | None = None, extra_paths: Iterable[Path] = ()
) -> list[str]:
    """Every file under ``root`` (text and binary) that holds a credential value, a credential file name, or
    an absolute local path (home, checkout, working directory, temp); one line per finding, values not shown."""
    root = Path(root)
    env = os.environ if env is None else env
    secrets = _secret_values(env)
    paths = [
        (label, re.compile(re.escape(s.encode()) + rb"(?=[/\\\"'\s:]|$)"))
        for label, s in _local_paths(extra_paths)
    ]
    findings = []
    for p in sorted(root.rglob("*")):
        if not p.is_file():
            continue
        rel = p.relative_to(root).as_posix()
        if p.name in _CREDENTIAL_FILES or p.suffix in (".pem", ".key"):
            findings.append(f"{rel}: a credential file")
            continue
        data = p.read_bytes()
        for label, value in secrets:
            if value in data:
                findings.append(f"{rel}: holds {label}")
        for label, pattern in _KEY_PATTERNS:
            if pattern.search(data):
                findings.append(f"{rel}: holds {label}")
        for label, pattern in paths:
            m = pattern.search(data)
            if m:
                line = data.count(b"\n", 0, m.start()) + 1
                findings.append(f"{rel}:{line}: holds an absolute path under {label}")
    return findings


# --- the export itself -------------------------------------------------------------------------------------


def _parity_inputs(
    card: Mapping, in_dim: int, parity_store: Path | None, loaded: dict[Path, np.ndarray]
) -> tuple[np.ndarray, str]:
    """Real embeddings to check parity on: the given store, else the card's training store when it is here.
    ``loaded`` keeps stores already read (a sweep's heads share one)."""
    from birdkit.store import StoreError, load

    candidates = [parity_store] if parity_store is not None else []
    train = (
        (card.get("training_store") or {}).get("path")
        if isinstance(card.get("training_store"), Mapping)
        else None
    )
    if parity_store is None and train:
        candidates.append(Path(train))
    for c in candidates:
        if c not in loaded:
            try:
                loaded[c] = parity_rows(load(c).embeddings)
            except StoreError:
                if c is parity_store:
                    raise
                continue
        x = loaded[c]
        if x.shape[1] != in_dim:
            raise ExportError(f"{c}: embeddings are {x.shape[1]}-d, the head takes {in_dim}-d")
        return x, f"store {c.name} ({len(x)} rows)"
    log.warning("no embedding store for parity (pass --parity-store); checking on Gaussian inputs instead")
    rng = np.random.default_rng(0)
    return rng.normal(size=(256, in_dim)).astype(np.float32), "gaussian (256 rows; no store available)"


def _encoder_files(name: str, compiled: Mapping[str, Path]) -> dict[str, Path]:
    """Dataset-relative path -> source file for one encoder."""
    if name in compiled:
        src = Path(compiled[name])
        if src.suffix != ".tflite" or not src.is_file():
            raise ExportError(f"{src}: not a compiled encoder (.tflite); make one with `birdkit compile`")
        files = {f"encoders/{name}.tflite": src}
        if src.with_suffix(".json").is_file():
            files[f"encoders/{name}.json"] = src.with_suffix(".json")
        return files
    if name == "birdnet":
        from birdkit.encoders.birdnet import model_dir

        d = model_dir()
        return {f"encoders/birdnet/{f}": d / f for f in BIRDNET_FILES if (d / f).is_file()}
    raise ExportError(
        f"a head needs encoder {name!r}, which is neither built in (birdnet) nor given; compile it with "
        f"`birdkit compile SAVED_MODEL --out {name}.tflite` and pass `--encoder {name}={name}.tflite`"
    )


def _encoder_dim(name: str, files: Mapping[str, Path]) -> int | None:
    if name == "birdnet":
        from birdkit.encoders.birdnet import EMBEDDING_DIM

        return EMBEDDING_DIM
    side = files.get(f"encoders/{name}.json")
    return int(json.loads(side.read_text())["embedding_dim"]) if side else None


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
    """Write the Kaggle dataset folder ``out`` for the trained heads in ``models`` (see the module docstring).

    ``encoders`` maps encoder names to compiled ``.tflite`` files (`birdkit compile`); ``include_encoders``
    adds encoders no head needs (BirdNET alone, for a passthrough submission).
    """
    from birdkit.heads.model import load_head

    out = Path(out)
    dirs = model_dirs(models)
    compiled = {k: Path(v) for k, v in (encoders or {}).items()}
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
    if out.exists() and any(out.iterdir()) and not (out / MANIFEST).exists():
        raise ExportError(
            f"{out}: exists and is not a birdkit export (no {MANIFEST}); give an empty or new --out"
        )

    report = ExportReport(out, dataset_id)
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = out.parent / f".{out.name}.tmp-{uuid.uuid4().hex[:8]}"
    stage.mkdir()
    try:
        (stage / "heads").mkdir()
        needed: dict[str, int] = {}
        names: set[str] = set()
        stores: dict[Path, np.ndarray] = {}
        for d in dirs:
            module, card = load_head(d)
            name = safe_name(str(card.get("name") or d.name))
            if name in names:
                raise ExportError(f"{d}: a second head named {name!r}; rename one (card.json 'name')")
            names.add(name)
            in_dim, out_dim = int(card["head"]["in_dim"]), int(card["head"]["out_dim"])
            if len(card.get("species", [])) != out_dim:
                raise ExportError(
                    f"{d / 'card.json'}: {len(card.get('species', []))} species but out_dim {out_dim}"
                )
            enc = encoder_name(card)
            needed.setdefault(enc, in_dim)
            if needed[enc] != in_dim:
                raise ExportError(
                    f"{d}: heads on encoder {enc!r} disagree on embedding size ({needed[enc]} vs {in_dim})"
                )
            x, source = _parity_inputs(card, in_dim, Path(parity_store) if parity_store else None, stores)
            data = head_to_tflite(module, in_dim)
            max_abs, tol = parity(module, data, x)
            if not max_abs <= tol:
                raise ExportError(
                    f"{d}: TFLite head differs from PyTorch by {max_abs:.3g} > {tol:.3g}; not exported"
                )
            atomic_write_bytes(stage / "heads" / f"{name}.tflite", data)
            digest = hashlib.sha256(data).hexdigest()
            exported = scrub_paths(card)
            exported["tflite"] = {
                "file": f"heads/{name}.tflite",
                "sha256": digest,
                "size": len(data),
                "input": {"name": HEAD_INPUT, "shape": [-1, in_dim], "dtype": "float32"},
                "output": {"name": HEAD_OUTPUT, "shape": [-1, out_dim], "dtype": "float32", "kind": "logits"},
                "parity_max_abs": max_abs,
                "parity_tolerance": tol,
                "parity_inputs": source,
                "exported_by": f"birdkit {__version__}",
            }
            atomic_write_json(stage / "heads" / f"{name}.json", exported)
            report.heads.append(HeadExport(name, enc, in_dim, out_dim, max_abs, tol, source, len(data)))
            log.info("%s: parity max |diff| %.2e (tol %.1e) on %s", name, max_abs, tol, source)

        for enc in sorted(set(needed) | set(include_encoders) | set(compiled)):
            files = _encoder_files(enc, compiled)
            dim = _encoder_dim(enc, files)
            if enc in needed and dim is not None and dim != needed[enc]:
                raise ExportError(
                    f"encoder {enc!r} gives {dim}-d embeddings but its heads take {needed[enc]}-d"
                )
            for rel, src in files.items():
                (stage / rel).parent.mkdir(parents=True, exist_ok=True)
                if src.suffix == ".json":
                    atomic_write_json(stage / rel, scrub_paths(json.loads(src.read_text())))
                else:
                    shutil.copyfile(src, stage / rel)
            report.encoders.append(enc)

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
        _swap_into_place(stage, out)
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


def _swap_into_place(stage: Path, out: Path) -> None:
    """Replace ``out`` by ``stage``: rename the old one aside, rename the new one in, then delete the old."""
    old = out.parent / f".{out.name}.old-{uuid.uuid4().hex[:8]}"
    if out.exists():
        os.replace(out, old)
    os.replace(stage, out)
    shutil.rmtree(old, ignore_errors=True)
