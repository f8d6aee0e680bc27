"""BirdNET speed: full graph vs numpy front end + CNN cut, per 3 s window and per 4-minute soundscape.

    .venv/bin/python benchmarks/birdnet_speed.py [--data ../shared/data/minicomp] [--repeats 5] [--quick]

Times are **CPU seconds of this process** (``time.process_time``; one interpreter thread, BLAS/FFT on one
thread), medians over ``--repeats`` runs, because the machine is shared: wall time is printed beside them.
Measured, on 64 real windows of a minicomp soundscape:

- per-window ms of the full graph, the numpy front end, the CNN cut and the fast path total, at batch 4/8/16/32/64 (interleaved rounds);
- end to end per 4-minute soundscape (decode + resample + BirdNET + a linear head -> submission rows), for the
  paper's two windows per 5 s chunk and the budget guard's one centre window, fast and full;
- the competition metric on minicomp's test soundscapes for paper vs centre windows (fast path; full paper too).

- ``--modes``: the opt-in precision modes (int8 CNN weights, float32 FFT) and the budget guard's fewer windows
  (one centre window, with and without smoothing over neighbouring chunks) against the exact paper windows, on
  minicomp's test soundscapes and on a `birdkit mix` validation set (``--mix DIR``): competition metric, logit
  error against the exact path, per-species rank agreement (Spearman), and encoder CPU per 4 minutes.

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


def smooth(logits: np.ndarray, drop: float) -> np.ndarray:
    """Each chunk's logits as the max of its own and its neighbours' lowered by ``drop`` (one file, in order)."""
    out = logits.copy()
    out[1:] = np.maximum(out[1:], logits[:-1] - drop)
    out[:-1] = np.maximum(out[:-1], logits[1:] - drop)
    return out


MODES = {  # name -> BirdNET options
    "exact": {},
    "int8": {"precision": "int8"},
    "fft32": {"precision": "fft32"},
    "int8+fft32": {"precision": "int8+fft32"},
    "centre": {"windows": "centre"},
    "centre+int8": {"windows": "centre", "precision": "int8"},
}
SMOOTHING = (0.0, 1.0, 2.0)


def modes(folder: Path, batch: int, repeats: int) -> dict:
    """Metric, logit error, rank agreement and encoder CPU of each mode on ``folder``'s test soundscapes."""
    from scipy.stats import spearmanr

    comp = Competition(folder)
    truth = pd.read_csv(folder / "test_labels_5s.csv").set_index("row_id")
    files = comp.audio_files("test_soundscapes")
    loaded = [audio.load_chunks(f, SAMPLE_RATE) for f in files]
    row_ids = [r for cf in loaded for r in cf.row_ids]
    y = labels_matrix(truth.loc[row_ids, "labels"], comp.species)
    minutes = sum(cf.duration_s for cf in loaded) / 60
    encs = {k: BirdNET(batch_size=batch, **o) for k, o in MODES.items()}
    idx = species_index(encs["exact"].classes, comp)
    logits: dict[str, list[np.ndarray]] = {}
    fns = {k: (lambda e=e: [e.embed(cf.chunks).logits for cf in loaded]) for k, e in encs.items()}
    times = interleaved(fns, repeats) if repeats else {}
    for k, fn in fns.items():
        logits[k] = [competition_logits(x, idx) for x in fn()]
    for d in SMOOTHING:
        logits[f"centre+smooth{d:g}"] = [smooth(x, d) for x in logits["centre"]]
    ok = idx >= 0
    ref = np.concatenate(logits["exact"])[:, ok]
    out: dict = {}
    print(f"\n{folder}: {len(files)} files, {minutes:.0f} min, {len(row_ids)} chunks")
    print(
        "| mode | metric | Δ metric | max abs logit err | mean abs logit err | min / median Spearman per species | encoder CPU s per 4 min |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    base = None
    for k, parts in logits.items():
        scores = np.concatenate(parts)
        score = competition_score(y, np.where(np.isfinite(scores), scores, -1e9))
        base = score if base is None else base
        err = np.abs(scores[:, ok] - ref)
        rho = [spearmanr(scores[:, ok][:, j], ref[:, j]).statistic for j in range(ref.shape[1])]
        rho = np.asarray([r for r in rho if np.isfinite(r)])
        enc = k.split("+smooth")[0]
        cpu = times[enc][0] * 240 / (minutes * 60) if enc in times else float("nan")
        out[k] = {"metric": score, "max_err": float(err.max()), "mean_err": float(err.mean()), "cpu": cpu}
        print(f"| {k} | {score:.4f} | {score - base:+.4f} | {err.max():.4f} | {err.mean():.5f} | "
              f"{rho.min():.4f} / {np.median(rho):.4f} | {cpu:.3f} |", flush=True)  # fmt: skip
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
    ap.add_argument("--modes", action="store_true", help="only the precision / window modes table")
    ap.add_argument("--mix", type=Path, default=None, help="a `birdkit mix` folder to score the modes on too")
    a = ap.parse_args()
    if a.modes:
        figures = {}
        for name, folder in (("minicomp", a.data), ("mix", a.mix)):
            if folder is not None:
                for k, v in modes(folder, a.batch, 3 if a.quick else a.repeats).items():
                    figures[f"{name}_{k}_metric"] = v["metric"]
        print(" ".join(f"{k}={v:.4f}" for k, v in figures.items()))
        return
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
