"""Audio front end: decode any file to mono float32, resample with soxr, cut into the competition's 5 s chunks.

This is the one place the chunk rule lives: chunk i of a file covers [5i, 5i+5) s, its row_id is
``<stem>_<5(i+1)>``, and a last partial chunk is zero-padded (a 39 s file gives 8 rows). The chunk count is
taken from the *source* sample count, so resampling can never add or drop a row.

A file is read as a stream (:class:`ChunkStream`): decoded in blocks, resampled by a streaming soxr resampler and
handed on in blocks of :data:`BLOCK_CHUNKS` rows, so memory does not grow with the file's length (a 24-hour field
recording holds no more than a 4-minute soundscape). Blockwise decoding and streamed soxr give the same samples,
bit for bit, as one whole-file read and ``soxr.resample`` (checked in tests/test_memory_stream.py), so
:func:`load_chunks` is simply the stream, gathered.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
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


def header_duration(path: str | Path) -> float | None:
    """A file's duration from its header alone (seconds), or None when the header cannot be read."""
    try:
        return float(sf.info(str(path)).duration)
    except Exception:  # noqa: BLE001 - unreadable here: decoding it will say why
        return None


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

BLOCK_CHUNKS = 48  # rows per streamed block: a 4-minute soundscape is one block (46 MB at 48 kHz)
READ_SECONDS = 30  # source audio decoded per read


@dataclass(frozen=True)
class ChunkBlock:
    """Consecutive rows of one file: rows ``start .. start + n - 1``, at every rate asked for."""

    start: int
    by_rate: dict[int, np.ndarray]  # rate -> [n, 5 * rate] float32

    def __len__(self) -> int:
        return next(iter(self.by_rate.values())).shape[0]


class ChunkStream:
    """One file as blocks of at most ``block_chunks`` rows, decoded and resampled as it goes.

    Iterate it once; afterwards :attr:`n_chunks`, :attr:`row_ids` and :attr:`duration_s` describe the whole
    file. Rows are those of :func:`load_chunks` exactly: the count comes from the source sample count (known at
    the end), a full 5 s of resampled audio is always a row of it, and the tail is zero-padded or trimmed.
    ``stage(name)`` wraps each ``decode`` and ``resample`` step (timing).
    """

    def __init__(
        self,
        path: str | Path,
        rates: int | Iterable[int],
        block_chunks: int | None = None,
        stage: Stage = nullcontext,
    ) -> None:
        self.path = Path(path)
        wanted = [int(rates)] if isinstance(rates, int | np.integer) else [int(r) for r in rates]
        if not wanted:
            raise OptionError(
                f"{self.path}: load_chunks needs at least one sample rate (the encoders' rates)"
            )
        block_chunks = BLOCK_CHUNKS if block_chunks is None else int(block_chunks)
        if block_chunks < 1:
            raise OptionError(f"block_chunks={block_chunks}: give 1 or more rows per block")
        self.rates = list(dict.fromkeys(wanted))
        self.block_chunks = block_chunks
        self.stage = stage
        self.source_rate = 0
        self.n_source = 0
        self.n_chunks: int | None = None

    @property
    def duration_s(self) -> float:
        return self.n_source / self.source_rate if self.source_rate else 0.0

    @property
    def row_ids(self) -> list[str]:
        if self.n_chunks is None:
            raise RuntimeError(f"{self.path}: row ids are known once the stream has been read")
        return row_ids(self.path.stem, self.n_chunks)

    def _open(self) -> sf.SoundFile:
        p = self.path
        if not p.exists():
            raise AudioError(p, "no such file", "check the path")
        if p.stat().st_size == 0:
            raise AudioError(p, "empty file (0 bytes)", "re-download or delete it")
        try:
            return sf.SoundFile(str(p))
        except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
            raise AudioError(p, f"cannot decode: {exc}", "is it really audio? try `ffmpeg -i` on it") from exc

    def _read(self, f: sf.SoundFile, frames: int) -> np.ndarray:
        with self.stage("decode"):
            try:
                data = f.read(frames, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as exc:
                raise AudioError(
                    self.path, f"cannot decode: {exc}", "is it really audio? try `ffmpeg -i` on it"
                ) from exc
            mono = data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0]
            if not np.isfinite(mono).all():
                raise AudioError(self.path, "samples contain NaN or infinity", "re-encode the file")
            return np.ascontiguousarray(mono, dtype=np.float32)

    def __iter__(self) -> Iterator[ChunkBlock]:
        with self._open() as f:
            sr = self.source_rate = int(f.samplerate)
            streams = {
                r: soxr.ResampleStream(sr, r, 1, dtype="float32", quality="HQ") if r != sr else None
                for r in self.rates
            }
            pending: dict[int, list[np.ndarray]] = {r: [] for r in self.rates}
            held = dict.fromkeys(self.rates, 0)  # resampled samples waiting to become rows
            done = 0  # rows handed on
            last = False
            while not last:
                x = self._read(f, READ_SECONDS * sr)
                last = len(x) < READ_SECONDS * sr
                self.n_source += len(x)
                with self.stage("resample"):
                    for r, st in streams.items():
                        y = x if st is None else st.resample_chunk(x, last=last)
                        pending[r].append(y)
                        held[r] += len(y)
                # full blocks of rows, ready at every rate; the rest (under a block) waits for the end
                ready = min(held[r] // (CHUNK_SECONDS * r) for r in self.rates)
                while ready >= self.block_chunks:
                    yield ChunkBlock(
                        done, {r: self._take(pending, held, r, self.block_chunks) for r in self.rates}
                    )
                    done += self.block_chunks
                    ready -= self.block_chunks
            if self.n_source == 0:
                raise AudioError(self.path, "no audio frames", "the file holds a header only")
            self.n_chunks = chunk_count(self.n_source, sr)
            if self.n_chunks > done:  # under a block of full rows, and the zero-padded tail
                empty = np.zeros(0, np.float32)
                rest = {r: to_chunks(np.concatenate(pending[r]) if pending[r] else empty, r, self.n_chunks - done)
                        for r in self.rates}  # fmt: skip
                yield ChunkBlock(done, rest)

    @staticmethod
    def _take(pending: dict[int, list[np.ndarray]], held: dict[int, int], rate: int, rows: int) -> np.ndarray:
        """The first ``rows`` full rows at ``rate`` out of the pending samples (copied; the rest stays)."""
        size = CHUNK_SECONDS * rate
        buf = np.concatenate(pending[rate]) if len(pending[rate]) > 1 else pending[rate][0]
        out = np.array(buf[: rows * size], dtype=np.float32).reshape(rows, size)
        pending[rate] = [buf[rows * size :].copy()]
        held[rate] -= rows * size
        return out


def load_chunks(path: str | Path, rates: int | Iterable[int], stage: Stage = nullcontext) -> ChunkedFile:
    """Decode one file once, then resample and chunk it at each of ``rates``: the whole file in memory (embed's
    per-file path and long files use :class:`ChunkStream` block by block instead).

    ``stage(name)`` wraps the ``decode`` and ``resample`` steps, so a caller can time them
    (:meth:`birdkit.profile.StageTimes.stage`).
    """
    stream = ChunkStream(path, rates, stage=stage)
    blocks = list(stream)
    by_rate = {
        r: blocks[0].by_rate[r] if len(blocks) == 1 else np.concatenate([b.by_rate[r] for b in blocks])
        for r in stream.rates
    }
    return ChunkedFile(stream.path, stream.row_ids, by_rate, stream.source_rate, stream.duration_s)


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
