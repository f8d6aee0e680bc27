"""A compiled encoder (`birdkit compile`): one 5 s chunk at its own rate -> embedding and logits, via TFLite.

This is the Perch path: Perch's SavedModel compiled to ``NAME.tflite`` with its sidecar ``NAME.json`` (input
length, sample rate, output names, classes, whether Flex ops are needed). One interpreter lives as long as the
encoder, resized once to a fixed batch; batches are zero-padded to it (resizing is what makes invokes slow).

Graphs converted with SELECT_TF_OPS need the Flex delegate, which only ``tf.lite.Interpreter`` in TensorFlow
builds that link it provides (Kaggle's image does; tensorflow-cpu 2.21 and ai_edge_litert here do not): such a
graph is loaded with TensorFlow's interpreter, and a clear error says so when it cannot run.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from birdkit import runtime
from birdkit.encoders.base import Capabilities, EncoderOutputs

DEFAULT_BATCH = 16


class TFLiteEncoder:
    """Encoder over a compiled TFLite graph with outputs named ``embedding`` and ``logits`` (or ``label``)."""

    name = "perch"
    sample_rate = 32_000  # the class default (Perch); an instance takes its sidecar's
    capabilities = Capabilities()

    def __init__(
        self, model_path: str | Path | None = None, batch_size: int = DEFAULT_BATCH, num_threads: int = 1
    ) -> None:
        if model_path is None:
            raise FileNotFoundError(
                "a compiled encoder needs model_path=NAME.tflite: compile one with "
                "`birdkit compile SAVED_MODEL --out NAME.tflite`"
            )
        self.model_path = Path(model_path)
        card_path = self.model_path.with_suffix(".json")
        if not self.model_path.is_file() or not card_path.is_file():
            raise FileNotFoundError(
                f"{self.model_path}: compiled encoder or its card {card_path.name} missing; "
                "run `birdkit compile` again"
            )
        self.card = json.loads(card_path.read_text())
        self.name = str(self.card.get("name") or self.model_path.stem)
        self.version = str(self.card.get("sha256", ""))[:12]
        self.sample_rate = int(self.card["sample_rate"])
        self.batch_size = batch_size
        roles = self.card["roles"]
        self._emb_name, self._logits_name = roles["embedding"], roles.get("logits")
        self.embedding_dim = int(self.card["outputs"][self._emb_name][-1])
        n_classes = int(self.card["outputs"][self._logits_name][-1]) if self._logits_name else 0
        self.classes = list(self.card.get("classes") or [f"class_{i}" for i in range(n_classes)])
        self.n_samples = int(self.card["input"]["shape"][-1])
        outputs = [self._emb_name, *([self._logits_name] if self._logits_name else [])]
        self._runner = runtime.FixedBatchRunner(
            self._interpreter(num_threads),
            batch_size,
            outputs=outputs,
            signature=self.card.get("signature", "serving_default"),
            input_shape=(self.n_samples,),
        )

    @classmethod
    def export_files(cls, model_path: str | Path | None = None, **options: Any) -> dict[str, Path]:
        """The compiled graph and its sidecar card."""
        if model_path is None:
            return {}
        p = Path(model_path)
        return {p.name: p, p.with_suffix(".json").name: p.with_suffix(".json")}

    def _interpreter(self, num_threads: int):
        if not self.card.get("select_tf_ops"):
            return runtime.make_interpreter(self.model_path, num_threads=num_threads)
        try:
            import tensorflow as tf

            interp = tf.lite.Interpreter(model_path=str(self.model_path), num_threads=num_threads)
            inp = interp.get_input_details()[0]
            interp.resize_tensor_input(inp["index"], [1, self.n_samples])
            interp.allocate_tensors()
            interp.set_tensor(inp["index"], np.zeros((1, self.n_samples), np.float32))
            interp.invoke()  # Flex kernels fail only when prepared: find out now, not mid-inference
            return interp
        except (ImportError, RuntimeError, ValueError) as exc:
            raise RuntimeError(
                f"{self.model_path}: uses TensorFlow select ops {self.card.get('flex_ops')}, which need "
                "tf.lite.Interpreter with the Flex delegate (TensorFlow builds that link it, e.g. Kaggle's); "
                f"this environment cannot run it ({str(exc).splitlines()[0][:160]}). Recompile with "
                "`--select-tf-ops never` if the model allows it."
            ) from exc

    def describe(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "runtime": runtime.runtime_name() if not self.card.get("select_tf_ops") else "tensorflow (flex)",
            "quantize": self.card.get("quantize"),
            "path": "compiled",
        }

    def embed(self, chunks: np.ndarray) -> EncoderOutputs:
        """[n, window samples] float32 -> (embeddings [n, D], logits [n, len(classes)])."""
        chunks = np.asarray(chunks, dtype=np.float32)
        if chunks.ndim != 2 or chunks.shape[1] != self.n_samples:
            raise ValueError(
                f"{self.model_path.name}: expects chunks [n, {self.n_samples}], got {list(chunks.shape)}"
            )
        outs = self._runner.run(chunks)
        return EncoderOutputs(
            outs[0], outs[1] if self._logits_name else np.zeros((len(chunks), 0), np.float32)
        )
