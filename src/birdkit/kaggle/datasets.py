"""Kaggle datasets: the ``dataset-metadata.json`` an export carries, checked as kaggle checks it, and publishing
the exported folder (``kaggle datasets create`` the first time, ``datasets version`` after)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from birdkit.errors import OptionError
from birdkit.io import atomic_write_json
from birdkit.kaggle.cli import (
    DATASET_METADATA,
    checked,
    command_line,
    describe_files,
    print_dry_run,
    run_kaggle,
)
from birdkit.kaggle.credentials import require_credentials
from birdkit.kaggle.errors import KaggleError

log = logging.getLogger(__name__)

PUBLISH_STATE = ".kaggle-published.json"  # beside the dataset folder, never inside it (it is not uploaded)
# The licences kaggle datasets accept (docs/datasets_metadata.md of the kaggle CLI).
DATASET_LICENSES = (
    "CC0-1.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-4.0",
    "CC-BY-NC-SA-4.0",
    "GPL-2.0",
    "ODbL-1.0",
    "DbCL-1.0",
    "copyright-authors",
    "other",
    "unknown",
    "CC-BY-4.0",
    "CC-BY-NC-4.0",
    "PDDL",
    "CC-BY-3.0",
    "CC-BY-3.0-IGO",
    "US-Government-Works",
    "CC-BY-NC-SA-3.0-IGO",
    "CDLA-Permissive-1.0",
    "CDLA-Sharing-1.0",
    "CC-BY-ND-4.0",
    "CC-BY-NC-ND-4.0",
    "ODC-BY-1.0",
    "LGPL-3.0",
    "AGPL-3.0",
    "FDL-1.3",
    "EU-ODP-Legal-Notice",
    "apache-2.0",
    "GPL-3.0",
)
DATASET_FIELDS = {"title", "subtitle", "description", "id", "id_no", "licenses", "resources", "keywords"}
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")


def dataset_metadata(dataset_id: str, title: str, license_name: str) -> dict:
    """``dataset-metadata.json``: title, id (owner/slug), exactly one licence."""
    return {"title": title, "id": dataset_id, "licenses": [{"name": license_name}]}


def validate_dataset_metadata(meta: Mapping) -> list[str]:
    """Problems with a dataset-metadata.json, checked as the kaggle CLI and its docs check them (empty = valid)."""
    problems = [f"unknown field {k!r}" for k in meta if k not in DATASET_FIELDS]
    title, ref, licenses = meta.get("title"), meta.get("id"), meta.get("licenses")
    if not isinstance(title, str) or not 6 <= len(title) <= 50:
        problems.append(f"title must be a string of 6 to 50 characters, got {title!r}")
    if not isinstance(ref, str) or ref.count("/") != 1:
        problems.append(f"id must be 'owner/slug', got {ref!r}")
    else:
        owner, slug = ref.split("/")
        if not owner or "INSERT" in ref.upper():
            problems.append(f"id {ref!r} has no real owner; give --id YOUR_KAGGLE_USERNAME/{slug}")
        if not 6 <= len(slug) <= 50 or not _SLUG.match(slug):
            problems.append(f"id slug {slug!r} must be 6 to 50 characters of a-z, 0-9 and '-'")
    if not isinstance(licenses, list) or len(licenses) != 1 or not isinstance(licenses[0], dict):
        problems.append(f"licenses must hold exactly one {{'name': ...}} entry, got {licenses!r}")
    elif licenses[0].get("name") not in DATASET_LICENSES:
        problems.append(
            f"licence {licenses[0].get('name')!r} is not one kaggle accepts: {', '.join(DATASET_LICENSES)}"
        )
    sub = meta.get("subtitle")
    if sub is not None and not (isinstance(sub, str) and 20 <= len(sub) <= 80):
        problems.append("subtitle must be 20 to 80 characters")
    return problems


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise KaggleError(f"{path}: missing")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise KaggleError(f"{path}: not valid JSON ({exc})") from exc


@dataclass
class PublishReport:
    dataset_id: str
    action: str  # "create" or "version"
    command: str
    ran: bool


def _state_path(dataset_dir: Path) -> Path:
    return dataset_dir.resolve().parent / PUBLISH_STATE


def _published(dataset_dir: Path) -> set[str]:
    p = _state_path(dataset_dir)
    try:
        return set(json.loads(p.read_text()).get("datasets", []))
    except (OSError, ValueError):
        return set()


def _mark_published(dataset_dir: Path, dataset_id: str) -> None:
    atomic_write_json(_state_path(dataset_dir), {"datasets": sorted(_published(dataset_dir) | {dataset_id})})


def publish(
    dataset_dir: str | Path,
    message: str = "birdkit export",
    *,
    mode: str = "auto",
    public: bool = False,
    dry_run: bool = False,
) -> PublishReport:
    """Upload an exported folder: ``kaggle datasets create`` the first time, ``datasets version -m MSG`` after.

    Sub-folders (``birdkit/``, ``encoders/``, ``heads/``) are sent with ``-r zip``: the CLI zips each one and
    Kaggle's backend unpacks it to the same hierarchy (kaggle-cli PR #111), so the mounted dataset has the
    exported layout; plain ``-r skip`` would drop them and ``-r tar`` is not always unpacked (kaggle-cli #292).
    "First time" is remembered in ``PUBLISH_STATE`` beside the folder; when that file is absent but the dataset
    exists on Kaggle (another machine made it), the create is answered "already in use" and the call is
    repeated as a new version. ``mode`` forces "create" or "version".
    """
    dataset_dir = Path(dataset_dir)
    meta_path = dataset_dir / DATASET_METADATA
    if not meta_path.is_file():
        raise KaggleError(
            f"{meta_path}: missing; make the folder with `birdkit export MODELS --out {dataset_dir}`"
        )
    meta = read_json(meta_path)
    problems = validate_dataset_metadata(meta)
    if problems:
        raise KaggleError(
            f"{meta_path}: " + "; ".join(problems) + " (re-export with --id/--title, or edit the file)"
        )
    if mode not in ("auto", "create", "version"):
        raise OptionError(f"mode {mode!r}: choose auto, create or version")
    dataset_id = meta["id"]
    action = mode if mode != "auto" else ("version" if dataset_id in _published(dataset_dir) else "create")
    create = ["datasets", "create", "-p", str(dataset_dir), "-r", "zip"] + (["-u"] if public else [])
    version = ["datasets", "version", "-p", str(dataset_dir), "-m", message, "-r", "zip"]
    args = create if action == "create" else version
    report = PublishReport(dataset_id, action, command_line(args), ran=False)
    if dry_run:
        later = [f"  (first publication of {dataset_id}; later runs use: {command_line(version)})"]
        files = [f"files in {dataset_dir}:", *describe_files(dataset_dir)]
        print_dry_run(report.command, (later if action == "create" else []) + files)
        return report
    require_credentials()
    run = run_kaggle(args)
    if (
        action == "create"
        and mode == "auto"
        and not run.ok
        and re.search(r"already (in use|exists)", run.output, re.I)
    ):
        log.info("%s already exists on Kaggle: publishing a new version instead", dataset_id)
        report.action, report.command = "version", command_line(version)
        run = run_kaggle(version)
    checked(run, f"dataset {report.action}")
    _mark_published(dataset_dir, dataset_id)
    report.ran = True
    return report
