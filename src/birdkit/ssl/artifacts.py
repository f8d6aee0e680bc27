"""The files a pretrained encoder is made of, written into the run folder when pretraining ends (and again by
`birdkit ssl export`, e.g. with another pooling):

    encoder.pt        the ViT's weights, the configs that rebuild it and the pooling (torch runtime, attention)
    encoder.tflite    the whole encoder, waveform -> embedding, one graph (what the notebook runs)
    encoder.onnx      the same graph for onnxruntime (a fallback runtime here; `birdkit export` ships TFLite)
    encoder.json      sample rate, embedding size, configs, each graph's hash and its parity against torch
    loss_curve.png    the pretraining loss
    history.json      (step, seconds, loss) per step

The TFLite graph is rebuilt in TensorFlow from the weights (:mod:`birdkit.ssl.tflite`); each graph is checked
against torch on seeded chunks (max |diff| <= 1e-4) and refused otherwise.
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
from birdkit.ssl.pooling import DEFAULT_POOL, check_pool, pooled_dim

WEIGHTS, TFLITE, GRAPH, CARD = "encoder.pt", "encoder.tflite", "encoder.onnx", "encoder.json"
CURVE, HISTORY = "loss_curve.png", "history.json"
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
    return Encoder(vit, LogMel(fe), check_pool(weights.get("pool"))).eval()


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


def _reference(encoder: Encoder, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return encoder(torch.from_numpy(x)).numpy()


def onnx_parity(encoder: Encoder, graph: bytes) -> float:
    import onnxruntime as ort

    x = parity_waves(4)
    sess = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    return float(np.abs(sess.run(None, {"audio": x})[0] - _reference(encoder, x)).max())


def tflite_parity(encoder: Encoder, graph: bytes) -> float:
    """Max |TFLite - torch| on the parity chunks, run by the kit's TFLite runtime (what the notebook uses)."""
    from birdkit.runtime.interpreter import FixedBatchRunner

    x = parity_waves(4)
    got = FixedBatchRunner(graph, len(x), signature="serving_default").run(x)[0]
    return float(np.abs(got - _reference(encoder, x)).max())


def _checked(out: Path, kind: str, max_abs: float) -> float:
    if not max_abs <= PARITY_TOLERANCE:
        raise SSLModelError(
            f"{out}: the {kind} graph differs from torch by {max_abs:.3g} > {PARITY_TOLERANCE}"
        )
    return max_abs


def write_encoder(out: Path, weights: dict, extra: dict | None = None, onnx: bool = True) -> dict[str, Path]:
    """encoder.pt, encoder.tflite and encoder.onnx (each parity-checked) and encoder.json from ``weights``.

    Nothing is written unless every graph passes, so a failed export leaves the folder as it was."""
    from birdkit.ssl.tflite import to_tflite

    encoder = build_encoder(weights)
    tflite = to_tflite(weights)
    graphs = {TFLITE: (tflite, _checked(out, "TFLite", tflite_parity(encoder, tflite)))}
    if onnx:
        graph = export_onnx(encoder)
        graphs[GRAPH] = (graph, _checked(out, "ONNX", onnx_parity(encoder, graph)))
    buf = io.BytesIO()
    torch.save(weights, buf)
    atomic_write_bytes(out / WEIGHTS, buf.getvalue())
    for name, (data, _) in graphs.items():
        atomic_write_bytes(out / name, data)
    if not onnx:
        (out / GRAPH).unlink(missing_ok=True)  # an old graph would no longer match the weights
    sha = {name: hashlib.sha256(data).hexdigest() for name, (data, _) in graphs.items()}
    fe, vit = FrontendConfig(**weights["frontend"]), ViTConfig(**weights["vit"])
    card = {
        "name": "ssl",
        "version": sha[TFLITE][:12],
        "sample_rate": fe.sample_rate,
        "embedding_dim": pooled_dim(encoder.pool, vit.dim, vit.grid(fe)[0]),
        "pool": encoder.pool,
        "frontend": weights["frontend"],
        "vit": weights["vit"],
        "tflite": {"file": TFLITE, "sha256": sha[TFLITE], "parity_max_abs": graphs[TFLITE][1]},
        **(
            {
                "onnx": {
                    "file": GRAPH,
                    "sha256": sha[GRAPH],
                    "opset": OPSET,
                    "parity_max_abs": graphs[GRAPH][1],
                }
            }
            if onnx
            else {}
        ),
        **(extra or {}),
    }
    atomic_write_json(out / CARD, card)
    return {WEIGHTS: out / WEIGHTS, CARD: out / CARD, **{name: out / name for name in graphs}}


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


def write_artifacts(
    out: Path, vit: ViT, fe: FrontendConfig, cfg, history: list, mels: np.ndarray, pool: str = DEFAULT_POOL
) -> dict:
    """Everything a finished (or budget-stopped) run leaves besides its checkpoint."""
    weights = {"frontend": fe.to_json(), "vit": vit.cfg.to_json(), "state": vit.state_dict(), "pool": pool}
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


RUN_KEYS = ("objective", "mask_ratio", "norm_pix", "steps", "windows", "splits")  # kept by a re-export


def reexport(folder: str | Path, pool: str | None = None, onnx: bool = True) -> dict:
    """Write a model folder's graphs and card again from its ``encoder.pt`` (`birdkit ssl export`): with another
    pooling, or to add the TFLite graph to a model made before it existed. Returns the new card."""
    folder = Path(folder)
    card = read_card(folder)
    if not (folder / WEIGHTS).is_file():
        raise SSLModelError(f"{folder / WEIGHTS}: missing; the weights are what the graphs are rebuilt from")
    weights = load_weights(folder / WEIGHTS)
    weights["pool"] = check_pool(pool if pool is not None else weights.get("pool"))
    write_encoder(folder, weights, {k: card[k] for k in RUN_KEYS if k in card}, onnx=onnx)
    return read_card(folder)
