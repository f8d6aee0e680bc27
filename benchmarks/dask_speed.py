"""`birdkit embed --engine dask` against the local engine (issue #15).

1. BirdNET on minicomp's soundscapes: local engine with 1 process, a Dask LocalCluster of 1 and of 2 worker
   processes (wall time including the cluster's start, and audio hours per second). Rounds are interleaved so
   that a change of load on a shared machine hits every configuration alike.
2. The scheduler's overhead per file: the placeholder encoder (almost free) on many tiny synthetic files, local
   1 process against a 1-worker LocalCluster whose start is timed apart; (dask - local - start) / files.
3. The paper's scale on paper: 566 h of soundscapes, at the per-window cost measured in (1).

    python benchmarks/dask_speed.py --data ../shared/data/minicomp --rounds 2 --out /tmp/round/cache_15
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from distributed import Client, LocalCluster

from birdkit import synthetic
from birdkit.store.embed import embed_split

PAPER_HOURS = 566.0  # DS@GT's soundscape intervals: 407k x 5 s


def _timed_embed(data: Path, split: str, encoder: str, engine: str, workers: int) -> dict:
    out = Path(tempfile.mkdtemp(prefix="dask_speed_"))
    try:
        t0 = time.perf_counter()
        r = embed_split(data, split, out, encoder=encoder, workers=workers, engine=engine, progress=False)
        wall = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return {"wall_s": wall, "files": r.files_done, "rows": r.rows, "audio_h": r.audio_s / 3600}


def _cluster_start_s() -> float:
    t0 = time.perf_counter()
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as c, Client(c):
        pass
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--split", default="test_soundscapes")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--tiny-files", type=int, default=3, help="synthetic competitions (18 files each)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/round/cache_15"))
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    configs = [("local", 1), ("dask", 1), ("dask", 2)]
    birdnet: dict[str, list[dict]] = {f"{e}-{w}": [] for e, w in configs}
    for _ in range(args.rounds):
        for engine, workers in configs:
            birdnet[f"{engine}-{workers}"].append(
                _timed_embed(args.data, args.split, "birdnet", engine, workers)
            )
            print(engine, workers, birdnet[f"{engine}-{workers}"][-1], flush=True)

    comp = args.out / "tiny_comp"
    if not comp.exists():
        synthetic.generate(comp)
    overhead = {"local-1": [], "dask-1": [], "start": []}
    for _ in range(args.rounds):
        overhead["local-1"].append(_timed_embed(comp, "train_audio", "placeholder", "local", 1))
        overhead["dask-1"].append(_timed_embed(comp, "train_audio", "placeholder", "dask", 1))
        overhead["start"].append(_cluster_start_s())

    med = {k: statistics.median(r["wall_s"] for r in v) for k, v in birdnet.items()}
    first = birdnet["local-1"][0]
    windows = 2 * first["rows"]  # paper windows: two 3 s windows per 5 s chunk
    s_per_window = med["local-1"] / windows
    n = overhead["local-1"][0]["files"]
    start = statistics.median(overhead["start"])
    per_file_ms = (
        1000
        * (
            statistics.median(r["wall_s"] for r in overhead["dask-1"])
            - statistics.median(r["wall_s"] for r in overhead["local-1"])
            - start
        )
        / n
    )
    summary = {
        "birdnet_median_wall_s": med,
        "audio_h": first["audio_h"],
        "files": first["files"],
        "rows": first["rows"],
        "audio_h_per_s": {k: first["audio_h"] / v for k, v in med.items()},
        "speedup_dask2_vs_dask1": med["dask-1"] / med["dask-2"],
        "dask1_vs_local1": med["dask-1"] / med["local-1"],
        "birdnet_s_per_window_end_to_end": s_per_window,
        "core_h_per_audio_h_birdnet": med["local-1"] / first["audio_h"] / 3600,
        "placeholder_files": n,
        "cluster_start_s": start,
        "scheduler_overhead_ms_per_file": per_file_ms,
        "paper_core_hours_birdnet": PAPER_HOURS * med["local-1"] / first["audio_h"] / 3600,
        "raw": {"birdnet": birdnet, "overhead": overhead},
    }
    (args.out / "dask_speed.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "raw"}, indent=2))


if __name__ == "__main__":
    main()
