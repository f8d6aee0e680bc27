"""A worker process killed during `run_inference(workers=2)`: every readable file is still scored, never the prior.

The encoders here are test-only subclasses of the placeholder, given to inference by their "module:Class" path
(the worker processes import this module by that path). One kills its own process the first time any worker
embeds; the other kills it every time it sees a "poison" file, as a decoder crash on one bad file would.
"""

from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from birdkit.audio import load_chunks
from birdkit.competition import Competition
from birdkit.encoders.placeholder import SAMPLE_RATE, Placeholder
from birdkit.infer import InferConfig, bundles, file_jobs, run_inference

POISON = 0.5  # a constant-amplitude chunk: no recording looks like this


class KillOnce(Placeholder):
    """The first embed() in any process creates ``marker`` and kills that process (SIGKILL: no clean-up)."""

    def __init__(self, marker: str = "", **options: object) -> None:
        super().__init__(**options)
        self.marker = marker

    def embed(self, chunks: np.ndarray):
        try:
            fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)  # one process wins, atomically
        except FileExistsError:
            return super().embed(chunks)
        os.close(fd)
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


class KillOnPoison(Placeholder):
    """Kills its process whenever a chunk is the poison file's constant signal."""

    def embed(self, chunks: np.ndarray):
        if (np.abs(np.asarray(chunks) - POISON).max(axis=1) < 1e-3).any():
            os.kill(os.getpid(), signal.SIGKILL)
        return super().embed(chunks)


def comp_of(tmp: Path, like: Path, audio: list[Path]) -> Path:
    root = tmp / "comp"
    (root / "test_soundscapes").mkdir(parents=True)
    for f in audio:
        (root / "test_soundscapes" / f.name).symlink_to(f.resolve())
    shutil.copyfile(like / "eBird_Taxonomy_v2021.csv", root / "eBird_Taxonomy_v2021.csv")
    # the sample submission lists exactly these files' rows (a listed row no file gives is an error of its own)
    columns = pd.read_csv(like / "sample_submission.csv", nrows=0).columns
    rows = [r for f in audio for r in load_chunks(f, SAMPLE_RATE).row_ids]
    sub = pd.DataFrame(0.0, index=range(len(rows)), columns=columns[1:])
    sub.insert(0, columns[0], rows)
    sub.to_csv(root / "sample_submission.csv", index=False)
    return root


@pytest.fixture(scope="module")
def clips(synthetic_comp) -> list[Path]:
    """The synthetic training clips: enough small files for several bundles, so both workers get some."""
    return Competition(synthetic_comp).audio_files("train_audio")


def test_a_killed_worker_loses_no_file(synthetic_comp, clips, tmp_path):
    comp = comp_of(tmp_path, synthetic_comp, clips)
    jobs = file_jobs(Competition(comp), "test_soundscapes", None)
    assert len(bundles(jobs)) >= 3  # several bundles in flight on two workers when one dies
    marker = tmp_path / "killed"
    r = run_inference(InferConfig(comp, tmp_path / "k.csv", passthrough=f"{__name__}:KillOnce", workers=2,
                                  encoder_options={"marker": str(marker)}, progress=False))  # fmt: skip
    assert marker.exists()  # a worker did die
    assert r.error is None and r.errors == [] and r.profile.workers == 2
    ref = run_inference(
        InferConfig(comp, tmp_path / "ref.csv", passthrough="placeholder", workers=1, progress=False)
    )
    assert list(r.frame["row_id"]) == list(ref.frame["row_id"])
    np.testing.assert_array_equal(r.frame.iloc[:, 1:].to_numpy(), ref.frame.iloc[:, 1:].to_numpy())
    assert (tmp_path / "k.csv").read_bytes() == (tmp_path / "ref.csv").read_bytes()


def test_a_file_that_kills_every_worker_is_the_only_error(synthetic_comp, clips, tmp_path):
    """The poison file shares a bundle with readable files: they are scored, it alone is an error naming it."""
    audio = sorted(clips[:10], key=lambda p: p.name)
    poison = tmp_path / f"{audio[0].stem}_poison.wav"  # sorts second: inside the first bundle
    sf.write(poison, np.full(5 * SAMPLE_RATE, POISON, dtype=np.float32), SAMPLE_RATE, subtype="PCM_16")
    comp = comp_of(tmp_path, synthetic_comp, [*audio, poison])
    b = bundles(file_jobs(Competition(comp), "test_soundscapes", None))
    # two bundles at least, or the scorer would run in this very process (and the poison would kill pytest)
    assert len(b) >= 2 and len(b[0].files) > 1 and b[0].files[1].path.endswith(poison.name)
    r = run_inference(InferConfig(comp, tmp_path / "p.csv", passthrough=f"{__name__}:KillOnPoison", workers=2,
                                  progress=False))  # fmt: skip
    assert r.error is None
    assert [Path(e["file"]).name for e in r.errors] == [poison.name]
    assert "died" in r.errors[0]["error"] and r.errors[0]["rows"] == 1
    ref = run_inference(
        InferConfig(comp, tmp_path / "ref.csv", passthrough="placeholder", workers=1, progress=False)
    )
    good = ~r.frame["row_id"].str.startswith(poison.stem)
    assert good.sum() == len(r.frame) - 1
    np.testing.assert_array_equal(
        r.frame.loc[good].iloc[:, 1:].to_numpy(), ref.frame.loc[good].iloc[:, 1:].to_numpy()
    )
