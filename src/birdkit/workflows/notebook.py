"""The Kaggle inference notebook's library side, and a runner that executes the notebook with papermill.

``notebooks/inference.ipynb`` keeps its cells thin: put the kit on ``sys.path``, then call
:func:`resolve_inputs` (find the competition and the exported models the Kaggle way) and :func:`infer`
(which never ends without a valid ``submission.csv``). :func:`run_notebook` executes that notebook on local data
(the tests and ``birdkit demo`` use it), so the notebook is tested as it will run on Kaggle.

Kaggle mounts inputs read-only under ``/kaggle/input``: the competition at ``/kaggle/input/birdclef-2024`` (or,
in the newer layout, ``/kaggle/input/competitions/birdclef-2024``), datasets at ``/kaggle/input/<slug>`` (or
deeper, ``/kaggle/input/datasets/<owner>/<slug>``). In an interactive session ``test_soundscapes`` is empty;
the hidden test set appears only when the notebook is scored, so the notebook then dry-runs on a few
``unlabeled_soundscapes`` to show the whole path works.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from birdkit.competition import Competition
from birdkit.errors import BirdkitError
from birdkit.infer import InferConfig, InferResult, run_inference
from birdkit.profile import BUDGET_MIN

log = logging.getLogger(__name__)

KAGGLE_INPUT = Path("/kaggle/input")
COMPETITION_SLUG = "birdclef-2024"
NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "inference.ipynb"
SEARCH_DEPTH = 3  # /kaggle/input/datasets/<owner>/<slug>


class NotebookError(BirdkitError, FileNotFoundError):
    """An input the notebook cannot find; the message says where it looked and what to attach."""


def _candidates(root: Path, depth: int = SEARCH_DEPTH) -> list[Path]:
    """Folders under ``root`` down to ``depth`` levels, shallow first, each level sorted."""
    out: list[Path] = []
    level = [root]
    for _ in range(depth):
        level = sorted(c for d in level if d.is_dir() for c in d.iterdir() if c.is_dir())
        out += level
    return out


def find_competition(root: Path = KAGGLE_INPUT, slug: str = COMPETITION_SLUG) -> Path:
    """The competition folder: ``<root>/<slug>``, ``<root>/competitions/<slug>``, else any folder that has
    ``sample_submission.csv`` and ``test_soundscapes/``."""
    for p in (root / slug, root / "competitions" / slug):
        if (p / "sample_submission.csv").exists():
            return p
    for p in _candidates(root):
        if (p / "sample_submission.csv").exists() and (p / "test_soundscapes").is_dir():
            return p
    raise NotebookError(
        f"no competition folder under {root} (looked for {root / slug} and {root / 'competitions' / slug}); "
        f"attach the {slug} competition data to the notebook, or set DATA_DIR"
    )


def find_models(root: Path = KAGGLE_INPUT) -> Path | None:
    """The exported birdkit dataset: a folder with ``heads/`` or ``encoders/`` (and usually ``birdkit/``)."""
    found = [p for p in _candidates(root) if (p / "heads").is_dir() or (p / "encoders").is_dir()]
    found.sort(key=lambda p: (not (p / "birdkit").is_dir(), not (p / "heads").is_dir(), str(p)))
    return found[0] if found else None


def ensure_wheels(models_dir: str | Path | None, target: str | Path | None = None) -> list[str]:
    """Install, offline, each wheel the exported dataset carries (``wheels/``) whose module this Python lacks.

    The export ships ``onnxruntime``'s wheel when an encoder is an ONNX graph; Kaggle's image may lack it and has
    no internet. Installed with ``--no-deps`` into ``target`` (a temp folder, not the notebook's output), which
    goes on ``sys.path`` and ``PYTHONPATH`` so the scoring processes see it too. A wheel that will not install is
    logged, never raised: the run then writes the prior for what it cannot score, and the submission stays valid.
    """
    folder = Path(models_dir) / "wheels" if models_dir else None
    if folder is None or not folder.is_dir():
        return []
    dest = Path(target) if target else Path(tempfile.gettempdir()) / "birdkit-wheels"
    installed = []
    for wheel in sorted(folder.glob("*.whl")):
        module = wheel.name.split("-")[0].replace(".", "_").lower()
        if importlib.util.find_spec(module) is not None:
            continue
        cmd = [sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target", str(dest)]
        try:
            done = subprocess.run([*cmd, str(wheel)], capture_output=True, text=True, timeout=600)
        except (OSError, subprocess.SubprocessError) as exc:  # no pip, a read-only disk: go on without it
            log.warning("%s: offline install failed: %s", wheel.name, exc)
            continue
        if done.returncode:
            log.warning(
                "%s: offline install failed: %s", wheel.name, (done.stderr or done.stdout).strip()[-400:]
            )
            continue
        if str(dest) not in sys.path:
            sys.path.insert(0, str(dest))
            os.environ["PYTHONPATH"] = os.pathsep.join(
                p for p in (str(dest), os.environ.get("PYTHONPATH")) if p
            )
        importlib.invalidate_caches()
        log.info("installed %s offline from %s", module, wheel.name)
        installed.append(wheel.name)
    return installed


@dataclass(frozen=True)
class Inputs:
    """What the notebook will score, decided once and printed."""

    data_dir: Path
    models_dir: Path | None
    passthrough: str | None
    split: str
    limit: int | None

    @property
    def dry_run(self) -> bool:
        return self.split != "test_soundscapes"


def resolve_inputs(
    data_dir: str | Path | None = None,
    models_dir: str | Path | None = None,
    passthrough: str | None = None,
    dry_run_files: int = 3,
    root: Path = KAGGLE_INPUT,
) -> Inputs:
    """Fill in what the parameters leave open, the Kaggle way.

    No heads anywhere and no passthrough asked for: BirdNET passthrough, said in the log, so a notebook with only
    the kit attached still submits. No test soundscapes (an interactive session): the first ``dry_run_files``
    unlabeled soundscapes instead.
    """
    data = Path(data_dir) if data_dir else find_competition(root)
    models = Path(models_dir) if models_dir else (find_models(root) if root.is_dir() else None)
    if not passthrough:
        has_heads = models is not None and any((models / "heads").glob("*.tflite"))
        if not has_heads:
            log.warning(
                "no exported heads found%s; scoring with BirdNET passthrough",
                f" in {models}" if models else "",
            )
            passthrough = "birdnet"
    comp = Competition(data)
    test_dir = comp.path("test_soundscapes")
    has_test = test_dir.is_dir() and bool(comp.audio_files("test_soundscapes"))
    if has_test:
        return Inputs(data, models, passthrough, "test_soundscapes", None)
    if not comp.path("unlabeled_soundscapes").is_dir():
        raise NotebookError(f"{test_dir}: no test soundscapes and no unlabeled_soundscapes/ to dry-run on")
    log.warning(
        "%s is empty (an interactive session): dry run on the first %d unlabeled soundscapes",
        test_dir,
        dry_run_files,
    )
    return Inputs(data, models, passthrough, "unlabeled_soundscapes", dry_run_files)


def infer(
    inputs: Inputs,
    out: str | Path = "submission.csv",
    profile: str | Path | None = "profile.json",
    workers: int | None = None,
    budget_min: float | None = None,
    **options: Any,
) -> InferResult:
    """:func:`birdkit.infer.run_inference` on the resolved inputs; it writes a valid file whatever happens.

    ``options``: any other :class:`birdkit.infer.InferConfig` field (``progress``, ``windows``, ...).
    """
    config = InferConfig(
        inputs.data_dir,
        out,
        models=inputs.models_dir,
        passthrough=inputs.passthrough,
        workers=workers,
        profile=profile,
        split=inputs.split,
        limit=inputs.limit,
        budget_min=BUDGET_MIN if budget_min is None else budget_min,
        fallback=True,
        **options,
    )
    return run_inference(config)


@dataclass(frozen=True)
class NotebookRun:
    notebook: Path  # the executed copy, with outputs
    submission: Path
    profile: Path


def run_notebook(
    data_dir: str | Path,
    out_dir: str | Path,
    models_dir: str | Path | None = None,
    passthrough: str | None = None,
    workers: int | None = None,
    parameters: dict | None = None,
    notebook: str | Path = NOTEBOOK,
    kernel_name: str = "python3",
    timeout_s: int = 1800,
) -> NotebookRun:
    """Execute the inference notebook with papermill on local data; outputs land in ``out_dir``.

    The kernel imports birdkit from this very installation (``KIT_DIR``), as the Kaggle kernel imports it from
    the exported dataset. ``python3`` is the kernel spec ipykernel installs; jupyter_client starts it with the
    interpreter running this function.
    """
    import papermill as pm

    nb = Path(notebook)
    if not nb.exists():
        raise NotebookError(
            f"{nb}: the inference notebook is missing; it ships in the repository's notebooks/"
        )
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    params = {
        "DATA_DIR": str(Path(data_dir).resolve()),
        "MODELS_DIR": str(Path(models_dir).resolve()) if models_dir else None,
        "KIT_DIR": str(Path(__file__).resolve().parents[2]),
        "PASSTHROUGH": passthrough,
        "OUT": str(out / "submission.csv"),
        "PROFILE": str(out / "profile.json"),
        "WORKERS": workers,
        **(parameters or {}),
    }
    executed = out / "inference.executed.ipynb"
    pm.execute_notebook(
        str(nb),
        str(executed),
        parameters=params,
        kernel_name=kernel_name,
        cwd=str(out),
        progress_bar=False,
        execution_timeout=timeout_s,
        log_output=False,
        stdout_file=None,
        stderr_file=None,
    )
    return NotebookRun(executed, Path(params["OUT"]), Path(params["PROFILE"]))
