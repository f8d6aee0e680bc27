"""A Perch-shaped stand-in encoder, for tests and the compile benchmark (Perch itself cannot be downloaded here).

``build_standin_encoder`` writes a SavedModel with Perch's contract and fixed random weights; the same
conversion path runs on it as on Perch: an STFT front end (RFFT), a log-mel projection, strided convolutions,
global pooling and two dense layers.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from birdkit.package.compile import import_tf


@dataclass(frozen=True)
class StandInSpec:
    """Shape of the stand-in encoder: Perch's signature (5 s at 32 kHz in; embedding and logits out), small."""

    sample_rate: int = 32_000
    window_s: float = 5.0
    frame: int = 320  # 10 ms frames, no overlap: [B, 500, 320]
    fft: int = 512
    mels: int = 64
    channels: tuple[int, ...] = (16, 32, 64)
    embedding_dim: int = 128
    n_classes: int = 64
    seed: int = 0
    # add one op that has no TFLite builtin (bicubic resize), to exercise SELECT_TF_OPS
    select_op: bool = False


def build_standin_encoder(out: str | Path, spec: StandInSpec = StandInSpec()) -> Path:
    """Write a SavedModel with Perch's contract (``serving_default`` and ``infer_tf``: ``inputs`` [B, 160000]
    float32 -> ``embedding`` [B, E], ``logits`` [B, C]) with fixed random weights."""
    tf = import_tf()
    out = Path(out)
    rng = np.random.default_rng(spec.seed)
    n_samples = int(spec.window_s * spec.sample_rate)
    if n_samples % spec.frame:
        raise ValueError(f"window of {n_samples} samples is not a whole number of {spec.frame}-sample frames")
    bins = spec.fft // 2 + 1

    def he(*shape: int, fan_in: int) -> np.ndarray:
        return (rng.normal(size=shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)

    class StandIn(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.window = tf.constant(np.hanning(spec.frame).astype(np.float32))
            self.mel = tf.Variable(np.abs(rng.normal(size=(bins, spec.mels))).astype(np.float32) / bins)
            chans = (1, *spec.channels)
            self.kernels = [
                tf.Variable(he(3, 3, chans[i], chans[i + 1], fan_in=9 * chans[i]))
                for i in range(len(spec.channels))
            ]
            self.w_emb = tf.Variable(he(chans[-1], spec.embedding_dim, fan_in=chans[-1]))
            self.b_emb = tf.Variable(np.zeros(spec.embedding_dim, np.float32))
            self.w_out = tf.Variable(he(spec.embedding_dim, spec.n_classes, fan_in=spec.embedding_dim))
            self.b_out = tf.Variable(np.full(spec.n_classes, -2.0, np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, n_samples], tf.float32, name="inputs")])
        def infer_tf(self, inputs: Any) -> dict:
            n = tf.shape(inputs)[0]
            frames = tf.reshape(inputs, [n, n_samples // spec.frame, spec.frame]) * self.window
            power = tf.abs(tf.signal.rfft(frames, fft_length=[spec.fft]))
            x = tf.math.log(tf.matmul(power, self.mel) + 1e-3)[..., None]
            if spec.select_op:
                x = tf.image.resize(x, [n_samples // spec.frame, spec.mels], method="bicubic")
            for k in self.kernels:
                x = tf.nn.relu(tf.nn.conv2d(x, k, strides=2, padding="SAME"))
            pooled = tf.reduce_mean(x, axis=[1, 2])
            emb = tf.matmul(pooled, self.w_emb) + self.b_emb
            return {"embedding": emb, "logits": tf.matmul(tf.nn.relu(emb), self.w_out) + self.b_out}

    model = StandIn()
    sig = model.infer_tf.get_concrete_function()
    tf.saved_model.save(model, str(out), signatures={"serving_default": sig, "infer_tf": sig})
    return out


@dataclass(frozen=True)
class Perch2Spec:
    """Perch 2.0's ONNX contract at a tiny cost: ``inputs`` [B, 160000] -> ``embedding`` [B, 1536],
    ``spatial_embedding`` [B, 16, 4, 1536], ``spectrogram`` [B, 500, 128], ``label`` [B, n_classes]."""

    n_samples: int = 160_000
    frames: int = 500
    mels: int = 128
    grid: tuple[int, int] = (16, 4)
    embedding_dim: int = 1536
    n_classes: int = 64  # the real one has 14,795; the label file written beside it matches this
    seed: int = 0


def _perch2_module(spec: Perch2Spec) -> Any:
    import torch
    from torch import nn

    class Perch2StandIn(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(spec.seed)
            frame = spec.n_samples // spec.frames
            self.frame = frame
            self.mel = nn.Linear(frame, spec.mels)
            self.proj = nn.Linear(spec.mels, spec.embedding_dim)
            self.out = nn.Linear(spec.embedding_dim, spec.n_classes)
            # a classifier that rarely fires, as on real audio: most windows hear nothing
            with torch.no_grad():
                self.out.weight.mul_(4.0)
                self.out.bias.fill_(-3.0)

        def forward(self, inputs: Any) -> tuple[Any, Any, Any, Any]:
            b = inputs.shape[0]
            spectrogram = torch.log(torch.abs(self.mel(inputs.reshape(b, spec.frames, self.frame))) + 1e-3)
            (gh, gw), fh, fw = spec.grid, spec.frames // spec.grid[0], spec.mels // spec.grid[1]
            cells = spectrogram[:, : gh * fh, : gw * fw].reshape(b, gh, fh, gw, fw)
            grid = cells.mean(dim=(2, 4))  # [B, 16, 4]
            spatial = torch.relu(self.proj(spectrogram.mean(dim=1)))[:, None, None, :] * grid[..., None]
            embedding = torch.nn.functional.layer_norm(spatial.mean(dim=(1, 2)), (spec.embedding_dim,))
            return embedding, spatial, spectrogram, self.out(embedding)

    return Perch2StandIn().eval()


def write_label_file(path: Path, classes: list[str], header: str = "ebird2021") -> Path:
    """A Perch-style label file: a header, then one class per logit column, in column order."""
    path.write_text("\n".join([header, *classes]) + "\n")
    return path


def build_perch2_onnx(out: str | Path, spec: Perch2Spec = Perch2Spec()) -> Path:
    """Write ``out`` (.onnx) with Perch 2.0's input and output names and shapes, fixed random weights, and a
    dynamic batch axis."""
    import torch

    out = Path(out)
    module = _perch2_module(spec)
    names = ["embedding", "spatial_embedding", "spectrogram", "label"]
    with warnings.catch_warnings():  # the TorchScript exporter is deprecated; it needs no onnxscript here
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.zeros(2, spec.n_samples),),
            str(out),
            input_names=["inputs"],
            output_names=names,
            dynamic_axes={"inputs": {0: "batch"}, **{n: {0: "batch"} for n in names}},
            dynamo=False,
        )
    return out
