"""Kaggle: credentials check, competition download, dataset publish, notebook push.

Every Kaggle call runs the ``kaggle`` executable as a subprocess; the ``kaggle`` package is never imported here,
because importing it authenticates (and exits the process when no credentials are found). A subprocess also
means the commands are exactly what a user would type, which ``--dry-run`` prints, and a fake ``kaggle`` placed
first on ``PATH`` can stand in for it in tests.

Credentials are looked for where kaggle 2.2.x looks, in its order: ``KAGGLE_API_TOKEN`` (the token or a path to
it), ``~/.kaggle/access_token``, OAuth credentials from ``kaggle auth login`` (``~/.kaggle/credentials.json``),
then the legacy ``kaggle.json`` (``KAGGLE_CONFIG_DIR``, ``~/.kaggle`` or ``~/.config/kaggle``) with
``KAGGLE_USERNAME``/``KAGGLE_KEY`` overriding its fields. Only *where* credentials were found is ever printed.

The kaggle CLI exits 0 on some failures (it prints "Dataset creation error: ..."), so the output is read too.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shlex
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from birdkit.errors import BirdkitError
from birdkit.io import atomic_write_bytes, atomic_write_json

log = logging.getLogger(__name__)

COMPETITION = "birdclef-2024"
DATASET_METADATA = "dataset-metadata.json"
KERNEL_METADATA = "kernel-metadata.json"
PUBLISH_STATE = ".kaggle-published.json"  # beside the dataset folder, never inside it (it is not uploaded)
DEFAULT_NOTEBOOK = Path("notebooks") / "inference.ipynb"
DEFAULT_KERNEL_TITLE = "birdkit inference"
TOKEN_URL = "https://www.kaggle.com/settings/api"
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
# What `kaggle competitions download birdclef-2024` unpacks to (the minicomp in ../shared has the same layout).
COMPETITION_REQUIRED = (
    "train_audio",
    "train_metadata.csv",
    "sample_submission.csv",
    "eBird_Taxonomy_v2021.csv",
)
COMPETITION_OPTIONAL = ("test_soundscapes", "unlabeled_soundscapes")
_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
# Failures the kaggle CLI reports on stdout with exit status 0, or prints before exiting 1.
_FAILED = re.compile(
    r"(creation error|push error|Authentication required|Client Error|Unauthori[sz]ed|Forbidden)", re.I
)


class KaggleError(BirdkitError):
    """A Kaggle step that cannot go on; the message says what is missing and how to fix it."""


# --- credentials -------------------------------------------------------------------------------------------


@dataclass
class Credentials:
    """Where Kaggle credentials were found (never their values), or everything that was looked for."""

    method: str | None = (
        None  # "KAGGLE_API_TOKEN", "access_token", "oauth", "kaggle.json", "KAGGLE_USERNAME/KAGGLE_KEY"
    )
    source: str = ""
    username: str | None = None
    looked: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.method is not None

    def describe(self) -> str:
        if self:
            who = f" (user {self.username})" if self.username else ""
            return f"found: {self.method} at {self.source}{who}"
        return "missing: " + "; ".join(self.looked)


def _tilde(path: Path, home: Path) -> str:
    try:
        return "~/" + path.relative_to(home).as_posix()
    except ValueError:
        return str(path)


def _config_dir(env: Mapping[str, str], home: Path) -> Path:
    """kaggle.json's folder, as kaggle 2.2.x picks it."""
    if env.get("KAGGLE_CONFIG_DIR"):
        return Path(env["KAGGLE_CONFIG_DIR"]).expanduser()
    legacy = home / ".kaggle"
    if sys.platform.startswith("linux") and not legacy.exists():
        return Path(env.get("XDG_CONFIG_HOME") or home / ".config") / "kaggle"
    return legacy


def find_credentials(env: Mapping[str, str] | None = None, home: Path | None = None) -> Credentials:
    """Look for Kaggle credentials where the kaggle CLI does; say where they are, or all that is missing."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home()) if home is None else home
    looked: list[str] = []
    cfg_path = _config_dir(env, home) / "kaggle.json"
    cfg: dict = {}
    if cfg_path.is_file():
        try:
            cfg = json.loads(cfg_path.read_text() or "{}")
        except ValueError:
            looked.append(f"{_tilde(cfg_path, home)} is not valid JSON")
    user = env.get("KAGGLE_USERNAME") or cfg.get("username")  # tokens do not name their owner locally
    token = env.get("KAGGLE_API_TOKEN", "").strip()
    if token:
        p = Path(token).expanduser()
        if not p.exists() or p.read_text().strip():
            source = _tilde(p, home) if p.exists() else "the environment"
            return Credentials("KAGGLE_API_TOKEN", source, user)
        looked.append(f"KAGGLE_API_TOKEN names {p} but that file is empty")
    else:
        looked.append("KAGGLE_API_TOKEN is not set")
    for name in ("access_token", "access_token.txt"):
        p = home / ".kaggle" / name
        if p.is_file() and p.read_text().strip():
            return Credentials("access_token", _tilde(p, home), user)
    looked.append(f"{_tilde(home / '.kaggle' / 'access_token', home)} does not exist")
    oauth = home / ".kaggle" / "credentials.json"
    if oauth.is_file():
        return Credentials("oauth", _tilde(oauth, home), user)
    if not cfg_path.is_file():
        looked.append(f"{_tilde(cfg_path, home)} does not exist")
    key = env.get("KAGGLE_KEY") or cfg.get("key")
    if user and key:
        from_file = cfg.get("username") and cfg.get("key")
        method = "kaggle.json" if from_file else "KAGGLE_USERNAME/KAGGLE_KEY"
        return Credentials(method, _tilde(cfg_path, home) if from_file else "the environment", str(user))
    if cfg_path.is_file():
        looked.append(
            f"{_tilde(cfg_path, home)} lacks "
            + " and ".join(k for k in ("username", "key") if not cfg.get(k))
        )
    if env.get("KAGGLE_USERNAME") and not key:
        looked.append("KAGGLE_USERNAME is set but KAGGLE_KEY is not")
    elif env.get("KAGGLE_KEY") and not user:
        looked.append("KAGGLE_KEY is set but KAGGLE_USERNAME is not")
    else:
        looked.append("KAGGLE_USERNAME/KAGGLE_KEY are not set")
    return Credentials(None, "", None, looked)


def require_credentials(env: Mapping[str, str] | None = None, home: Path | None = None) -> Credentials:
    creds = find_credentials(env, home)
    if not creds:
        raise KaggleError(
            "no Kaggle credentials: " + "; ".join(creds.looked) + ". Fix: create an API token at "
            f"{TOKEN_URL} and either `export KAGGLE_API_TOKEN=<token>` or save it to ~/.kaggle/access_token "
            "(chmod 600); or run `kaggle auth login`; or put the legacy kaggle.json in ~/.kaggle/ (chmod 600)."
        )
    return creds


# --- running the kaggle executable -------------------------------------------------------------------------


def kaggle_executable(env: Mapping[str, str] | None = None) -> list[str]:
    """The kaggle CLI to run: ``kaggle`` on PATH, else the one beside this Python, else ``python -m kaggle``."""
    env = os.environ if env is None else env
    found = shutil.which("kaggle", path=env.get("PATH"))
    if found:
        return [found]
    sibling = Path(sys.executable).with_name("kaggle")
    if sibling.exists():
        return [str(sibling)]
    if importlib.util.find_spec("kaggle") is not None:
        return [sys.executable, "-m", "kaggle"]
    raise KaggleError(
        "the kaggle CLI is not installed: `pip install kaggle==2.2.4 six` (see requirements.txt)"
    )


def command_line(args: Sequence[str]) -> str:
    """The command as a user would type it."""
    return shlex.join(["kaggle", *map(str, args)])


@dataclass
class Run:
    """One kaggle call: what ran, its exit status and its output (stdout and stderr together)."""

    args: list[str]
    returncode: int
    output: str

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not _FAILED.search(self.output)


def run_kaggle(args: Sequence[str], env: Mapping[str, str] | None = None, echo: bool = True) -> Run:
    """Run ``kaggle ARGS``, echoing its output line by line (uploads print progress) and keeping it."""
    env = dict(os.environ if env is None else env)
    exe = kaggle_executable(env)
    log.debug("running %s", shlex.join([*exe, *args]))
    proc = subprocess.Popen(
        [*exe, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
        bufsize=1,
    )
    lines = []
    assert proc.stdout is not None
    for line in proc.stdout:
        lines.append(line)
        if echo:
            print(line, end="", flush=True)
    return Run(list(map(str, args)), proc.wait(), "".join(lines))


def _checked(run: Run, what: str) -> Run:
    if not run.ok:
        tail = "\n".join(run.output.strip().splitlines()[-5:])
        raise KaggleError(f"`{command_line(run.args)}` failed ({what}, exit {run.returncode}):\n{tail}")
    return run


def describe_files(root: Path, zipped_dirs: bool = True) -> list[str]:
    """What an upload of ``root`` sends, one line per top-level entry (folders are zipped by ``-r zip``)."""
    lines = []
    for p in sorted(root.iterdir()):
        if p.is_dir():
            files = [f for f in p.rglob("*") if f.is_file()]
            how = "zipped by kaggle -r zip, unpacked on Kaggle" if zipped_dirs else "folder"
            lines.append(
                f"  {p.name}/  ({len(files)} files, {_size(sum(f.stat().st_size for f in files))}; {how})"
            )
        else:
            note = (
                "  (metadata, read by kaggle, not uploaded)"
                if p.name in (DATASET_METADATA, KERNEL_METADATA)
                else ""
            )
            lines.append(f"  {p.name}  ({_size(p.stat().st_size)}){note}")
    return lines


def _size(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


# --- metadata ----------------------------------------------------------------------------------------------


def slugify(text: str) -> str:
    """Kaggle's slug of a title: lower case, runs of other characters -> one dash."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


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


def read_json(path: Path) -> dict:
    if not path.is_file():
        raise KaggleError(f"{path}: missing")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise KaggleError(f"{path}: not valid JSON ({exc})") from exc


# --- download ----------------------------------------------------------------------------------------------


@dataclass
class DownloadReport:
    out: Path
    command: str
    extracted: int = 0
    skipped: int = 0
    layout_problems: list[str] = field(default_factory=list)
    species: int = 0
    recordings: int = 0


def download(
    out: str | Path, competition: str = COMPETITION, dry_run: bool = False, keep_zip: bool = False
) -> DownloadReport:
    """``kaggle competitions download COMPETITION -p OUT``, unzip into OUT, check the BirdCLEF layout.

    Unzipping resumes: members already on disk at their full size are skipped, so an interrupted run can be
    repeated. The zip is deleted after a complete extraction unless ``keep_zip`` (BirdCLEF 2024 is ~24 GB).
    """
    out = Path(out)
    args = ["competitions", "download", competition, "-p", str(out)]
    report = DownloadReport(out, command_line(args))
    archive = out / f"{competition}.zip"
    if dry_run:
        print(f"would run: {report.command}")
        print(
            f"then unzip {archive} into {out}/ ({'keeping' if keep_zip else 'deleting'} the zip), "
            f"and check {', '.join(COMPETITION_REQUIRED)}"
        )
        print(f"credentials {find_credentials().describe()}")
        return report
    if not archive.exists():
        require_credentials()
        out.mkdir(parents=True, exist_ok=True)
        run = _checked(run_kaggle(args), "competition download")
        if not archive.exists():
            raise KaggleError(
                f"{archive}: not there after `{report.command}`; have you accepted the competition rules at "
                f"https://www.kaggle.com/competitions/{competition}/rules ? Output:\n{run.output.strip()[-500:]}"
            )
    report.extracted, report.skipped = unzip(archive, out)
    if not keep_zip:
        archive.unlink()
    report.layout_problems = check_layout(out)
    if not report.layout_problems:
        from birdkit.competition import Competition

        comp = Competition(out)
        report.species, report.recordings = len(comp.species), len(comp.metadata)
    return report


def unzip(archive: Path, out: Path) -> tuple[int, int]:
    """Extract ``archive`` into ``out`` member by member, refusing paths that leave ``out``; (extracted, skipped)."""
    root = out.resolve()
    done = skipped = 0
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile as exc:
        raise KaggleError(f"{archive}: not a zip file ({exc}); delete it and download again") from exc
    with zf:
        for info in zf.infolist():
            target = (root / info.filename).resolve()
            if not target.is_relative_to(root):
                raise KaggleError(
                    f"{archive}: member {info.filename!r} would land outside {out}; not extracting"
                )
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if target.exists() and target.stat().st_size == info.file_size:
                skipped += 1
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.part")
            with zf.open(info) as src, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            os.replace(tmp, target)
            done += 1
    return done, skipped


def check_layout(root: str | Path) -> list[str]:
    """What a downloaded competition folder lacks for birdkit (empty = usable)."""
    import pandas as pd

    root = Path(root)
    problems = [f"{root / name}: missing" for name in COMPETITION_REQUIRED if not (root / name).exists()]
    if problems:
        return problems
    train = root / "train_audio"
    if not any(d.is_dir() for d in train.iterdir()):
        problems.append(f"{train}: no species folders")
    meta = pd.read_csv(root / "train_metadata.csv", nrows=0)
    for col in ("primary_label", "filename"):
        if col not in meta.columns:
            problems.append(f"{root / 'train_metadata.csv'}: no {col} column")
    if not problems:
        files = pd.read_csv(root / "train_metadata.csv", usecols=["filename"])["filename"]
        missing = [f for f in files if not (train / f).exists()]
        if missing:
            problems.append(
                f"{train}: {len(missing)} files named in train_metadata.csv are missing, e.g. {missing[:3]}"
            )
    sub = pd.read_csv(root / "sample_submission.csv", nrows=0).columns
    if len(sub) < 2 or sub[0] != "row_id":
        problems.append(f"{root / 'sample_submission.csv'}: first column must be row_id")
    return problems


# --- publish -----------------------------------------------------------------------------------------------


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
    exported layout; plain ``-r skip`` would drop them and ``-r tar`` is not always unpacked (kaggle-cli #292). "First time" is remembered in ``PUBLISH_STATE`` beside the folder;
    when that file is absent but the dataset exists on Kaggle (another machine made it), the create is answered
    "already in use" and the call is repeated as a new version. ``mode`` forces "create" or "version".
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
        raise ValueError(f"mode must be auto, create or version, got {mode!r}")
    dataset_id = meta["id"]
    action = mode if mode != "auto" else ("version" if dataset_id in _published(dataset_dir) else "create")
    create = ["datasets", "create", "-p", str(dataset_dir), "-r", "zip"] + (["-u"] if public else [])
    version = ["datasets", "version", "-p", str(dataset_dir), "-m", message, "-r", "zip"]
    args = create if action == "create" else version
    report = PublishReport(dataset_id, action, command_line(args), ran=False)
    if dry_run:
        print(f"would run: {report.command}")
        if action == "create":
            print(f"  (first publication of {dataset_id}; later runs use: {command_line(version)})")
        print(f"files in {dataset_dir}:")
        print("\n".join(describe_files(dataset_dir)))
        print(f"credentials {find_credentials().describe()}")
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
    _checked(run, f"dataset {report.action}")
    _mark_published(dataset_dir, dataset_id)
    report.ran = True
    return report


# --- push --------------------------------------------------------------------------------------------------


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
        print(f"would run: {report.command}")
        print(f"files in {kernel_dir}:")
        print("\n".join(describe_files(kernel_dir)))
        print(f"{KERNEL_METADATA}: " + json.dumps(meta, sort_keys=True))
        print(f"credentials {find_credentials().describe()}")
        return report
    require_credentials()
    _checked(run_kaggle(args), "kernel push")
    report.ran = True
    return report
