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
from birdkit.encoders.base import Capabilities, EncoderOutputs, check_chunks
from birdkit.encoders.classes import read_label_file
from birdkit.errors import OptionError

DEFAULT_BATCH = 16


class TFLiteEncoder:
    """Encoder over a compiled TFLite graph with outputs named ``embedding`` and ``logits`` (or ``label``)."""

    name = "perch"
    sample_rate = 32_000  # the class default (Perch); an instance takes its sidecar's
    capabilities = Capabilities(cost=1.0)  # compiled Perch v1: ~1.2 s per 4-min soundscape (paper)

    def __init__(
        self,
        model_path: str | Path | None = None,
        batch_size: int = DEFAULT_BATCH,
        num_threads: int = 1,
        labels: str | Path | None = None,
        embedding_name: str | None = None,
        logits_name: str | None = None,
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
        self._emb_name = embedding_name or roles["embedding"]
        self._logits_name = logits_name or roles.get("logits")
        for flag, out in (("--embedding", self._emb_name), ("--logits", self._logits_name)):
            if out is not None and out not in self.card["outputs"]:
                raise OptionError(
                    f"{flag} {out}: {self.model_path.name} has outputs {', '.join(self.card['outputs'])}"
                )
        self.embedding_dim = int(self.card["outputs"][self._emb_name][-1])
        n_classes = int(self.card["outputs"][self._logits_name][-1]) if self._logits_name else 0
        if labels is not None:
            self.classes = read_label_file(labels, n_classes)
        else:
            self.classes = list(self.card.get("classes") or [f"class_{i}" for i in range(n_classes)])
        self.labels = Path(labels) if labels is not None else None
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
    def export_files(cls, model_path: str | Path | None = None, **options: Any) -> dict[str, Path | dict]:
        """The compiled graph and its sidecar card (with the classes of ``labels`` when given)."""
        if model_path is None:
            return {}
        p = Path(model_path)
        side = p.with_suffix(".json")
        names = {r: options.get(f"{r}_name") for r in ("embedding", "logits") if options.get(f"{r}_name")}
        if not (options.get("labels") or names) or not side.is_file():
            return {p.name: p, side.name: side}
        card = json.loads(side.read_text())
        card["roles"] = {**card["roles"], **names}  # the outputs the heads' stores were made from
        if options.get("labels"):
            n = int(card["outputs"][card["roles"]["logits"]][-1]) if card["roles"].get("logits") else None
            card["classes"] = read_label_file(options["labels"], n)
        return {p.name: p, side.name: card}

    def _interpreter(self, num_threads: int):
        if not self.card.get("select_tf_ops"):
            return runtime.make_interpreter(self.model_path, num_threads=num_threads)
        try:
            import tensorflow as tf

            interp = tf.lite.Interpreter(model_path=str(self.model_path), num_threads=num_threads)
            inp = interp.get_input_details()[0]
            interp.resize_tensor_input(inp["index"], [1, self.n_samples])
            runtime.allocate(interp)
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
            "options": {
                "model_path": str(self.model_path.resolve()),
                "labels": str(self.labels) if self.labels else None,
                "embedding_name": self._emb_name,
                "logits_name": self._logits_name,
            },
        }

    def embed(self, chunks: np.ndarray) -> EncoderOutputs:
        """[n, window samples] float32 -> (embeddings [n, D], logits [n, len(classes)])."""
        chunks = check_chunks(chunks, self.n_samples, self.model_path.name)
        outs = self._runner.run(chunks)
        return EncoderOutputs(
            outs[0], outs[1] if self._logits_name else np.zeros((len(chunks), 0), np.float32)
        )
