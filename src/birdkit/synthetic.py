"""A small, deterministic competition in the BirdCLEF 2024 layout, generated from nothing.

It exists so that `birdkit demo` (and the tests) run on a fresh machine with no data: six synthetic "species",
each with a distinct call shape (up-sweep, down-sweep, trill, two-note whistle, harmonic stack, buzz), placed
in pink-ish background noise. BirdNET has never heard these species, so the taxonomy gives them invented
names that map to no BirdNET class (reported as unmapped, as any real unmapped species would be).

Soundscape ground truth is exact: a call is placed wholly inside one 5 s chunk.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from birdkit.audio import CHUNK_SECONDS, write_audio
from birdkit.io import atomic_write_bytes

SR = 32_000


def _env(n: int) -> np.ndarray:
    """Smooth attack/decay so calls have no clicks."""
    return np.hanning(n).astype(np.float32)


def _sweep(f0: float, f1: float, dur: float) -> Callable[[np.random.Generator], np.ndarray]:
    def make(rng: np.random.Generator) -> np.ndarray:
        d = dur * rng.uniform(0.85, 1.15)
        t = np.arange(int(d * SR)) / SR
        phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * d))
        return np.sin(phase).astype(np.float32) * _env(len(t))

    return make


def _trill(f: float, rate: float, dur: float) -> Callable[[np.random.Generator], np.ndarray]:
    def make(rng: np.random.Generator) -> np.ndarray:
        t = np.arange(int(dur * rng.uniform(0.85, 1.15) * SR)) / SR
        am = 0.5 * (1 + np.sign(np.sin(2 * np.pi * rate * t)))
        return (np.sin(2 * np.pi * f * t) * am).astype(np.float32) * _env(len(t))

    return make


def _two_note(f0: float, f1: float, note: float) -> Callable[[np.random.Generator], np.ndarray]:
    def make(rng: np.random.Generator) -> np.ndarray:
        n = int(note * SR)
        t = np.arange(n) / SR
        gap = np.zeros(int(0.05 * SR), dtype=np.float32)
        a = np.sin(2 * np.pi * f0 * t).astype(np.float32) * _env(n)
        b = np.sin(2 * np.pi * f1 * t).astype(np.float32) * _env(n)
        return np.concatenate([a, gap, b])

    return make


def _harmonic(f: float, dur: float) -> Callable[[np.random.Generator], np.ndarray]:
    def make(rng: np.random.Generator) -> np.ndarray:
        t = np.arange(int(dur * rng.uniform(0.85, 1.15) * SR)) / SR
        y = sum(np.sin(2 * np.pi * f * k * t) / k for k in (1, 2, 3, 4))
        return (y / 2).astype(np.float32) * _env(len(t))

    return make


def _buzz(lo: float, hi: float, dur: float) -> Callable[[np.random.Generator], np.ndarray]:
    def make(rng: np.random.Generator) -> np.ndarray:
        n = int(dur * SR)
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.fft.rfftfreq(n, 1 / SR)
        spec[(f < lo) | (f > hi)] = 0
        y = np.fft.irfft(spec, n)
        return (y / (np.abs(y).max() + 1e-9)).astype(np.float32) * _env(n)

    return make


@dataclass(frozen=True)
class SynthSpecies:
    code: str
    common: str
    scientific: str
    call: Callable[[np.random.Generator], np.ndarray]


SPECIES: tuple[SynthSpecies, ...] = (
    SynthSpecies("synup1", "Rising Synthwarbler", "Synthetica ascendens", _sweep(2000, 5500, 0.35)),
    SynthSpecies("syndn1", "Falling Synthwarbler", "Synthetica descendens", _sweep(7000, 3000, 0.3)),
    SynthSpecies("syntri1", "Trilling Synthwren", "Synthetica trillans", _trill(4200, 28, 0.7)),
    SynthSpecies("synwhi1", "Two-note Synthtit", "Synthetica bitonalis", _two_note(3100, 2300, 0.18)),
    SynthSpecies("synhar1", "Harmonic Synthdove", "Synthetica harmonica", _harmonic(900, 0.45)),
    SynthSpecies("synbuz1", "Buzzing Synthfinch", "Synthetica susurrans", _buzz(5000, 7500, 0.5)),
)


def _noise(rng: np.random.Generator, seconds: float, level: float) -> np.ndarray:
    """Pink-ish noise: white noise shaped 1/sqrt(f), like wind and distant traffic."""
    n = int(seconds * SR)
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SR)
    spec /= np.sqrt(np.maximum(f, 50.0))
    y = np.fft.irfft(spec, n)
    return (level * y / (np.abs(y).std() + 1e-9)).astype(np.float32)


def _place(y: np.ndarray, call: np.ndarray, start: int, gain: float) -> None:
    end = min(len(y), start + len(call))
    y[start:end] += gain * call[: end - start]


def _train_clip(rng: np.random.Generator, sp: SynthSpecies, seconds: float) -> np.ndarray:
    y = _noise(rng, seconds, 0.02)
    t = rng.uniform(0.2, 1.0)
    while t < seconds - 1.0:
        _place(y, sp.call(rng), int(t * SR), rng.uniform(0.2, 0.5))
        t += rng.uniform(0.8, 2.5)
    return np.clip(y, -1, 1)


def _soundscape(rng: np.random.Generator, seconds: int, p_call: float) -> tuple[np.ndarray, list[list[str]]]:
    """A soundscape and, per 5 s chunk, the species placed inside it."""
    y = _noise(rng, seconds, 0.03)
    labels: list[list[str]] = []
    for c in range(seconds // CHUNK_SECONDS):
        present: list[str] = []
        if rng.random() < p_call:
            k = 1 if rng.random() < 0.7 else 2
            for sp in rng.choice(len(SPECIES), size=k, replace=False):
                s = SPECIES[int(sp)]
                call = s.call(rng)
                room = CHUNK_SECONDS * SR - len(call) - int(0.2 * SR)
                _place(
                    y,
                    call,
                    c * CHUNK_SECONDS * SR + int(0.1 * SR) + int(rng.integers(0, room)),
                    rng.uniform(0.1, 0.4),
                )
                present.append(s.code)
        labels.append(sorted(present))
    return np.clip(y, -1, 1), labels


def generate(
    out: str | Path,
    seed: int = 0,
    clips_per_species: int = 3,
    n_test: int = 2,
    test_seconds: int = 60,
    n_unlabeled: int = 2,
) -> Path:
    """Write the synthetic competition to ``out`` (idempotent: an existing complete folder is kept)."""
    root = Path(out)
    marker = root / ".birdkit-synthetic.json"
    params = {
        "seed": seed,
        "clips": clips_per_species,
        "n_test": n_test,
        "secs": test_seconds,
        "unl": n_unlabeled,
    }
    if marker.exists() and json.loads(marker.read_text()) == params:
        return root
    rng = np.random.default_rng(seed)
    species = [s.code for s in SPECIES]

    meta_rows = []
    for sp in SPECIES:
        (root / "train_audio" / sp.code).mkdir(parents=True, exist_ok=True)
        for k in range(clips_per_species):
            name = f"XC{900000 + 10 * species.index(sp.code) + k}.ogg"
            write_audio(root / "train_audio" / sp.code / name, _train_clip(rng, sp, rng.uniform(8, 22)), SR)
            meta_rows.append(
                {
                    "primary_label": sp.code,
                    "secondary_labels": "[]",
                    "type": "['call']",
                    "latitude": 0.0,
                    "longitude": 0.0,
                    "scientific_name": sp.scientific,
                    "common_name": sp.common,
                    "author": "birdkit synthetic",
                    "license": "CC0",
                    "rating": 5.0,
                    "url": "",
                    "filename": f"{sp.code}/{name}",
                }
            )
    _write_csv(root / "train_metadata.csv", pd.DataFrame(meta_rows))

    truth = []
    (root / "test_soundscapes").mkdir(parents=True, exist_ok=True)
    for i in range(n_test):
        stem = f"synth_test_{i:03d}"
        y, labels = _soundscape(rng, test_seconds, p_call=0.6)
        write_audio(root / "test_soundscapes" / f"{stem}.ogg", y, SR)
        truth += [
            {"row_id": f"{stem}_{CHUNK_SECONDS * (c + 1)}", "labels": " ".join(ls)}
            for c, ls in enumerate(labels)
        ]
    truth_df = pd.DataFrame(truth)
    _write_csv(root / "test_labels_5s.csv", truth_df)

    (root / "unlabeled_soundscapes").mkdir(parents=True, exist_ok=True)
    for i in range(n_unlabeled):
        y, _ = _soundscape(rng, 30, p_call=0.4)
        write_audio(root / "unlabeled_soundscapes" / f"synth_unlabeled_{i:03d}.ogg", y, SR)

    sub = pd.DataFrame(0.0, index=range(len(truth_df)), columns=species)
    sub.insert(0, "row_id", truth_df["row_id"])
    _write_csv(root / "sample_submission.csv", sub)
    tax = pd.DataFrame(
        {
            "TAXON_ORDER": range(1, len(SPECIES) + 1),
            "CATEGORY": "species",
            "SPECIES_CODE": species,
            "PRIMARY_COM_NAME": [s.common for s in SPECIES],
            "SCI_NAME": [s.scientific for s in SPECIES],
            "ORDER1": "Synthetiformes",
            "FAMILY": "Synthetidae",
            "SPECIES_GROUP": "",
            "REPORT_AS": "",
        }
    )
    _write_csv(root / "eBird_Taxonomy_v2021.csv", tax)
    atomic_write_bytes(marker, json.dumps(params).encode())
    return root


def _write_csv(path: Path, df: pd.DataFrame) -> None:
    atomic_write_bytes(path, df.to_csv(index=False).encode())
