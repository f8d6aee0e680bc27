"""The competition data: ``kaggle competitions download``, a resumable unzip that stays inside its folder, and
a check that the result has the BirdCLEF layout birdkit reads."""

from __future__ import annotations

import os
import shutil
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from birdkit.kaggle.cli import COMPETITION, checked, command_line, print_dry_run, run_kaggle
from birdkit.kaggle.credentials import require_credentials
from birdkit.kaggle.errors import KaggleError

# What `kaggle competitions download birdclef-2024` unpacks to (the minicomp in ../shared has the same layout).
COMPETITION_REQUIRED = (
    "train_audio",
    "train_metadata.csv",
    "sample_submission.csv",
    "eBird_Taxonomy_v2021.csv",
)
COMPETITION_OPTIONAL = ("test_soundscapes", "unlabeled_soundscapes")


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
        keep = "keeping" if keep_zip else "deleting"
        print_dry_run(
            report.command,
            [
                f"then unzip {archive} into {out}/ ({keep} the zip), and check {', '.join(COMPETITION_REQUIRED)}"
            ],
        )
        return report
    if not archive.exists():
        require_credentials()
        out.mkdir(parents=True, exist_ok=True)
        run = checked(run_kaggle(args), "competition download")
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
