"""BirdNET speed: full graph vs numpy front end + CNN cut, per 3 s window and per 4-minute soundscape.

    .venv/bin/python benchmarks/birdnet_speed.py [--data ../shared/data/minicomp] [--repeats 5] [--quick]

Times are **CPU seconds of this process** (``time.process_time``; one interpreter thread, BLAS/FFT on one
thread), medians over ``--repeats`` runs, because the machine is shared: wall time is printed beside them.
Measured, on 64 real windows of a minicomp soundscape:

- per-window ms of the full graph, the numpy front end, the CNN cut and the fast path total, at batch 4/8/16/32/64 (interleaved rounds);
- end to end per 4-minute soundscape (decode + resample + BirdNET + a linear head -> submission rows), for the
  paper's two windows per 5 s chunk and the budget guard's one centre window, fast and full;
- the competition metric on minicomp's test soundscapes for paper vs centre windows (fast path; full paper too).

The last line is ``key=value`` figures for scripts.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_v, "1")  # one process per core: BLAS must not spread out

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from birdkit import audio, runtime  # noqa: E402
from birdkit.competition import Competition  # noqa: E402
from birdkit.encoders import competition_logits, species_index  # noqa: E402
from birdkit.encoders.birdnet import DEFAULT_BATCH, SAMPLE_RATE, BirdNET, window_matrix  # noqa: E402
from birdkit.metrics import competition_score, labels_matrix  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "minicomp"
SOUNDSCAPE_S = 240.0  # a BirdCLEF test soundscape: 4 minutes, 48 chunks


def timed(fn, repeats: int) -> tuple[float, float, float]:
    """(median CPU s, median wall s, min CPU s) of ``fn()`` after one warm-up call.

    The minimum is the least disturbed run: on a shared machine it is the better estimate of the quiet cost.
    """
    fn()
    cpu, wall = [], []
    for _ in range(repeats):
        c0, w0 = time.process_time(), time.perf_counter()
        fn()
        cpu.append(time.process_time() - c0)
        wall.append(time.perf_counter() - w0)
    return float(np.median(cpu)), float(np.median(wall)), float(np.min(cpu))


def interleaved(fns: dict, repeats: int) -> dict[str, tuple[float, float, float]]:
    """``timed`` for several functions, one run of each per round, so a change of load hits all alike."""
    for fn in fns.values():
        fn()
    cpu: dict = {k: [] for k in fns}
    wall: dict = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            c0, w0 = time.process_time(), time.perf_counter()
            fn()
            cpu[k].append(time.process_time() - c0)
            wall[k].append(time.perf_counter() - w0)
    return {k: (float(np.median(cpu[k])), float(np.median(wall[k])), float(np.min(cpu[k]))) for k in fns}


def per_window(data: Path, batches: list[int], repeats: int, n_windows: int) -> dict:
    soundscape = sorted((data / "test_soundscapes").glob("*.ogg"))[0]
    chunks = audio.load_chunks(soundscape, SAMPLE_RATE).chunks[: n_windows // 2]
    w = window_matrix(chunks, "paper")
    fns = {}
    encoders = []
    for b in batches:
        full = BirdNET(fast=False, batch_size=b)
        fast = BirdNET(batch_size=b, verify=False)
        if fast.path != "fast":
            raise SystemExit(f"fast path unavailable: {fast.fallback_reason}")
        encoders += [full, fast]
        specs = fast.spectrograms(w)
        if b == batches[0]:
            fns["frontend"] = lambda fast=fast: fast.spectrograms(w)
        fns[f"full_b{b}"] = lambda full=full: full.run_windows(w)
        fns[f"cnn_b{b}"] = lambda fast=fast, specs=specs: fast.run_spectrograms(specs)
        fns[f"fast_b{b}"] = lambda fast=fast: fast.run_windows(w)
    out: dict = {"windows": len(w), **interleaved(fns, repeats)}
    fe_ms = (1e3 * out["frontend"][0] / len(w), 1e3 * out["frontend"][2] / len(w))
    for b in batches:
        ms = {k: 1e3 * out[f"{k}_b{b}"][0] / len(w) for k in ("full", "cnn", "fast")}
        mn = {k: 1e3 * out[f"{k}_b{b}"][2] / len(w) for k in ("full", "cnn", "fast")}
        print(
            f"batch {b:>2}: full {ms['full']:6.2f}  CNN {ms['cnn']:6.2f}  fast {ms['fast']:6.2f} ms/window "
            f"(front end {fe_ms[0]:.2f}); speed-up {ms['full'] / ms['fast']:.2f}x | "
            f"min: full {mn['full']:.2f} CNN {mn['cnn']:.2f} fast {mn['fast']:.2f} front end {fe_ms[1]:.2f}",
            flush=True,
        )
    return out


def end_to_end(data: Path, batch: int, repeats: int) -> dict:
    """ogg -> rows per 4-minute soundscape: decode + resample + chunk, BirdNET, a linear head, a frame."""
    comp = Competition(data)
    soundscape = sorted((data / "test_soundscapes").glob("*.ogg"))[0]
    duration = audio.load_chunks(soundscape, SAMPLE_RATE).duration_s
    scale = SOUNDSCAPE_S / duration
    rng = np.random.default_rng(0)
    head_w = rng.standard_normal((1024, len(comp.species))).astype(np.float32) * 0.01

    def run(enc: BirdNET) -> pd.DataFrame:
        cf = audio.load_chunks(soundscape, SAMPLE_RATE)
        emb = enc.embed(cf.chunks).embeddings
        probs = 1.0 / (1.0 + np.exp(-(emb @ head_w)))
        return pd.DataFrame(probs, columns=comp.species).assign(row_id=cf.row_ids)

    fns = {"decode": lambda: audio.load_chunks(soundscape, SAMPLE_RATE)}
    encoders = []
    for fast in (True, False):
        for scheme in ("paper", "centre"):
            enc = BirdNET(fast=fast, windows=scheme, batch_size=batch, verify=False)
            encoders.append(enc)
            fns[f"{'fast' if fast else 'full'}_{scheme}"] = lambda enc=enc: run(enc)
    out = {k: tuple(v * scale for v in t) for k, t in interleaved(fns, repeats).items()}
    for k, (cpu, wall, best) in out.items():
        what = "decode + resample alone" if k == "decode" else f"end to end {k}"
        print(f"{what}: {cpu:.3f} CPU s per 4-min soundscape (wall {wall:.3f}, min {best:.3f})")
    return out


def metric(data: Path, batch: int, with_full: bool) -> dict:
    comp = Competition(data)
    truth = pd.read_csv(data / "test_labels_5s.csv").set_index("row_id")
    files = sorted((data / "test_soundscapes").glob("*.ogg"))
    loaded = [audio.load_chunks(f, SAMPLE_RATE) for f in files]
    row_ids = [r for cf in loaded for r in cf.row_ids]
    y = labels_matrix(truth.loc[row_ids, "labels"], comp.species)
    out: dict = {}
    configs = [("fast", "paper"), ("fast", "centre")] + (
        [("full", "paper"), ("full", "centre")] if with_full else []
    )
    for path, scheme in configs:
        enc = BirdNET(fast=path == "fast", windows=scheme, batch_size=batch, verify=False)
        idx = species_index(enc.classes, comp)
        c0 = time.process_time()
        scores = np.concatenate([competition_logits(enc.embed(cf.chunks).logits, idx) for cf in loaded])
        cpu = time.process_time() - c0
        scores = np.where(np.isfinite(scores), scores, -1e9)
        out[f"{path}_{scheme}"] = competition_score(y, scores)
        out[f"{path}_{scheme}_cpu_s"] = cpu
        print(
            f"metric {path} {scheme}: {out[f'{path}_{scheme}']:.4f} on {len(row_ids)} chunks "
            f"({cpu:.1f} CPU s for {sum(cf.duration_s for cf in loaded) / 60:.0f} min of audio)",
            flush=True,
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--windows", type=int, default=64, help="real windows timed per repeat")
    ap.add_argument("--batches", default="4,8,16,32,64")
    ap.add_argument(
        "--batch", type=int, default=DEFAULT_BATCH, help="batch for the end-to-end and metric runs"
    )
    ap.add_argument(
        "--quick", action="store_true", help="the default batch only, 3 repeats, no full-graph metric"
    )
    ap.add_argument("--no-metric", action="store_true")
    a = ap.parse_args()
    batches = [a.batch] if a.quick else [int(b) for b in a.batches.split(",")]
    repeats = 3 if a.quick else a.repeats
    import numpy
    import scipy

    print(
        f"runtime {runtime.runtime_name()}, numpy {numpy.__version__}, scipy {scipy.__version__}, "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    pw = per_window(a.data, batches, repeats, a.windows)
    n = pw["windows"]
    ms = {k: 1e3 * v[0] / n for k, v in pw.items() if isinstance(v, tuple)}
    ms_min = {k: 1e3 * v[2] / n for k, v in pw.items() if isinstance(v, tuple)}
    best = min(batches, key=lambda b: ms[f"fast_b{b}"])
    e2e = end_to_end(a.data, a.batch, repeats)
    m = {} if a.no_metric else metric(a.data, a.batch, with_full=not a.quick)
    b = a.batch if a.batch in batches else best
    figures = {
        "full_ms": ms[f"full_b{b}"],
        "frontend_ms": ms["frontend"],
        "cnn_ms": ms[f"cnn_b{b}"],
        "fast_ms": ms[f"fast_b{b}"],
        "speedup": ms[f"full_b{b}"] / ms[f"fast_b{b}"],
        "batch": b,
        "best_batch": best,
        **{f"fast_b{bb}_ms": ms[f"fast_b{bb}"] for bb in batches},
        "e2e_fast_paper_s": e2e["fast_paper"][0],
        "e2e_fast_centre_s": e2e["fast_centre"][0],
        "e2e_full_paper_s": e2e["full_paper"][0],
        "e2e_full_centre_s": e2e["full_centre"][0],
        "decode_s": e2e["decode"][0],
        "min_full_ms": ms_min[f"full_b{b}"],
        "min_frontend_ms": ms_min["frontend"],
        "min_cnn_ms": ms_min[f"cnn_b{b}"],
        "min_fast_ms": ms_min[f"fast_b{b}"],
        "min_e2e_fast_paper_s": e2e["fast_paper"][2],
        "min_e2e_fast_centre_s": e2e["fast_centre"][2],
        **{f"score_{k}": v for k, v in m.items() if not k.endswith("_cpu_s")},
        "load": os.getloadavg()[0],
    }
    print(" ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()))


if __name__ == "__main__":
    main()
