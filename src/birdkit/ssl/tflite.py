"""The encoder as a TFLite graph, rebuilt in TensorFlow from the torch weights (waveform -> embedding).

Why not litert-torch: it converts this ViT (max |diff| 1.4e-6 measured), but needs jax/jaxlib, litert-converter,
torchao and ai-edge-quantizer (~700 MB) that pip cannot resolve beside the kit's pins; TensorFlow is already the
kit's converter. The price is this second forward pass, kept honest by the parity check in
:func:`birdkit.ssl.artifacts.write_encoder` (every export is compared with torch and refused beyond 1e-4).

Layout: TensorFlow works time-major, [batch, frames, bins]; the patch embedding is a strided convolution over
[batch, mels, frames, 1] whose kernel is the torch ``nn.Linear`` weight reshaped, so tokens come out in torch's
frequency-major order and every later op is the same matmul.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from birdkit.ssl.frontend import CHUNK_SAMPLES, FrontendConfig, dft_basis
from birdkit.ssl.mel import mel_filters
from birdkit.ssl.model import ViTConfig
from birdkit.ssl.pooling import check_pool

INPUT, OUTPUT = "audio", "embedding"
LN_EPS = 1e-5  # torch nn.LayerNorm's default


def _tf() -> Any:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter
    import tensorflow as tf

    return tf


def _numpy_state(state: dict) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().astype(np.float32) for k, v in state.items()}


def encoder_module(weights: dict) -> Any:
    """A ``tf.Module`` whose ``serve`` maps audio [B, 160000] -> embedding [B, D], the torch encoder's numbers."""
    tf = _tf()
    fe = FrontendConfig(**weights["frontend"])
    cfg = ViTConfig(**weights["vit"])
    pool = check_pool(weights.get("pool"))
    s = _numpy_state(weights["state"])
    pf, pt = cfg.patch_shape
    nf, nt = fe.n_mels // pf, fe.frames // pt
    dh = cfg.dim // cfg.heads
    const = {k: tf.constant(v) for k, v in s.items()}
    patch_kernel = tf.constant(s["embed.weight"].T.reshape(pf, pt, 1, cfg.dim))
    dft = tf.constant(dft_basis(fe).T[:, None, :].copy())  # conv1d kernel [n_fft, 1, 2 * bins]
    mel = tf.constant(mel_filters(fe.sample_rate, fe.n_fft, fe.n_mels, fe.fmin, fe.fmax).T.copy())
    bins = fe.n_fft // 2 + 1

    def linear(x: Any, name: str) -> Any:
        return tf.matmul(x, const[f"{name}.weight"], transpose_b=True) + const[f"{name}.bias"]

    def layer_norm(x: Any, name: str) -> Any:
        mu = tf.reduce_mean(x, axis=-1, keepdims=True)
        var = tf.reduce_mean(tf.square(x - mu), axis=-1, keepdims=True)
        return (x - mu) * tf.math.rsqrt(var + LN_EPS) * const[f"{name}.weight"] + const[f"{name}.bias"]

    def heads(x: Any) -> Any:  # [B, n, dim] -> [B, heads, n, dh]
        return tf.transpose(tf.reshape(x, [-1, nf * nt + 1, cfg.heads, dh]), [0, 2, 1, 3])

    def block(x: Any, i: int) -> Any:
        p = f"blocks.{i}"
        q, k, v = tf.split(linear(layer_norm(x, f"{p}.norm1"), f"{p}.attn.qkv"), 3, axis=-1)
        attn = tf.nn.softmax(tf.matmul(heads(q), heads(k), transpose_b=True) * dh**-0.5, axis=-1)
        out = tf.reshape(tf.transpose(tf.matmul(attn, heads(v)), [0, 2, 1, 3]), [-1, nf * nt + 1, cfg.dim])
        x = x + linear(out, f"{p}.attn.proj")
        h = tf.nn.gelu(linear(layer_norm(x, f"{p}.norm2"), f"{p}.mlp.0"), approximate=False)
        return x + linear(h, f"{p}.mlp.2")

    def forward(wave: Any) -> Any:
        spec = tf.nn.conv1d(wave[:, :, None], dft, stride=fe.hop, padding="VALID")[:, : fe.frames]
        power = tf.square(spec[..., :bins]) + tf.square(spec[..., bins:])  # [B, frames, bins]
        logmel = (tf.math.log(tf.matmul(power, mel) + 1e-6) - fe.mean) / fe.std  # [B, frames, mels]
        image = tf.transpose(logmel, [0, 2, 1])[..., None]  # [B, mels, frames, 1]
        tokens = tf.nn.conv2d(image, patch_kernel, strides=[1, pf, pt, 1], padding="VALID")
        x = tf.reshape(tokens + const["embed.bias"], [-1, nf * nt, cfg.dim]) + const["pos"]
        x = tf.concat([tf.tile(const["cls"], [tf.shape(x)[0], 1, 1]), x], axis=1)
        for i in range(cfg.depth):
            x = block(x, i)
        return _pooled(tf, layer_norm(x, "norm"), pool, nf, nt, cfg.dim)

    class Encoder(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, CHUNK_SAMPLES], tf.float32, name=INPUT)])
        def serve(self, wave: Any) -> dict:
            return {OUTPUT: forward(wave)}

    return Encoder()


def _pooled(tf: Any, x: Any, kind: str, nf: int, nt: int, dim: int) -> Any:
    """The same pooling as :func:`birdkit.ssl.model.pooled`, on [B, 1 + nf*nt, dim] tokens."""
    patches = x[:, 1:]
    if kind == "cls+mean":
        return tf.concat([x[:, 0], tf.reduce_mean(patches, axis=1)], axis=-1)
    if kind == "mean":
        return tf.reduce_mean(patches, axis=1)
    # "band": the mean over time of each frequency row, rows concatenated
    return tf.reshape(tf.reduce_mean(tf.reshape(patches, [-1, nf, nt, dim]), axis=2), [-1, nf * dim])


def to_tflite(weights: dict) -> bytes:
    """The encoder as a float32 TFLite flatbuffer (signature ``serving_default``: ``audio`` -> ``embedding``)."""
    tf = _tf()
    module = encoder_module(weights)
    conv = tf.lite.TFLiteConverter.from_concrete_functions([module.serve.get_concrete_function()], module)
    return conv.convert()
