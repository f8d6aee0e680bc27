"""`birdkit mix`: a labelled validation set for users without labelled soundscapes.

Real training clips are placed into real soundscape background (``unlabeled_soundscapes``) at known times and
signal-to-noise ratios, and every 5 s chunk a placed call overlaps gets that species: a competition folder
(``test_soundscapes/``, ``test_labels_5s.csv``, ``sample_submission.csv``, taxonomy) that ``infer``, ``tune`` and
the metric read like the real one. ``mix_sources.csv`` says which clip went where.

Why it means something where pseudo-labels do not: the labels come from where the audio was put, not from any
model, so a head distilled from the surrogate cannot score well on it by agreeing with the surrogate.
A species present in a soundscape usually calls more than once: half the chosen species sing a bout (calls
every few seconds over part of the file, at one distance), half pass by with a few calls; the background's own birds are unlabelled (they count
as negatives: a known bias, equal for every candidate a tuner compares).

The clips are drawn from the recordings ``holdout_files`` returns (a seeded share per species), which a
training run can leave out (`birdkit train --exclude-mix MIX`), so a head is never validated on its own clips.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from birdkit.audio import CHUNK_SECONDS, load_audio, write_audio
from birdkit.competition import Competition
from birdkit.errors import OptionError
from birdkit.io import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

SR = 32_000
SOURCES = "mix_sources.csv"
CONFIG = "mix.json"


@dataclass(frozen=True)
class MixConfig:
    files: int = 24
    seconds: int = 120
    species: tuple[int, int] = (1, 4)  # species per soundscape, inclusive range
    calls: tuple[int, int] = (1, 4)  # calls of a species passing by
    singers: float = 0.5  # share of present species that sing a bout instead
    interval: tuple[float, float] = (4.0, 15.0)  # seconds between a singer's calls
    snr_db: tuple[float, float] = (-6.0, 12.0)
    call_seconds: float = 3.0
    holdout: float = 0.25  # share of each species' recordings the mix draws from
    seed: int = 0

    def __post_init__(self) -> None:
        checks = [
            (self.files >= 1, f"--files {self.files}: must be 1 or more"),
            (self.seconds >= CHUNK_SECONDS, f"--seconds {self.seconds}: must be {CHUNK_SECONDS} or more"),
            (1 <= self.species[0] <= self.species[1], f"--species {self.species}: give LO<=HI, LO >= 1"),
            (1 <= self.calls[0] <= self.calls[1], f"--calls {self.calls}: give LO<=HI, LO >= 1"),
            (self.snr_db[0] <= self.snr_db[1], f"--snr-db {self.snr_db}: give LO<=HI"),
            (0 < self.interval[0] <= self.interval[1], f"--interval {self.interval}: give 0<LO<=HI"),
            (0 <= self.singers <= 1, f"--singers {self.singers}: must lie in [0, 1]"),
            (0 < self.call_seconds <= self.seconds, f"--call-seconds {self.call_seconds}: in (0, seconds]"),
            (0 < self.holdout <= 1, f"--holdout {self.holdout}: must lie in (0, 1]"),
        ]
        problems = [m for ok, m in checks if not ok]
        if problems:
            raise OptionError("; ".join(problems))


def holdout_files(comp: Competition, holdout: float, seed: int) -> dict[str, list[str]]:
    """Per species, the training recordings (relative names) the mix may use: a seeded ``holdout`` share, at
    least one, and none where a species has a single recording (it is needed for training)."""
    out: dict[str, list[str]] = {}
    rng = np.random.default_rng(seed)
    by_species: dict[str, list[str]] = {}
    for p in comp.audio_files("train_audio"):
        rel = comp.relative(p, "train_audio")
        sp = comp.folder_species(rel)
        if sp:
            by_species.setdefault(sp, []).append(rel)
    for sp in sorted(by_species):
        files = sorted(by_species[sp])
        if len(files) < 2:
            continue
        n = min(len(files) - 1, max(1, round(holdout * len(files))))
        out[sp] = sorted(files[i] for i in rng.permutation(len(files))[:n])
    return out


def _loudest(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """The ``n``-sample stretch of a clip with the most energy (the call, most likely), from near the top."""
    if len(y) <= n:
        return np.pad(y, (0, n - len(y)))
    hop = SR // 4
    starts = np.arange(0, len(y) - n + 1, hop)
    c = np.concatenate([[0.0], np.cumsum(y.astype(np.float64) ** 2)])
    energy = c[starts + n] - c[starts]
    top = np.argsort(energy)[::-1][:3]
    s = int(starts[rng.choice(top)])
    return y[s : s + n]


def _background(comp: Competition, rng: np.random.Generator, seconds: int) -> list[np.ndarray]:
    files = comp.audio_files("unlabeled_soundscapes") if comp.path("unlabeled_soundscapes").is_dir() else []
    if not files:
        raise OptionError(
            f"{comp.root}: no unlabeled_soundscapes/ to take background from; `birdkit mix` needs real "
            "soundscape background (any folder of field recordings there will do)"
        )
    pool = [load_audio(f, SR) for f in files]
    return [y for y in pool if len(y) > SR] or pool


def _segment(pool: list[np.ndarray], rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` samples of background: a random start in a random recording, looped when it is shorter."""
    y = pool[int(rng.integers(len(pool)))]
    reps = int(np.ceil((n + len(y)) / len(y)))
    start = int(rng.integers(len(y)))
    return np.tile(y, reps)[start : start + n].astype(np.float32)


def _calls(rng: np.random.Generator, config: MixConfig, n: int, n_call: int) -> list[tuple[int, float]]:
    """When one present species calls (sample offsets) and how loud (SNR dB): half the species are singers with
    a bout over a stretch of the file (a call every ``interval`` s, one distance, +-3 dB per call), half pass by
    with ``calls`` scattered calls, each at its own SNR."""
    if rng.random() < config.singers:
        span = n * rng.uniform(0.2, 1.0)
        first = rng.uniform(0, max(1.0, n - span))
        step = rng.uniform(*config.interval) * SR
        base = rng.uniform(*config.snr_db)
        starts = np.arange(first, min(n - n_call, first + span), step)
        return [(int(s), float(base + rng.uniform(-3, 3))) for s in starts[: max(1, len(starts))]]
    k = int(rng.integers(config.calls[0], config.calls[1] + 1))
    return [(int(rng.integers(0, n - n_call + 1)), float(rng.uniform(*config.snr_db))) for _ in range(k)]


def mix(data_dir: str | Path, out: str | Path, config: MixConfig | None = None) -> pd.DataFrame:
    """Write the mixed validation competition to ``out``; returns its sources table (file, species, clip,
    start_s, snr_db)."""
    config = config or MixConfig()
    comp = Competition(data_dir)
    out = Path(out)
    rng = np.random.default_rng(config.seed)
    clips = holdout_files(comp, config.holdout, config.seed)
    if not clips:
        raise OptionError(f"{comp.root}/train_audio: no species with 2 or more recordings to mix from")
    pool = _background(comp, rng, config.seconds)
    n = config.seconds * SR
    n_call = int(config.call_seconds * SR)
    fade = np.minimum(1.0, np.minimum(np.arange(n_call), np.arange(n_call)[::-1]) / (0.05 * SR))
    species = sorted(clips)
    cache: dict[str, np.ndarray] = {}
    sources, labels = [], []
    (out / "test_soundscapes").mkdir(parents=True, exist_ok=True)
    for old in (out / "test_soundscapes").glob("mix_*.flac"):  # an earlier, larger mix must not linger
        old.unlink()
    n_chunks = config.seconds // CHUNK_SECONDS
    for i in range(config.files):
        stem = f"mix_{i:03d}"
        y = _segment(pool, rng, n)
        chunk_sets: list[set[str]] = [set() for _ in range(n_chunks)]
        k = int(rng.integers(config.species[0], min(config.species[1], len(species)) + 1))
        for sp in rng.choice(species, size=k, replace=False):
            for start, snr in _calls(rng, config, n, n_call):
                rel = clips[sp][int(rng.integers(len(clips[sp])))]
                if rel not in cache:
                    cache[rel] = load_audio(comp.path("train_audio") / rel, SR)
                call = _loudest(cache[rel], n_call, rng) * fade
                bg = float(np.sqrt(np.mean(y[start : start + n_call] ** 2)) + 1e-5)
                sig = float(np.sqrt(np.mean(call**2)) + 1e-9)
                y[start : start + n_call] += (call * (bg / sig) * 10 ** (snr / 20)).astype(np.float32)
                t0, t1 = start / SR, (start + n_call) / SR
                for c in range(n_chunks):  # labelled where the call overlaps a chunk by 1 s (or half of it)
                    ov = min(t1, (c + 1) * CHUNK_SECONDS) - max(t0, c * CHUNK_SECONDS)
                    if ov >= min(1.0, config.call_seconds / 2):
                        chunk_sets[c].add(str(sp))
                sources.append(
                    {"file": stem, "species": str(sp), "clip": rel, "start_s": round(t0, 3), "snr_db": snr}
                )
        peak = float(np.max(np.abs(y)))
        if peak > 0.99:
            y = y * (0.99 / peak)
        write_audio(out / "test_soundscapes" / f"{stem}.flac", y, SR)
        labels += [
            {"row_id": f"{stem}_{CHUNK_SECONDS * (c + 1)}", "labels": " ".join(sorted(s))}
            for c, s in enumerate(chunk_sets)
        ]
    for name in ("sample_submission.csv", "eBird_Taxonomy_v2021.csv", "train_metadata.csv"):
        if comp.path(name).exists():
            shutil.copyfile(comp.path(name), out / name)
    if not (out / "sample_submission.csv").exists():
        atomic_write_text(out / "sample_submission.csv", ",".join(["row_id", *comp.species]) + "\n")
    atomic_write_text(out / "test_labels_5s.csv", pd.DataFrame(labels).to_csv(index=False))
    table = pd.DataFrame(sources)
    atomic_write_text(out / SOURCES, table.to_csv(index=False))
    atomic_write_json(out / CONFIG, {**asdict(config), "data_dir": str(comp.root), "clips": clips})
    log.info(
        "mixed %d soundscapes, %d calls of %d species into %s", config.files, len(table), len(species), out
    )
    return table


def mixed_clips(mix_dir: str | Path) -> set[str]:
    """The training recordings a mix drew from (what `train --exclude-mix` leaves out)."""
    cfg = json.loads((Path(mix_dir) / CONFIG).read_text())
    return {rel for files in cfg.get("clips", {}).values() for rel in files}
