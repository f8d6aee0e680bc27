"""The files a pretrained encoder is made of, written into the run folder when pretraining ends:

    encoder.pt        the ViT's weights and the configs that rebuild it (torch runtime, attention maps)
    encoder.onnx      the whole encoder, waveform -> embedding, one graph (what the notebook runs)
    encoder.json      sample rate, embedding size, configs, the ONNX graph's hash and its parity against torch
    loss_curve.png    the pretraining loss
    history.json      (step, seconds, loss) per step

ONNX rather than TFLite: the converter (litert-torch) cannot be installed beside the kit's dependencies, while
onnx/onnxruntime are already there; the conversion is checked against torch (max |diff| <= 1e-4) or refused.
"""

from __future__ import annotations

import hashlib
import io
import json
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from birdkit.errors import BirdkitError
from birdkit.io import atomic_write_bytes, atomic_write_json
from birdkit.ssl.frontend import CHUNK_SAMPLES, FrontendConfig, LogMel
from birdkit.ssl.model import Encoder, ViT, ViTConfig

WEIGHTS, GRAPH, CARD, CURVE, HISTORY = (
    "encoder.pt",
    "encoder.onnx",
    "encoder.json",
    "loss_curve.png",
    "history.json",
)
PARITY_TOLERANCE = 1e-4
OPSET = 17


class SSLModelError(BirdkitError):
    """A missing or inconsistent SSL model folder; the message says how to make one."""


def parity_waves(n: int = 4, seed: int = 0) -> np.ndarray:
    """Seeded test chunks: noise, a chirp over noise, silence, a loud tone."""
    rng = np.random.default_rng(seed)
    t = np.arange(CHUNK_SAMPLES) / 32_000
    waves = [
        0.05 * rng.standard_normal(CHUNK_SAMPLES),
        0.3 * np.sin(2 * np.pi * (2000 + 800 * t) * t) + 0.01 * rng.standard_normal(CHUNK_SAMPLES),
        np.zeros(CHUNK_SAMPLES),
        0.9 * np.sin(2 * np.pi * 4000 * t),
    ]
    return np.stack([waves[i % len(waves)] for i in range(n)]).astype(np.float32)


def build_encoder(weights: dict) -> Encoder:
    fe = FrontendConfig(**weights["frontend"])
    vit = ViT(ViTConfig(**weights["vit"]), fe)
    vit.load_state_dict(weights["state"])
    return Encoder(vit, LogMel(fe)).eval()


def load_weights(path: str | Path) -> dict:
    return torch.load(Path(path), map_location="cpu", weights_only=False)


def export_onnx(encoder: Encoder) -> bytes:
    """The encoder as an ONNX graph with a dynamic batch axis."""
    x = torch.from_numpy(parity_waves(2))
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on shapes it fixes; parity is checked below
        path = Path(tmp) / GRAPH
        torch.onnx.export(
            encoder,
            (x,),
            str(path),
            input_names=["audio"],
            output_names=["embedding"],
            dynamic_axes={"audio": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )
        return path.read_bytes()


def onnx_parity(encoder: Encoder, graph: bytes) -> float:
    import onnxruntime as ort

    x = parity_waves(4)
    sess = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    got = sess.run(None, {"audio": x})[0]
    with torch.no_grad():
        want = encoder(torch.from_numpy(x)).numpy()
    return float(np.abs(got - want).max())


def write_encoder(out: Path, weights: dict, extra: dict | None = None) -> dict[str, Path]:
    """encoder.pt, encoder.onnx (parity-checked) and encoder.json from ``weights``."""
    encoder = build_encoder(weights)
    graph = export_onnx(encoder)
    max_abs = onnx_parity(encoder, graph)
    if not max_abs <= PARITY_TOLERANCE:
        raise SSLModelError(f"{out}: ONNX graph differs from torch by {max_abs:.3g} > {PARITY_TOLERANCE}")
    buf = io.BytesIO()
    torch.save(weights, buf)
    atomic_write_bytes(out / WEIGHTS, buf.getvalue())
    atomic_write_bytes(out / GRAPH, graph)
    sha = hashlib.sha256(graph).hexdigest()
    card = {
        "name": "ssl",
        "version": sha[:12],
        "sample_rate": weights["frontend"]["sample_rate"],
        "embedding_dim": 2 * weights["vit"]["dim"],
        "frontend": weights["frontend"],
        "vit": weights["vit"],
        "onnx": {"file": GRAPH, "sha256": sha, "opset": OPSET, "parity_max_abs": max_abs},
        **(extra or {}),
    }
    atomic_write_json(out / CARD, card)
    return {WEIGHTS: out / WEIGHTS, GRAPH: out / GRAPH, CARD: out / CARD}


def loss_figure(history: list, title: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = np.asarray(history, dtype=np.float64).reshape(-1, 3)
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    ax.plot(h[:, 0], h[:, 2], lw=0.6, alpha=0.4, label="step")
    if len(h) >= 10:
        k = max(5, len(h) // 30)
        ax.plot(
            h[k - 1 :, 0], np.convolve(h[:, 2], np.ones(k) / k, mode="valid"), lw=1.5, label=f"mean of {k}"
        )
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


def write_artifacts(out: Path, vit: ViT, fe: FrontendConfig, cfg, history: list, mels: np.ndarray) -> dict:
    """Everything a finished (or budget-stopped) run leaves besides its checkpoint."""
    weights = {"frontend": fe.to_json(), "vit": vit.cfg.to_json(), "state": vit.state_dict()}
    extra = {
        "objective": cfg.objective,
        "mask_ratio": cfg.mask_ratio if cfg.objective != "vicreg" else None,
        "norm_pix": cfg.norm_pix if cfg.objective == "mae" else None,
        "steps": len(history),
        "windows": len(mels),
        "splits": cfg.splits,
    }
    files = write_encoder(out, weights, extra)
    atomic_write_json(out / HISTORY, {"columns": ["step", "seconds", "loss"], "rows": history})
    title = f"{cfg.objective} {cfg.size}: {len(history)} steps, {history[-1][1] if history else 0:.0f} s"
    atomic_write_bytes(out / CURVE, loss_figure(history, title))
    return {**files, CURVE: out / CURVE, HISTORY: out / HISTORY}


def read_card(folder: Path) -> dict:
    p = folder / CARD
    if not p.exists():
        raise SSLModelError(f"{p}: missing; make the model with `birdkit ssl pretrain DATA --out {folder}`")
    return json.loads(p.read_text())
