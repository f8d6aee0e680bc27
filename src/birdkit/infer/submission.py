"""The submission file: rows assembled in file order (the prior where a file or a species has no prediction),
written atomically, and read back the way Kaggle relies on it.

Probabilities stay float64 from the sigmoid to the file and are written with as many digits as tell two doubles
apart: two logits near 17.5 and 18 must not both become 1 (in float32 they do, and the metric sees a tie).
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from birdkit import audio
from birdkit.competition import Competition
from birdkit.errors import BirdkitError
from birdkit.infer.files import FileJob, FileResult, file_jobs
from birdkit.io import atomic_write_bytes
from birdkit.profile import SOUNDSCAPE_S


class SubmissionError(BirdkitError, ValueError):
    """A submission file Kaggle would reject or mis-score; the message names the file and the problem."""


def fallback_row_ids(job: FileJob, sample_rows: dict[str, list[str]]) -> list[str]:
    """Rows for a file that could not be scored: as many as its header says, else as many as
    sample_submission.csv lists for it or a 4-minute soundscape has (48), whichever is more: a missing row would
    fail the whole submission, an extra one is ignored."""
    try:
        import soundfile as sf

        info = sf.info(job.path)
        if info.frames > 0 and info.samplerate > 0:
            return audio.row_ids(job.stem, audio.chunk_count(info.frames, info.samplerate))
    except Exception:  # noqa: BLE001 - a header we cannot read: fall through
        pass
    nominal = audio.row_ids(job.stem, audio.chunk_count(int(SOUNDSCAPE_S), 1))
    listed = sample_rows.get(job.stem, [])
    return listed if len(listed) > len(nominal) else nominal


def sample_rows(comp: Competition) -> dict[str, list[str]]:
    """sample_submission.csv's row ids by file stem ({} without the file)."""
    p = comp.path("sample_submission.csv")
    if not p.exists():
        return {}
    comp.species  # noqa: B018 - checks the header first, naming the file
    ids = pd.read_csv(p, usecols=["row_id"], dtype={"row_id": str})["row_id"].dropna()
    out: dict[str, list[str]] = {}
    for rid in dict.fromkeys(ids):
        stem, _, end = rid.rpartition("_")
        if stem and end.isdigit():
            out.setdefault(stem, []).append(rid)
    return out


def assemble(
    jobs: list[FileJob],
    results: dict[int, FileResult],
    species: list[str],
    rows: dict[str, list[str]],
    listed_only: bool = False,
    complete: bool = False,
) -> tuple[list[str], np.ndarray, list[dict]]:
    """Rows in file order, float64; unscored files (``rows``: sample_submission's ids by stem, to size them)
    and unpredicted species get the prior, each species' mean prediction over the scored rows.

    With ``listed_only`` (the test split, where ``rows`` is what Kaggle scores), a file that sample_submission.csv
    lists gets exactly its listed rows: a listed row the audio does not reach (a truncated file) gets the prior,
    a row the list lacks is dropped, and both are reported in the returned list (``partial``: the file was
    scored). With ``complete`` (the whole test split), rows listed for files the split lacks are added with the
    prior and reported too: every listed row is in the file exactly once."""
    s = len(species)
    prior = _prior([results[j.index].probs for j in jobs if j.index in results], s)
    row_ids: list[str] = []
    blocks: list[np.ndarray] = []
    errors: list[dict] = []
    for j in jobs:
        r = results.get(j.index)
        if r is not None and r.probs is not None:
            ids, block = r.row_ids, np.where(np.isnan(r.probs), prior, r.probs)
            if listed_only and j.stem in rows:
                ids, block, note = _as_listed(ids, block, rows[j.stem], prior)
                if note:
                    errors.append({"file": j.path, "error": note, "rows": len(ids), "partial": True})
            row_ids += ids
            blocks.append(block)
            continue
        ids = rows[j.stem] if listed_only and j.stem in rows else fallback_row_ids(j, rows)
        reason = r.error if r is not None and r.error else "not scored (the run stopped before it)"
        errors.append({"file": j.path, "error": reason, "rows": len(ids)})
        row_ids += ids
        blocks.append(np.broadcast_to(prior, (len(ids), s)))
    if complete:
        ids, notes = listed_without_audio(jobs, rows)
        row_ids += ids
        errors += notes
        blocks.append(np.broadcast_to(prior, (len(ids), s)))
    probs = np.concatenate(blocks) if blocks else np.zeros((0, s), dtype=np.float64)
    return row_ids, np.clip(probs.astype(np.float64, copy=False), 0.0, 1.0), errors


def _prior(probs: list[np.ndarray | None], n_species: int) -> np.ndarray:
    """Each species' mean prediction over the scored rows (0 where nothing predicts it)."""
    good = [p for p in probs if p is not None and len(p)]
    if not good:
        return np.zeros(n_species, dtype=np.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN column: no model predicts the species
        return np.nan_to_num(np.nanmean(np.concatenate(good), axis=0), nan=0.0)


def _as_listed(
    ids: list[str], block: np.ndarray, listed: list[str], prior: np.ndarray
) -> tuple[list[str], np.ndarray, str | None]:
    """A scored file's rows as sample_submission.csv lists them: the prior for listed rows it lacks, rows the
    list lacks dropped; the note says how many of each (None when they agree)."""
    if ids == listed:
        return ids, block, None
    at = {rid: i for i, rid in enumerate(ids)}
    out = np.broadcast_to(prior, (len(listed), len(prior))).copy()
    have = [k for k, rid in enumerate(listed) if rid in at]
    out[have] = block[[at[listed[k]] for k in have]]
    short, extra = len(listed) - len(have), len(set(ids) - set(listed))
    parts = []
    if short:
        parts.append(f"the audio gives {len(ids)} rows where sample_submission.csv lists {len(listed)}: "
                     f"{short} listed rows get the prior")  # fmt: skip
    if extra:
        parts.append(f"{extra} rows sample_submission.csv does not list were dropped")
    return list(listed), out, "; ".join(parts) or None


def listed_without_audio(jobs: list[FileJob], rows: dict[str, list[str]]) -> tuple[list[str], list[dict]]:
    """Rows sample_submission.csv lists for files the split does not have (they get the prior), and a report
    line per such file."""
    have = {j.stem for j in jobs}
    ids: list[str] = []
    notes: list[dict] = []
    for stem, listed in rows.items():
        if stem not in have:
            ids += listed
            notes.append({"file": stem, "error": "listed in sample_submission.csv but no audio file has this "
                          "name", "rows": len(listed)})  # fmt: skip
    return ids, notes


def write_submission(path: Path, row_ids: list[str], probs: np.ndarray, species: list[str]) -> None:
    """CSV through Arrow (15x faster than pandas for 50,000 rows x 182 species), float64 in its shortest
    round-trip form, written atomically."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    probs = np.clip(np.nan_to_num(np.asarray(probs, dtype=np.float64), nan=0.0), 0.0, 1.0)
    t = pa.Table.from_arrays(
        [pa.array(row_ids, pa.string()), *(pa.array(probs[:, j]) for j in range(len(species)))],
        names=["row_id", *species],
    )
    buf = io.BytesIO()
    buf.write((",".join(["row_id", *species]) + "\n").encode())
    pcsv.write_csv(t, buf, pcsv.WriteOptions(include_header=False, quoting_style="none"))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buf.getvalue())


def check_submission(
    path: str | Path, data_dir: str | Path, split: str = "test_soundscapes", limit: int | None = None
) -> pd.DataFrame:
    """Read a submission back and check what Kaggle relies on: the species columns of sample_submission.csv in
    its order, unique row ids, every file of ``split`` with its consecutive 5 s rows, probabilities in [0, 1]."""
    comp = Competition(data_dir)
    species = list(comp.species)
    df = pd.read_csv(path, dtype={"row_id": str})
    if list(df.columns) != ["row_id", *species]:
        raise SubmissionError(
            f"{path}: columns differ from sample_submission.csv's (row_id + {len(species)} species)"
        )
    if df["row_id"].duplicated().any():
        raise SubmissionError(
            f"{path}: duplicate row ids, e.g. {df.loc[df['row_id'].duplicated(), 'row_id'].iloc[0]}"
        )
    values = df[species].to_numpy(dtype=np.float64)
    if not np.isfinite(values).all() or values.min(initial=0.0) < 0 or values.max(initial=0.0) > 1:
        raise SubmissionError(f"{path}: probabilities must be finite and within [0, 1]")
    by_stem: dict[str, list[int]] = {}
    for rid in df["row_id"]:
        stem, _, end = rid.rpartition("_")
        if not end.isdigit():
            raise SubmissionError(f"{path}: row id {rid!r} is not <file>_<end second>")
        by_stem.setdefault(stem, []).append(int(end))
    listed = sample_rows(comp) if split == "test_soundscapes" else {}
    jobs = file_jobs(comp, split, limit)
    for job in jobs:
        ends = by_stem.get(job.stem)
        if not ends:
            raise SubmissionError(f"{path}: no rows for {job.path}")
        if job.stem in listed:
            if sorted(ends) != sorted(int(r.rpartition("_")[2]) for r in listed[job.stem]):
                raise SubmissionError(
                    f"{path}: rows of {job.stem} differ from the {len(listed[job.stem])} that "
                    f"sample_submission.csv lists ({len(ends)} here)"
                )
        elif sorted(ends) != audio.chunk_ends(len(ends)):
            raise SubmissionError(f"{path}: rows of {job.stem} are not consecutive 5 s chunks from 5")
    if limit is None and listed:
        missing = sorted(set().union(*map(set, listed.values())) - set(df["row_id"]))
        if missing:
            raise SubmissionError(
                f"{path}: lacks {len(missing)} rows sample_submission.csv lists, e.g. {missing[0]}"
            )
    return df
