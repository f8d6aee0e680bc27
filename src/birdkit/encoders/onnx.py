"""An encoder in an ONNX file (Perch 2.0's community exports, or any model with the same shape), on onnxruntime.

The graph takes float32 audio ``[B, samples]`` (5 s at ``sample_rate``) and gives an embedding output and,
optionally, a logits output. Names default to the known releases' (input: the graph's only input; embedding:
an output called ``embedding``; logits: one called ``label`` or ``logits``); any other file works with
``input_name``, ``embedding_name`` and ``logits_name`` (``--input``, ``--embedding``, ``--logits``). The logit
columns are named by a label file (``labels``, ``--labels``), read in file order (:mod:`.classes`).

Next to an exported ``NAME.onnx`` the export writes ``NAME.json`` (the tensor names, the sample rate, the label
file's name beside it): the encoder reads it when it is there, so the Kaggle side needs only the model path.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np

from birdkit.encoders.base import Capabilities, EncoderOutputs, check_chunks
from birdkit.encoders.classes import output_roles, read_label_file
from birdkit.errors import OptionError
from birdkit.runtime.onnx import OnnxRunner, onnx_runtime_name

DEFAULT_BATCH = 16
DEFAULT_RATE = 32_000
WINDOW_S = 5
SIDECAR_KIND = "onnx-encoder"


def file_digest(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def read_sidecar(model_path: Path) -> dict[str, Any]:
    """The export's ``NAME.json`` beside ``NAME.onnx``, or {} (a user's own file has none)."""
    side = model_path.with_suffix(".json")
    if not side.is_file():
        return {}
    data = json.loads(side.read_text())
    return data if data.get("kind") == SIDECAR_KIND else {}


class ONNXEncoder:
    """``chunks [n, samples] -> EncoderOutputs`` through one onnxruntime session per encoder."""

    name = "onnx"
    sample_rate = DEFAULT_RATE  # the class default; an instance takes its option or sidecar
    capabilities = Capabilities(cost=2.0)  # a Perch 2.0-sized graph unless measured otherwise

    def __init__(
        self,
        model_path: str | Path | None = None,
        labels: str | Path | None = None,
        input_name: str | None = None,
        embedding_name: str | None = None,
        logits_name: str | None = None,
        sample_rate: int | None = None,
        batch_size: int = DEFAULT_BATCH,
        num_threads: int = 1,
    ) -> None:
        if model_path is None:
            raise OptionError("an ONNX encoder needs --model PATH.onnx (the user supplies the file)")
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise OptionError(f"--model {self.model_path}: no such file")
        side = read_sidecar(self.model_path)
        if labels is None and side.get("labels"):
            labels = self.model_path.parent / side["labels"]
        input_name = input_name or side.get("input_name")
        self.sample_rate = int(sample_rate or side.get("sample_rate") or DEFAULT_RATE)
        probe = OnnxRunner(self.model_path, batch_size, input_name=input_name, num_threads=num_threads)
        names = [o.name for o in probe.session.get_outputs()]
        roles = output_roles(names)
        self.embedding_name = embedding_name or side.get("embedding_name") or roles.get("embedding")
        self.logits_name = logits_name or side.get("logits_name") or roles.get("logits")
        if self.embedding_name is None:
            raise OptionError(
                f"--model {self.model_path}: no output called 'embedding'; it has {', '.join(names)}. "
                "Name the embedding output with --embedding NAME"
            )
        outputs = [self.embedding_name, *([self.logits_name] if self.logits_name else [])]
        self._runner = OnnxRunner(
            self.model_path, batch_size, outputs, input_name=probe.input_name, num_threads=num_threads
        )
        del probe
        self.input_name = self._runner.input_name
        shape = self._runner.input_shape
        self.n_samples = shape[-1] if shape and shape[-1] > 0 else WINDOW_S * self.sample_rate
        if len(shape) != 1:
            raise OptionError(
                f"--model {self.model_path}: input {self.input_name!r} has shape [B, {shape}]; an encoder takes "
                "audio [B, samples] (name another input with --input NAME)"
            )
        self.embedding_dim, n_classes = self._output_dims()
        self.labels = Path(labels) if labels is not None else None
        self.classes = (
            read_label_file(self.labels, n_classes)
            if self.labels is not None and n_classes
            else [f"class_{i}" for i in range(n_classes)]
        )
        self.version = file_digest(self.model_path)[:12]

    def _output_dims(self) -> tuple[int, int]:
        """Embedding width and class count from the declared shapes, else from one silent chunk."""
        dims = [int(np.prod(s[1:])) if all(d > 0 for d in s[1:]) else -1 for s in self._runner.output_shapes]
        if any(d < 0 for d in dims):
            outs = self._runner.run(np.zeros((1, self.n_samples), np.float32))
            dims = [int(np.prod(o.shape[1:])) for o in outs]
        return dims[0], (dims[1] if len(dims) > 1 else 0)

    def options(self) -> dict[str, Any]:
        """The constructor options that rebuild this encoder (recorded in stores and cards; `birdkit export`
        finds the model file there when it is not given)."""
        return {
            "model_path": str(self.model_path.resolve()),
            "labels": str(self.labels) if self.labels else None,
            "input_name": self.input_name,
            "embedding_name": self.embedding_name,
            "logits_name": self.logits_name,
            "sample_rate": self.sample_rate,
        }

    @classmethod
    def export_files(cls, model_path: str | Path | None = None, **options: Any) -> dict[str, Path | dict]:
        """The graph, its label file and the sidecar that names its tensors (written, not copied)."""
        if model_path is None:
            return {}
        p = Path(model_path)
        side = read_sidecar(p)
        labels = options.get("labels") or (p.parent / side["labels"] if side.get("labels") else None)
        options = {k: v for k, v in options.items() if k != "model_path"}
        sidecar = {
            "kind": SIDECAR_KIND,
            "format": 1,
            **{k: options.get(k) or side.get(k) for k in ("input_name", "embedding_name", "logits_name")},
            "sample_rate": int(options.get("sample_rate") or side.get("sample_rate") or DEFAULT_RATE),
            "labels": f"{p.stem}.labels.csv" if labels else None,
        }
        files: dict[str, Path | dict] = {p.name: p, f"{p.stem}.json": sidecar}
        if labels:
            files[f"{p.stem}.labels.csv"] = Path(labels)
        return files

    def describe(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "runtime": onnx_runtime_name(),
            "path": "onnx",
            "options": self.options(),
        }

    def embed(self, chunks: np.ndarray) -> EncoderOutputs:
        """[n, samples] float32 -> (embeddings [n, D], logits [n, len(classes)] or None)."""
        chunks = check_chunks(chunks, self.n_samples, self.model_path.name)
        outs = self._runner.run(chunks)
        emb = outs[0].reshape(len(chunks), -1)
        logits = outs[1].reshape(len(chunks), -1) if self.logits_name else None
        return EncoderOutputs(emb, logits)
