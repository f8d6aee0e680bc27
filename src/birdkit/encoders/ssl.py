"""Our own self-supervised encoder (`birdkit ssl pretrain`): 5 s at 32 kHz -> a ViT embedding, no logits.

``model_path`` is the pretraining folder (or one of its files: ``encoder.json``, ``.tflite``, ``.onnx``, ``.pt``).
The TFLite graph runs on the kit's TFLite runtime (what the notebook uses: neither torch nor onnxruntime is needed
there); ``runtime="onnx"`` runs the ONNX graph on onnxruntime and ``runtime="torch"`` the weights, to the same
numbers within the parity the export checked.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from birdkit.encoders.base import Capabilities, EncoderOutputs
from birdkit.errors import OptionError

SAMPLE_RATE = 32_000
TFLITE, GRAPH, WEIGHTS, CARD = "encoder.tflite", "encoder.onnx", "encoder.pt", "encoder.json"
DEFAULT_MODEL = Path("models/ssl")
RUNTIMES = {"tflite": TFLITE, "onnx": GRAPH, "torch": WEIGHTS}  # runtime -> the file it runs


def model_folder(model_path: str | Path | None) -> Path:
    """The folder holding encoder.json (and the graph and weights), from a folder or one of its files."""
    p = Path(model_path) if model_path else DEFAULT_MODEL
    folder = p if p.is_dir() else p.parent
    if not (folder / CARD).is_file():
        raise OptionError(
            f"{p}: no SSL encoder here ({CARD} missing); make one with "
            f"`birdkit ssl pretrain DATA --out {p}` and pass --model {p}"
        )
    return folder


class SSLEncoder:
    """The pretrained ViT's pooled embedding (see :mod:`birdkit.ssl.model`) of each 5 s chunk."""

    name = "ssl"
    sample_rate = SAMPLE_RATE
    own_graph = True  # its encoder.tflite comes from `birdkit ssl export`, not `birdkit compile`: export ships it as is
    capabilities = Capabilities(
        fastest_options={"runtime": "tflite"},
        # what an exported model folder can run (`birdkit profile` rows): only the TFLite graph is shipped
        variants=(("tflite", {"runtime": "tflite"}),),
        cost=0.3,  # `small` + a head, TFLite: 0.40 CPU-s per 4 min against BirdNET fast's 1.35 (RESULTS.md)
        logits=False,
    )

    def __init__(
        self,
        model_path: str | Path | None = None,
        runtime: str = "tflite",
        batch_size: int = 16,
        num_threads: int = 1,
    ) -> None:
        if runtime not in RUNTIMES:
            raise OptionError(f"ssl runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
        self.folder = model_folder(model_path)
        self.card = json.loads((self.folder / CARD).read_text())
        self.runtime, self.batch_size = runtime, max(1, int(batch_size))
        self.version = str(self.card["version"])
        self.embedding_dim = int(self.card["embedding_dim"])
        self.classes: list[str] = []
        graph = self.folder / RUNTIMES[runtime]
        if not graph.is_file():
            raise OptionError(
                f"{graph}: missing (a model from before the {runtime} export); write it with "
                f"`birdkit ssl export {self.folder}`"
            )
        if runtime == "tflite":
            from birdkit.runtime.interpreter import FixedBatchRunner

            self._runner = FixedBatchRunner(
                graph, self.batch_size, signature="serving_default", num_threads=num_threads
            )
        elif runtime == "onnx":
            from birdkit.runtime.onnx import OnnxRunner

            self._runner = OnnxRunner(graph, self.batch_size, ["embedding"], "audio", num_threads)
        else:
            import torch

            from birdkit.ssl.artifacts import build_encoder, load_weights

            torch.set_num_threads(int(num_threads))
            self._module = build_encoder(load_weights(graph))

    @classmethod
    def export_files(cls, model_path: str | Path | None = None, **options: Any) -> dict[str, Path]:
        folder = model_folder(model_path)
        # not the ONNX graph: it would make the export carry the onnxruntime wheel the notebook does not need
        return {TFLITE: folder / TFLITE, CARD: folder / CARD}

    def describe(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "objective": self.card.get("objective"),
            "pool": self.card.get("pool", "cls+mean"),
            "vit": self.card.get("vit", {}).get("size"),
            "embedding_dim": self.embedding_dim,
            "path": self.runtime,
            # what rebuilds it (recorded in stores and cards): the card, a file, so `birdkit export` ships this
            # model's files without being told where they are
            "options": {"model_path": str((self.folder / CARD).resolve())},
        }

    def _torch(self, x: np.ndarray) -> np.ndarray:
        import torch

        with torch.no_grad():
            return self._module(torch.from_numpy(x)).numpy()

    def embed(self, chunks: np.ndarray) -> EncoderOutputs:
        x = np.ascontiguousarray(chunks, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != 5 * SAMPLE_RATE:
            raise ValueError(f"ssl expects chunks [n, {5 * SAMPLE_RATE}], got {list(x.shape)}")
        if self.runtime != "torch":
            return EncoderOutputs(self._runner.run(x)[0], None)
        rows = [self._torch(x[i : i + self.batch_size]) for i in range(0, len(x), self.batch_size)]
        return EncoderOutputs(np.concatenate(rows) if rows else np.zeros((0, self.embedding_dim), np.float32))
