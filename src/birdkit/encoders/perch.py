"""Perch, v1 or 2.0, from the file the user supplies: the backend follows the file.

``NAME.onnx``      onnxruntime (:mod:`.onnx`): Perch 2.0's community ONNX exports (input ``[B, 160000]``; outputs
                   ``embedding`` 1536, ``spatial_embedding`` 16x4x1536, ``spectrogram`` 500x128, ``label`` 14,795).
``NAME.tflite``    a graph compiled by ``birdkit compile`` with its ``NAME.json`` sidecar (:mod:`.tflite`): Perch
                   v1's SavedModel (1280-d embedding, ~10,932 logits), as the paper ran it.
a folder           a TensorFlow SavedModel: compile it first (``birdkit compile``); it is never run uncompiled,
                   which costs the paper's 9.4 s instead of 1.2 s per soundscape.

No weights are downloaded: the model and its label file are the user's (``--model``, ``--labels``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from birdkit.encoders.base import Capabilities, EncoderOutputs
from birdkit.errors import OptionError

MODEL_SUFFIXES = (".onnx", ".tflite")


def backend_class(model_path: str | Path | None) -> type:
    """The encoder class that runs ``model_path``, by what the file is."""
    if model_path is None:
        raise OptionError(
            "--encoder perch needs --model PATH: a Perch 2.0 .onnx export, or a .tflite compiled from Perch's "
            "SavedModel with `birdkit compile SAVED_MODEL --out perch.tflite`"
        )
    p = Path(model_path)
    if p.is_dir():
        hint = "saved_model.pb is there" if (p / "saved_model.pb").exists() else "it holds no saved_model.pb"
        raise OptionError(
            f"--model {p}: a folder ({hint}); compile a SavedModel first with "
            f"`birdkit compile {p} --out {p.name}.tflite` and pass --model {p.name}.tflite"
        )
    if not p.is_file():
        raise OptionError(f"--model {p}: no such file")
    if p.suffix == ".onnx":
        from birdkit.encoders.onnx import ONNXEncoder

        return ONNXEncoder
    if p.suffix == ".tflite":
        from birdkit.encoders.tflite import TFLiteEncoder

        return TFLiteEncoder
    raise OptionError(f"--model {p}: expected one of {', '.join(MODEL_SUFFIXES)} or a SavedModel folder")


class Perch:
    """Perch on the backend its file needs; the encoder contract, delegated."""

    name = "perch"
    sample_rate = 32_000
    # Perch v1 compiled: ~1.2 s per 4-min soundscape in the paper, BirdNET-like; Perch 2.0 is a larger network
    capabilities = Capabilities(cost=2.0)

    def __init__(
        self,
        model_path: str | Path | None = None,
        batch_size: int = 16,
        num_threads: int = 1,
        labels: str | Path | None = None,
        embedding_name: str | None = None,
        logits_name: str | None = None,
        input_name: str | None = None,
    ) -> None:
        cls = backend_class(model_path)
        opts: dict[str, Any] = dict(labels=labels, embedding_name=embedding_name, logits_name=logits_name)
        if cls.__name__ == "ONNXEncoder":
            opts["input_name"] = input_name
        elif input_name is not None:
            raise OptionError("--input applies to .onnx models; a compiled .tflite graph has one input")
        self.backend = cls(model_path, batch_size=batch_size, num_threads=num_threads, **opts)
        # an ONNX file is "perch" to heads and exports; a compiled graph keeps the name it was compiled under
        self.name = "perch" if cls.__name__ == "ONNXEncoder" else self.backend.name
        self.version = self.backend.version
        self.sample_rate = self.backend.sample_rate
        self.embedding_dim = self.backend.embedding_dim
        self.classes = self.backend.classes

    @classmethod
    def export_files(cls, model_path: str | Path | None = None, **options: Any) -> dict[str, Path | dict]:
        return backend_class(model_path).export_files(model_path=model_path, **options) if model_path else {}

    def describe(self) -> dict:
        return {**self.backend.describe(), "name": self.name}

    def embed(self, chunks: np.ndarray) -> EncoderOutputs:
        return self.backend.embed(chunks)
