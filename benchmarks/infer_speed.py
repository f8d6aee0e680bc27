"""Inference speed, the whole path (OGG -> submission rows), per 4-minute soundscape.

    .venv/bin/python benchmarks/infer_speed.py [--data-dir DIR] [--models DIR] [--repeats 3] [--files N]

Runs :func:`birdkit.infer.run_inference` on DIR's ``test_soundscapes`` (default: ../shared/data/minicomp, else the
built-in synthetic competition) with 1 and 2 worker processes, ``--repeats`` times each, and reports medians:

- CPU seconds per 4-minute soundscape, per stage (decode, resample, encoder, head, writing) and in total. The
  steady figure (``cpu_s_per_4min``) is the stages' sum: what each further soundscape costs. The all-process
  figure adds the fixed costs (process start, imports, model loading, the hand-over of decoded audio).
- Wall seconds per 4-minute soundscape (setup excluded, as in the profile table).
- Peak memory: the largest single process (``ru_maxrss``) and the whole process tree (sampled from /proc).
- The naive reference measured alongside, interleaved, under the same load: decode, resample and BirdNET's full
  shipped graph (batch 32, one thread), file by file in one process, no overlap. A shared machine's speed drifts;
  this is the figure to compare against, repeat by repeat (target: pipeline <= 0.30x of it).

The last two lines are machine-readable: ``naive_cpu_s_per_4min=<float>``, then
``cpu_s_per_4min=<float> wall_s_per_4min_2workers=<float> peak_rss_mb=<float>``
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MINICOMP = ROOT.parent / "shared" / "data" / "minicomp"
STAGES = ("decode", "resample", "encoder", "head", "writing")


def tree_rss_mb(pid: int | None = None) -> float:
    """Resident memory of a process and all its descendants, from /proc (Linux); 0 elsewhere."""
    pid = pid or os.getpid()
    proc = Path("/proc")
    if not proc.is_dir():
        return 0.0
    parent: dict[int, int] = {}
    rss: dict[int, int] = {}
    page = os.sysconf("SC_PAGE_SIZE")
    for d in proc.iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
            fields = stat[stat.rindex(")") + 2 :].split()
            parent[int(d.name)] = int(fields[1])
            rss[int(d.name)] = int(fields[21]) * page
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {pid}, [pid]
    while frontier:
        p = frontier.pop()
        for c, pp in parent.items():
            if pp == p and c not in tree:
                tree.add(c)
                frontier.append(c)
    return sum(rss.get(p, 0) for p in tree) / 2**20


class TreeMemory:
    """Samples the process tree's resident memory in a thread; ``peak`` is the largest sum seen."""

    def __init__(self, every_s: float = 0.2) -> None:
        self.every_s = every_s
        self.peak = 0.0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mb())
            self._stop.wait(self.every_s)

    def __enter__(self) -> TreeMemory:
        self._t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._t.join()


def naive(data_dir: Path, files: int | None, passthrough: str | None) -> float:
    """CPU s per 4 min of the naive reference: decode, resample and the full shipped BirdNET graph (batch 32,
    one thread), file by file in this process (issue #16's reference; another encoder: its defaults)."""
    from birdkit.audio import load_chunks
    from birdkit.competition import Competition
    from birdkit.encoders import get_encoder

    name = passthrough or "birdnet"
    enc = get_encoder(name, fast=False, batch_size=32) if name == "birdnet" else get_encoder(name)
    paths = Competition(data_dir).audio_files("test_soundscapes")[:files]
    audio_s = 0.0
    c0 = time.process_time()
    for p in paths:
        cf = load_chunks(p, enc.sample_rate)
        enc.embed(cf.chunks)
        audio_s += cf.duration_s
    return (time.process_time() - c0) / (audio_s / 240)


def naive_apart(data_dir: Path, files: int | None, passthrough: str | None) -> float:
    """:func:`naive` in a process of its own, so its full-graph interpreter (batch 32) never counts in the
    pipeline's memory, which is measured on this process and its children."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(naive, (data_dir, files, passthrough))


def measure(
    data_dir: Path,
    models: Path | None,
    passthrough: str | None,
    workers: int,
    files: int | None,
    options: dict | None = None,
) -> dict:
    from birdkit.infer import InferConfig, run_inference

    with tempfile.TemporaryDirectory() as tmp, TreeMemory() as mem:
        r = run_inference(InferConfig(data_dir, Path(tmp) / "submission.csv", models=models, passthrough=passthrough,
                                      workers=workers, limit=files, guard=False, progress=False,
                                      encoder_options=options or {}))  # fmt: skip
    p = r.profile
    n = p.soundscapes
    stages = {s: p.stages.get(s, {}).get("cpu_s", 0.0) / n for s in STAGES}
    return {
        "stages": stages,
        "cpu_steady": sum(stages.values()),
        "cpu_all": p.cpu_s_per_4min,
        "wall": p.rate_s_per_4min,
        "setup": p.setup_s,
        "rss_process": p.peak_rss_mb,
        "rss_tree": mem.peak,
        "audio_s": p.audio_s,
        "files": p.files,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=None, help="competition folder (its test_soundscapes/)")
    ap.add_argument(
        "--models", type=Path, default=None, help="exported model folder (heads); default passthrough"
    )
    ap.add_argument(
        "--passthrough", default=None, help="encoder for passthrough (default birdnet without --models)"
    )
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--files", type=int, default=None, help="first N test soundscapes")
    ap.add_argument("--workers", default="1,2", help="worker counts to measure (comma-separated)")
    ap.add_argument(
        "--option", action="append", default=[], metavar="KEY=VALUE",
        help="encoder option for the pipeline runs, e.g. windows=centre, precision=int8 (repeatable)",
    )  # fmt: skip
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    sys.path.insert(0, str(ROOT / "src"))
    from birdkit.profile import usable_cores

    data_dir = args.data_dir
    if data_dir is None:
        if MINICOMP.is_dir():
            data_dir = MINICOMP
        else:
            from birdkit.synthetic import generate

            data_dir = generate(Path(tempfile.mkdtemp()) / "synthetic", n_test=4, test_seconds=240)
    passthrough = args.passthrough or (None if args.models else "birdnet")
    workers = [int(w) for w in args.workers.split(",")]
    options = dict(o.split("=", 1) for o in args.option)
    print(f"machine: {platform.machine()} {platform.processor() or ''}, {usable_cores()} usable cores, "
          f"load average {os.getloadavg()[0]:.2f}; python {platform.python_version()}")  # fmt: skip
    print(
        f"data: {data_dir}/test_soundscapes; {'heads from ' + str(args.models) if args.models else passthrough + ' passthrough'}"
    )

    runs: dict[int, list[dict]] = {w: [] for w in workers}
    naive_runs: list[float] = []
    for rep in range(args.repeats):  # interleaved, so a change in the machine's load hits every figure alike
        naive_runs.append(naive_apart(data_dir, args.files, passthrough))
        for w in workers:
            runs[w].append(measure(data_dir, args.models, passthrough, w, args.files, options))
        print(f"repeat {rep + 1}/{args.repeats}: naive {naive_runs[-1]:.2f} CPU-s/4m; "
              + "; ".join(f"{w} worker(s) {runs[w][-1]['cpu_steady']:.2f} CPU-s/4m, {runs[w][-1]['wall']:.2f} wall-s/4m"
                          for w in workers))  # fmt: skip

    def med(w: int, key: str) -> float:
        return statistics.median(r[key] for r in runs[w])

    first = runs[workers[0]][0]
    print(f"\n{first['files']} soundscapes, {first['audio_s'] / 60:.1f} min of audio "
          f"({first['audio_s'] / 240:.2f} x 4 min); medians of {args.repeats} runs; load average now "
          f"{os.getloadavg()[0]:.2f}\n")  # fmt: skip
    head = (
        "| per 4-min soundscape | " + " | ".join(f"{w} worker{'s' if w > 1 else ''}" for w in workers) + " |"
    )
    print(head)
    print("|---|" + "---:|" * len(workers))
    for s in STAGES:
        print(
            f"| {s} CPU s | "
            + " | ".join(f"{statistics.median(r['stages'][s] for r in runs[w]):.3f}" for w in workers)
            + " |"
        )
    rows = [
        ("CPU s, steady (stages)", "cpu_steady", "{:.2f}"),
        ("CPU s, all processes incl. start-up", "cpu_all", "{:.2f}"),
        ("wall s (setup excluded)", "wall", "{:.2f}"),
        ("setup wall s (once)", "setup", "{:.2f}"),
        ("peak RSS MB, largest process", "rss_process", "{:.0f}"),
        ("peak RSS MB, process tree", "rss_tree", "{:.0f}"),
    ]
    for label, key, fmt in rows:
        print(f"| {label} | " + " | ".join(fmt.format(med(w, key)) for w in workers) + " |")
    naive_med = statistics.median(naive_runs)
    print(f"| naive path CPU s (one process, no overlap) | {naive_med:.2f} |" + " |" * (len(workers) - 1))

    w1 = workers[0]
    w2 = 2 if 2 in runs else workers[-1]
    cpu = med(w1, "cpu_steady")
    paired = [r["cpu_steady"] / n for r, n in zip(runs[w1], naive_runs, strict=True)]
    print(
        f"\nsteady CPU {cpu:.2f} s per 4 min ({w1} worker) vs the naive path's {naive_med:.2f} s measured alongside; "
        f"per repeat pipeline/naive = {', '.join(f'{x:.3f}' for x in paired)} (median {statistics.median(paired):.3f})"
    )
    peak = max(med(w, "rss_tree") for w in workers)
    print(f"naive_cpu_s_per_4min={naive_med:.4f}")
    print(f"cpu_s_per_4min={cpu:.4f} wall_s_per_4min_2workers={med(w2, 'wall'):.4f} peak_rss_mb={peak:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
