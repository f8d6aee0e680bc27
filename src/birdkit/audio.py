"""Audio front end: decode any file to mono float32, resample with soxr, cut into the competition's 5 s chunks.

This is the one place the chunk rule lives: chunk i of a file covers [5i, 5i+5) s, its row_id is
``<stem>_<5(i+1)>``, and a last partial chunk is zero-padded (a 39 s file gives 8 rows). The chunk count is
taken from the *source* sample count, so resampling can never add or drop a row.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from birdkit.errors import BirdkitError, OptionError

CHUNK_SECONDS = 5
# A trailing remainder shorter than this does not open a new chunk (guards 240.0004 s files against a 49th row).
TAIL_TOLERANCE_S = 0.01
AUDIO_SUFFIXES = (".ogg", ".mp3", ".wav", ".flac", ".opus")


class AudioError(BirdkitError):
    """A file that cannot be turned into audio; the message names the file and what to do about it."""

    def __init__(self, path: str | Path, reason: str, fix: str = "") -> None:
        self.path = str(path)
        self.reason = reason
        msg = f"{self.path}: {reason}"
        if fix:
            msg += f" ({fix})"
        super().__init__(msg)


@dataclass(frozen=True)
class Decoded:
    """A decoded file before resampling: enough to count its chunks the same way everywhere."""

    samples: np.ndarray  # mono float32
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


def decode(path: str | Path) -> Decoded:
    """Read a file to mono float32 at its own rate, or raise AudioError naming it."""
    p = Path(path)
    if not p.exists():
        raise AudioError(p, "no such file", "check the path")
    if p.stat().st_size == 0:
        raise AudioError(p, "empty file (0 bytes)", "re-download or delete it")
    try:
        data, sr = sf.read(str(p), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
        raise AudioError(p, f"cannot decode: {exc}", "is it really audio? try `ffmpeg -i` on it") from exc
    if data.shape[0] == 0:
        raise AudioError(p, "no audio frames", "the file holds a header only")
    mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
    if not np.isfinite(mono).all():
        raise AudioError(p, "samples contain NaN or infinity", "re-encode the file")
    return Decoded(np.ascontiguousarray(mono, dtype=np.float32), int(sr))


def resample(samples: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """soxr high-quality resampling; a no-op at equal rates."""
    if sr_in == sr_out:
        return samples
    return soxr.resample(samples, sr_in, sr_out, quality="HQ").astype(np.float32, copy=False)


def load_audio(path: str | Path, sample_rate: int) -> np.ndarray:
    """Decode, downmix and resample a file to ``sample_rate``."""
    d = decode(path)
    return resample(d.samples, d.sample_rate, sample_rate)


def chunk_count(n_samples: int, sample_rate: int) -> int:
    """Number of 5 s rows for a file of ``n_samples`` at ``sample_rate`` (at least one)."""
    seconds = n_samples / sample_rate
    return max(1, math.ceil(seconds / CHUNK_SECONDS - TAIL_TOLERANCE_S / CHUNK_SECONDS))


def chunk_ends(n_chunks: int) -> list[int]:
    """End second of each chunk: 5, 10, ..."""
    return [CHUNK_SECONDS * (i + 1) for i in range(n_chunks)]


def row_ids(stem: str, n_chunks: int) -> list[str]:
    """Competition row ids ``<stem>_<end second>``."""
    return [f"{stem}_{end}" for end in chunk_ends(n_chunks)]


def to_chunks(samples: np.ndarray, sample_rate: int, n_chunks: int) -> np.ndarray:
    """Cut resampled audio into ``n_chunks`` rows of 5 s, zero-padding (or trimming) the tail."""
    size = CHUNK_SECONDS * sample_rate
    buf = np.zeros(n_chunks * size, dtype=np.float32)
    n = min(len(samples), len(buf))
    buf[:n] = samples[:n]
    return buf.reshape(n_chunks, size)


@dataclass(frozen=True)
class ChunkedFile:
    """A file cut into its competition rows, at one or several encoders' rates from a single decode."""

    path: Path
    row_ids: list[str]
    by_rate: dict[int, np.ndarray]  # rate -> [n_chunks, 5 * rate] float32, in the order the rates were asked
    source_rate: int
    duration_s: float

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def sample_rate(self) -> int:
        """The first rate asked for (the only one, for a single encoder)."""
        return next(iter(self.by_rate))

    @property
    def chunks(self) -> np.ndarray:
        """[n_chunks, 5 * sample_rate] float32 at :attr:`sample_rate`."""
        return self.by_rate[self.sample_rate]


Stage = Callable[[str], AbstractContextManager[Any]]


def load_chunks(path: str | Path, rates: int | Iterable[int], stage: Stage = nullcontext) -> ChunkedFile:
    """Decode one file once, then resample and chunk it at each of ``rates``: the audio stage's single entry
    point (embed asks one rate, inference every rate its encoders need).

    ``stage(name)`` wraps the ``decode`` and ``resample`` steps, so a caller can time them
    (:meth:`birdkit.profile.StageTimes.stage`).
    """
    p = Path(path)
    wanted = [int(rates)] if isinstance(rates, int | np.integer) else [int(r) for r in rates]
    if not wanted:
        raise OptionError(f"{p}: load_chunks needs at least one sample rate (the encoders' rates)")
    with stage("decode"):
        d = decode(p)
    n = chunk_count(len(d.samples), d.sample_rate)
    with stage("resample"):
        by_rate = {r: to_chunks(resample(d.samples, d.sample_rate, r), r, n) for r in dict.fromkeys(wanted)}
    return ChunkedFile(p, row_ids(p.stem, n), by_rate, d.sample_rate, d.duration_s)


WRITE_FORMATS = {".ogg": ("OGG", "VORBIS"), ".flac": ("FLAC", "PCM_16"), ".wav": ("WAV", "PCM_16")}


def write_audio(path: str | Path, samples: np.ndarray, sample_rate: int, block_s: float = 1.0) -> None:
    """Write audio in ~1 s blocks: libsndfile 1.2 crashes on one long OGG Vorbis write."""
    p = Path(path)
    fmt = WRITE_FORMATS.get(p.suffix.lower())
    if fmt is None:
        raise AudioError(
            p, f"cannot write {p.suffix or 'a file without suffix'}", f"use one of {', '.join(WRITE_FORMATS)}"
        )
    block = max(1, int(block_s * sample_rate))
    tmp = p.with_name(p.name + ".tmp")
    with sf.SoundFile(str(tmp), "w", samplerate=sample_rate, channels=1, format=fmt[0], subtype=fmt[1]) as f:
        for i in range(0, len(samples), block):
            f.write(np.asarray(samples[i : i + block], dtype=np.float32))
    tmp.replace(p)
