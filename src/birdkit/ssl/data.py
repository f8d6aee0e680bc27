"""The pretraining data: every 5 s window of the chosen splits as a raw log-mel array, computed once and cached.

Decoding and the spectrogram are most of an epoch's cost on CPU, so they are paid once: ``mels.npy``
(float16, [n, n_mels, frames]) beside ``mels.json`` (what it was made from). The standardisation constants
are measured on it and written into the frontend config the encoder ships with.
"""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from birdkit.audio import load_chunks
from birdkit.competition import Competition
from birdkit.errors import OptionError
from birdkit.io import atomic_write_bytes, atomic_write_json
from birdkit.ssl.frontend import FrontendConfig, LogMel


def _key(data_dir: Path, splits: list[str], limit: int | None, fe: FrontendConfig) -> str:
    blob = json.dumps([str(data_dir.resolve()), splits, limit, fe.to_json()], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def load_windows(
    data_dir: str | Path,
    splits: list[str],
    cache: str | Path,
    limit: int | None = None,
    fe: FrontendConfig | None = None,
    progress: bool = True,
) -> tuple[np.ndarray, FrontendConfig]:
    """Raw log-mel windows [n, n_mels, frames] float16 of the splits' audio (``limit`` files per split), and
    the frontend config with their mean and std filled in; read from ``cache`` when made there before."""
    fe = replace(fe or FrontendConfig(), mean=0.0, std=1.0)
    comp = Competition(data_dir)
    cache = Path(cache)
    key = _key(comp.root, list(splits), limit, fe)
    npy, meta = cache / f"mels-{key}.npy", cache / f"mels-{key}.json"
    if npy.exists() and meta.exists():
        info = json.loads(meta.read_text())
        return np.load(npy, mmap_mode="r"), replace(fe, mean=info["mean"], std=info["std"])
    files = [f for s in splits for f in comp.audio_files(s)[:limit]]
    if not files:
        raise OptionError(f"{comp.root}: no audio in {', '.join(splits)}; check DATA and --splits")
    frontend = LogMel(fe).eval()
    parts = []
    for f in tqdm(files, desc="log-mel", unit="file", disable=not progress):
        chunks = load_chunks(f, fe.sample_rate).chunks
        with torch.no_grad():
            parts.append(frontend(torch.from_numpy(chunks))[:, 0].numpy().astype(np.float16))
    mels = np.concatenate(parts)
    x = mels.astype(np.float32)
    mean, std = float(x.mean()), float(x.std() + 1e-6)
    cache.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.save(buf, mels)
    atomic_write_bytes(npy, buf.getvalue())
    atomic_write_json(
        meta, {"files": len(files), "windows": len(mels), "splits": splits, "mean": mean, "std": std}
    )
    return mels, replace(fe, mean=mean, std=std)
