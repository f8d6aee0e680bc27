"""Peak memory against file length: `birdkit infer` and `birdkit embed` on one 4-, 20- and 60-minute soundscape.

    .venv/bin/python benchmarks/memory_flat.py [--minutes 4,20,60] [--workers 2] [--cache DIR]

The long files are minicomp's test soundscapes, decoded, tiled to length and written as OGG Vorbis at 32 kHz (once;
kept in ``--cache``). Each command runs as its own process; the peak resident memory of its whole process tree
(the CLI and its workers) is sampled from /proc every 0.1 s. Target (issue #11): a 60-minute file peaks within
1.2x of a 4-minute one. The last line is ``peak_mb_<minutes>min_<command>=<MB> ...`` and the two ratios.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
MINICOMP = ROOT.parent / "shared" / "data" / "minicomp"
sys.path.insert(0, str(ROOT / "benchmarks"))

from infer_speed import tree_rss_mb  # noqa: E402


def soundscape(minutes: int, cache: Path) -> Path:
    """A ``minutes``-long OGG made of minicomp's test soundscapes, tiled (written once)."""
    from birdkit.audio import load_audio, write_audio

    out = cache / f"long_{minutes}min.ogg"
    if not out.exists():
        src = np.concatenate(
            [load_audio(p, 32000) for p in sorted((MINICOMP / "test_soundscapes").glob("*.ogg"))]
        )
        n = minutes * 60 * 32000
        write_audio(out, np.resize(src, n), 32000)
    return out


def competition(audio: Path, work: Path) -> Path:
    """A competition folder holding one test soundscape, with its rows in sample_submission.csv."""
    import soundfile as sf

    from birdkit.audio import chunk_count, row_ids

    root = work / audio.stem
    (root / "test_soundscapes").mkdir(parents=True, exist_ok=True)
    link = root / "test_soundscapes" / audio.name
    if not link.exists():
        link.symlink_to(audio)
    species = list(pd.read_csv(MINICOMP / "sample_submission.csv", nrows=1).columns[1:])
    info = sf.info(str(audio))
    n = chunk_count(info.frames, info.samplerate)
    sub = pd.DataFrame(0.0, index=range(n), columns=species)
    sub.insert(0, "row_id", row_ids(audio.stem, n))
    sub.to_csv(root / "sample_submission.csv", index=False)
    shutil.copyfile(MINICOMP / "eBird_Taxonomy_v2021.csv", root / "eBird_Taxonomy_v2021.csv")
    return root


def peak(cmd: list[str]) -> tuple[float, float]:
    """(peak MB of the process tree, wall s) of a command."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    best = 0.0
    while p.poll() is None:
        best = max(best, tree_rss_mb(p.pid))
        time.sleep(0.1)
    err = p.stderr.read() if p.stderr else ""
    if p.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{err[-2000:]}")
    return best, time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", default="4,20,60")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/birdkit_memory_flat"))
    ap.add_argument("--repeats", type=int, default=1)
    a = ap.parse_args(argv)
    a.cache.mkdir(parents=True, exist_ok=True)
    birdkit = str(Path(sys.executable).with_name("birdkit"))
    minutes = [int(m) for m in a.minutes.split(",")]
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; {a.workers} workers", flush=True)
    figures: dict[str, float] = {}
    for m in minutes:
        audio = soundscape(m, a.cache)
        comp = competition(audio, a.cache / "comps")
        for name, cmd in (
            ("infer", [birdkit, "infer", "--data-dir", str(comp), "--passthrough", "birdnet", "--quiet",
                       "--out", str(a.cache / f"sub_{m}.csv"), "--workers", str(a.workers), "--no-guard"]),
            ("embed", [birdkit, "embed", str(comp), "--split", "test_soundscapes", "--encoder", "birdnet",
                       "--out", str(a.cache / f"store_{m}_{time.time_ns()}"), "--workers", "1"]),
        ):  # fmt: skip
            runs = [peak(cmd) for _ in range(a.repeats)]
            mb = float(np.median([r[0] for r in runs]))
            figures[f"peak_mb_{m}min_{name}"] = mb
            print(f"{m:>3} min {name}: peak {mb:.0f} MB (process tree), wall {np.median([r[1] for r in runs]):.1f} s",
                  flush=True)  # fmt: skip
    lo, hi = min(minutes), max(minutes)
    for name in ("infer", "embed"):
        figures[f"ratio_{hi}_{lo}_{name}"] = (
            figures[f"peak_mb_{hi}min_{name}"] / figures[f"peak_mb_{lo}min_{name}"]
        )
    print(" ".join(f"{k}={v:.3f}" if k.startswith("ratio") else f"{k}={v:.0f}" for k, v in figures.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
