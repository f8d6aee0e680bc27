"""BirdNET V2.4's in-graph mel front end, recomputed outside the graph in numpy so only its CNN runs as TFLite.

Inside the graph about 70 % of BirdNET's time goes to the front end (GATHER framing, one RFFT2D per frame, a
FULLY_CONNECTED mel matmul), not to the network. Per 3 s window (``x``, 144000 samples at 48 kHz) it computes

    x' = ((x - min x) / (max(x - min x) + eps) - offset) * scale        per-window min/max normalisation
    for each of two branches (frame length N, hop h, window w, mel matrix M [96, N/2+1], exponent p):
        frames_t = x'[t h : t h + N] * w                                 t = 0 .. (144000 - N) // h
        mel      = Re(RFFT_N(frames)) @ M.T                              CAST complex64 -> float32 is Re()
        spec     = reverse_mels((mel ** 2) ** p).T                       [96, T]
    output = stack(branches, axis=-1)                                    [96, T, 2]

Every constant (eps/offset/scale, N, h, the window, M, p, the reversal and transposition) is read from the model
file by walking the graph backwards from the front end's output, op by op; an op that is not where it is
expected raises :class:`FrontEndMismatch`, and the encoder falls back to the full graph.

Precision. The graph rounds ``x'`` and ``frames`` to float32 like we do, then RFFT2D runs in float64 (TFLite's
kernel works in double). The FFT must stay in float64 here too: recordings resampled from 32 kHz hold almost
nothing near 15 kHz, the top of the second branch, so its top mel bands are ~1e-9, which ``(.)**(2p)`` with
p ~ 0.19 lifts to ~1e-4; a float32 FFT's rounding (~1e-6 of a frame's norm) turns them into ~1e-2 and moved
minicomp logits by 0.12. In float64 the spectrogram matches the graph to ~1e-5 and logits to < 1e-4.

No sharing across overlapping windows: the paper's windows start 96000 samples apart inside a chunk and chunks
240000 apart, and neither is a multiple of the hops (278 and 280 samples: 96000 = 345 * 278 + 90), so no frame of
one window is a frame of another; the per-window normalisation would also rescale them differently.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.lib.stride_tricks import as_strided

from birdkit import runtime

try:  # scipy's pocketfft may overwrite its input (no extra copy); numpy.fft, as fast in float64, is the fallback
    from scipy.fft import rfft as _rfft
except ImportError:  # pragma: no cover - scipy ships with scikit-learn
    _rfft = None


_BLAS: list = []


def _one_blas_thread() -> AbstractContextManager:
    """numpy's OpenBLAS on one thread for the mel matmuls: with its default two threads on the shared 2-core
    machine a [128, 309] x [309, 96] sgemm measured 8 ms instead of 0.2 ms. The controller is built once
    (0.9 ms); entering its limit costs ~0.01 ms."""
    if not _BLAS:
        try:
            from threadpoolctl import ThreadpoolController

            _BLAS.append(ThreadpoolController())
        except ImportError:  # pragma: no cover - threadpoolctl ships with scikit-learn
            _BLAS.append(None)
    return _BLAS[0].limit(limits=1, user_api="blas") if _BLAS[0] is not None else nullcontext()


class FrontEndMismatch(ValueError):
    """The graph's front end is not the one this module knows how to recompute."""


@dataclass(frozen=True)
class MelBranch:
    """One of the front end's mel spectrograms, with the constants read from the graph."""

    name: str
    frame_length: int
    frame_step: int
    window: np.ndarray  # float32 [frame_length]
    mel: np.ndarray  # float32 [n_mels, frame_length // 2 + 1], the graph's FULLY_CONNECTED weights
    exponent: float  # POW after squaring: spec = (mel**2) ** exponent
    reverse_mels: bool  # REVERSE_V2 on the mel axis (BirdNET puts high frequencies first)

    @property
    def n_mels(self) -> int:
        return int(self.mel.shape[0])

    @property
    def bins(self) -> tuple[int, int]:
        """[lo, hi) of the FFT bins the mel matrix uses: only those are read from the transform."""
        nz = np.flatnonzero(np.any(self.mel != 0, axis=0))
        return (int(nz[0]), int(nz[-1]) + 1) if nz.size else (0, 1)

    def describe(self) -> dict:
        lo, hi = self.bins
        return {
            "frame_length": self.frame_length,
            "frame_step": self.frame_step,
            "fft_bins_used": [lo, hi],
            "n_mels": self.n_mels,
            "exponent": round(self.exponent, 8),
        }


@dataclass(frozen=True)
class FrontEnd:
    """BirdNET's front end as numpy: [m, 144000] float32 windows -> [m, 96, T, 2] float32 spectrograms."""

    input_samples: int
    eps: float
    offset: float
    scale: float
    branches: tuple[MelBranch, ...]
    output_tensor: str  # the graph tensor this reproduces (the CNN's input after the cut)
    fft32: tuple[int, ...] = ()  # branches whose FFT runs in float32: opt-in, not the graph's numbers

    @property
    def n_frames(self) -> int:
        return (self.input_samples - self.branches[0].frame_length) // self.branches[0].frame_step + 1

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return (self.branches[0].n_mels, self.n_frames, len(self.branches))

    def describe(self) -> dict:
        return {
            "output_tensor": self.output_tensor,
            "normalisation": {"eps": self.eps, "offset": self.offset, "scale": self.scale},
            "branches": [b.describe() for b in self.branches],
            "fft": "float64"
            if not self.fft32
            else ["float32" if c in self.fft32 else "float64" for c in range(len(self.branches))],
        }

    @classmethod
    def from_model(cls, model: Any | bytes) -> FrontEnd:
        """Read the front end from a BirdNET graph (flatbuffer bytes or a ModelT); FrontEndMismatch if unknown."""
        m = runtime.read_model(model) if isinstance(model, bytes | bytearray) else model
        return _Reader(m).front_end()

    # ---- compute ----------------------------------------------------------------------------------------
    def normalise(self, x: np.ndarray) -> np.ndarray:
        """The graph's per-window min/max scaling, in float32 and in its op order (the FFT sees these roundings)."""
        x = np.asarray(x, dtype=np.float32)
        s = x - x.min(axis=-1, keepdims=True)
        d = s.max(axis=-1, keepdims=True) + np.float32(self.eps)
        return (s / d - np.float32(self.offset)) * np.float32(self.scale)

    def __call__(self, windows: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """[m, input_samples] -> [m, n_mels, T, n_branches]; ``out`` (e.g. an interpreter's input) is filled."""
        windows = np.asarray(windows, dtype=np.float32)
        if windows.ndim != 2 or windows.shape[1] != self.input_samples:
            raise ValueError(f"windows must be [m, {self.input_samples}], got {list(windows.shape)}")
        m = windows.shape[0]
        if out is None:
            out = np.empty((m, *self.output_shape), dtype=np.float32)
        work = _Work(self)
        with _one_blas_thread():
            for i in range(m):
                xn = self.normalise(windows[i])
                for c, br in enumerate(self.branches):
                    work.branch(xn, c, br, out[i, :, :, c])
        return out


BLOCK_FRAMES = 128  # frames transformed per FFT call: a 2 MB float64 block stays in cache (measured ~40 %
# faster than one call per window on the shared 2-core machine, where the front end is memory-bound)


class _Work:
    """Per-call buffers, reused across the windows and frame blocks of one call."""

    def __init__(self, fe: FrontEnd) -> None:
        self.t = fe.n_frames
        self.block = min(BLOCK_FRAMES, self.t)
        self.buf = [
            np.empty((self.block, b.frame_length), dtype=np.float32 if c in fe.fft32 else np.float64)
            for c, b in enumerate(fe.branches)
        ]
        self.mel = np.empty((self.t, fe.branches[0].n_mels), dtype=np.float32)
        self.mel_t = []
        for b in fe.branches:
            lo, hi = b.bins
            self.mel_t.append((lo, hi, np.ascontiguousarray(b.mel[:, lo:hi].T)))

    def branch(self, xn: np.ndarray, c: int, br: MelBranch, dst: np.ndarray) -> None:
        n, h = br.frame_length, br.frame_step
        lo, hi, mel_t = self.mel_t[c]
        buf, mel = self.buf[c], self.mel
        step = h * xn.strides[0]
        for s in range(0, self.t, self.block):
            k = min(self.block, self.t - s)
            frames = as_strided(xn[s * h :], shape=(k, n), strides=(step, xn.strides[0]), writeable=False)
            # frames * window in float32 (the graph's MUL rounds there), stored widened for the float64 FFT
            np.multiply(frames, br.window, out=buf[:k], dtype=np.float32, casting="unsafe")
            spec = _rfft(buf[:k], axis=-1, overwrite_x=True) if _rfft else np.fft.rfft(buf[:k], axis=-1)
            # CAST complex64 -> float32 keeps the real part; then the graph's mel FULLY_CONNECTED
            np.matmul(spec.real[:, lo:hi].astype(np.float32), mel_t, out=mel[s : s + k])
        np.multiply(mel, mel, out=mel)
        np.power(mel, np.float32(br.exponent), out=mel)
        dst[...] = (mel[:, ::-1] if br.reverse_mels else mel).T


# ---- reading the front end from the graph ------------------------------------------------------------------
class _Reader:
    """Walks the graph backwards from the front end's output, checking each op and reading its constants."""

    def __init__(self, model: Any) -> None:
        self.m = model
        self.sg = model.subgraphs[0]
        self.prod = runtime.producers(model)

    def name(self, t: int) -> str:
        return runtime.tensor_name(self.m, t)

    def op(self, t: int, *kinds: str) -> Any:
        k = self.prod.get(int(t))
        found = "no op (a constant or input)" if k is None else runtime.op_name(self.m, self.sg.operators[k])
        if k is None or found not in kinds:
            raise FrontEndMismatch(f"expected {'/'.join(kinds)} producing {self.name(t)!r}, found {found}")
        return self.sg.operators[k]

    def const(self, t: int, what: str) -> np.ndarray:
        v = runtime.constant_at(self.m, int(t))
        if v is None:
            raise FrontEndMismatch(f"{what}: {self.name(t)!r} is not a constant")
        return v

    def scalar(self, t: int, what: str) -> float:
        v = self.const(t, what)
        if v.size != 1:
            raise FrontEndMismatch(f"{what}: {self.name(t)!r} has shape {list(v.shape)}, expected a scalar")
        return float(v.reshape(()))

    def no_activation(self, op: Any) -> None:
        act = getattr(op.builtinOptions, "fusedActivationFunction", 0) if op.builtinOptions else 0
        if act:
            raise FrontEndMismatch(f"{runtime.op_name(self.m, op)} with a fused activation ({act})")

    def split_const(self, op: Any, what: str) -> tuple[int, np.ndarray]:
        """(the non-constant input, the constant input's value) of a binary op."""
        a, b = (int(x) for x in op.inputs[:2])
        va, vb = runtime.constant_at(self.m, a), runtime.constant_at(self.m, b)
        if (va is None) == (vb is None):
            raise FrontEndMismatch(f"{what}: expected one constant operand")
        return (b, va) if vb is None else (a, vb)

    def front_end(self) -> FrontEnd:
        concat, out_t = self.find_output()
        axis = concat.builtinOptions.axis
        if axis not in (3, -1):
            raise FrontEndMismatch(f"front end concatenates on axis {axis}, expected the channel axis")
        branches = []
        signals = set()
        for t in concat.inputs:
            br, sig, norm = self.branch(int(t))
            branches.append(br)
            signals.add(sig)
        if len(signals) != 1:
            raise FrontEndMismatch("the branches frame different signals")
        eps, offset, scale, n_in = norm
        frames = {(n_in - b.frame_length) // b.frame_step + 1 for b in branches}
        mels = {b.n_mels for b in branches}
        if len(frames) != 1 or len(mels) != 1:
            raise FrontEndMismatch(f"branches disagree on frames {frames} or mel bands {mels}")
        return FrontEnd(n_in, eps, offset, scale, tuple(branches), self.name(out_t))

    def find_output(self) -> tuple[Any, int]:
        """The CONCATENATION whose inputs are all mel branches: the first tensor past the front end."""
        errors = []
        for op in self.sg.operators:
            if runtime.op_name(self.m, op) != "CONCATENATION" or len(op.inputs) < 2:
                continue
            kinds = {runtime.op_name(self.m, self.sg.operators[self.prod[int(t)]]) if int(t) in self.prod else ""
                     for t in op.inputs}  # fmt: skip
            if kinds != {"EXPAND_DIMS"}:
                continue  # not a stack of [B, mel, T, 1] spectrograms (e.g. tf.signal.frame's shape concats)
            try:
                for t in op.inputs:
                    self.spectrum_chain(int(t))
            except FrontEndMismatch as exc:
                errors.append(f"{self.name(int(op.outputs[0]))}: {exc}")
                continue
            return op, int(op.outputs[0])
        raise FrontEndMismatch(
            "no concatenation of mel spectrograms found" + (f" ({'; '.join(errors)})" if errors else "")
        )

    def spectrum_chain(self, t: int) -> dict:
        """EXPAND_DIMS <- TRANSPOSE <- REVERSE_V2? <- POW <- MUL(x,x) <- RESHAPE <- FULLY_CONNECTED <- ... <- RFFT2D."""
        out: dict = {}
        ex = self.op(t, "EXPAND_DIMS")
        dim = int(self.const(ex.inputs[1], "expand_dims axis").reshape(-1)[0])
        if dim not in (3, -1):
            raise FrontEndMismatch(f"channel axis added at {dim}, expected the last")
        tr = self.op(ex.inputs[0], "TRANSPOSE")
        if self.const(tr.inputs[1], "transpose perm").tolist() != [0, 2, 1]:
            raise FrontEndMismatch("transpose is not [batch, time, mel] -> [batch, mel, time]")
        t = int(tr.inputs[0])
        out["reverse"] = False
        k = self.prod.get(t)
        if k is not None and runtime.op_name(self.m, self.sg.operators[k]) == "REVERSE_V2":
            rv = self.sg.operators[k]
            if self.const(rv.inputs[1], "reverse axis").reshape(-1).tolist() not in ([2], [-1]):
                raise FrontEndMismatch("REVERSE_V2 on an axis other than the mel axis")
            out["reverse"] = True
            t = int(rv.inputs[0])
        pw = self.op(t, "POW")
        base, exp = self.split_const(pw, "POW")
        if exp.size != 1:
            raise FrontEndMismatch("POW exponent is not a scalar")
        out["exponent"] = float(exp.reshape(()))
        sq = self.op(base, "MUL")
        self.no_activation(sq)
        if int(sq.inputs[0]) != int(sq.inputs[1]):
            raise FrontEndMismatch("expected mel ** 2 (MUL of a tensor by itself) before POW")
        rs = self.op(sq.inputs[0], "RESHAPE")
        fc = self.op(rs.inputs[0], "FULLY_CONNECTED")
        self.no_activation(fc)
        if len(fc.inputs) > 2 and int(fc.inputs[2]) >= 0:
            raise FrontEndMismatch("mel FULLY_CONNECTED has a bias")
        out["mel"] = self.const(fc.inputs[1], "mel matrix").astype(np.float32)
        rs2 = self.op(fc.inputs[0], "RESHAPE")
        cast = self.op(rs2.inputs[0], "CAST")
        s = runtime.schema()
        if self.sg.tensors[int(cast.inputs[0])].type != s.TensorType.COMPLEX64:
            raise FrontEndMismatch("CAST before the mel matrix is not complex64 -> float32 (the real part)")
        sqz = self.op(cast.inputs[0], "SQUEEZE")
        rfft = self.op(sqz.inputs[0], "RFFT2D")
        out["fft_length"] = self.const(rfft.inputs[1], "fft length").reshape(-1).tolist()
        out["rfft_input"] = int(rfft.inputs[0])
        return out

    def branch(self, t: int) -> tuple[MelBranch, int, tuple[float, float, float, int]]:
        c = self.spectrum_chain(t)
        fft = c["fft_length"]
        if len(fft) != 2 or fft[0] != 1:
            raise FrontEndMismatch(f"RFFT2D length {fft}, expected [1, N] (a 1-D FFT per frame)")
        n = int(fft[1])
        ex = self.op(c["rfft_input"], "EXPAND_DIMS")
        mul = self.op(ex.inputs[0], "MUL")
        self.no_activation(mul)
        framed, window = self.split_const(mul, "window")
        window = window.astype(np.float32).reshape(-1)
        if window.size != n:
            raise FrontEndMismatch(f"window length {window.size} != FFT length {n}")
        if c["mel"].shape[1] != n // 2 + 1:
            raise FrontEndMismatch(f"mel matrix {list(c['mel'].shape)} does not fit an {n}-point FFT")
        step, signal = self.framing(framed, n)
        norm = self.normalisation(signal)
        name = self.name(t).rsplit("/", 1)[0]
        br = MelBranch(name, n, step, window, c["mel"], c["exponent"], c["reverse"])
        return br, signal, norm

    def framing(self, t: int, n: int) -> tuple[int, int]:
        """tf.signal.frame as RESHAPE(GATHER(subframes, range(T) * step/sub + arange(n/sub))): (hop, signal)."""
        rs = self.op(t, "RESHAPE")
        g = self.op(rs.inputs[0], "GATHER")
        if g.builtinOptions.axis not in (1, -2):
            raise FrontEndMismatch(f"framing GATHER on axis {g.builtinOptions.axis}")
        idx = self.op(g.inputs[1], "ADD")
        starts, within = self.split_const(idx, "frame index offsets")
        within = within.reshape(-1)
        sub = n // within.size if within.size else 0
        if within.size * sub != n or not np.array_equal(within, np.arange(within.size)):
            raise FrontEndMismatch("frame GATHER indices are not arange(frame_length / subframe)")
        mul = self.op(self.op(starts, "RESHAPE").inputs[0], "MUL")
        rng, step_sub = self.split_const(mul, "frame start stride")
        rng_op = self.op(rng, "RANGE")
        step = int(step_sub.reshape(())) * sub
        # the frame count TF computes from the declared frame_step must agree with the gather's stride
        mx = self.op(rng_op.inputs[1], "MAXIMUM")
        add = self.op(mx.inputs[0], "ADD")
        fdiv = self.op(self.split_const(add, "frame count + 1")[0], "FLOOR_DIV")
        declared_step = int(self.scalar(fdiv.inputs[1], "frame_step"))
        sub_op = self.op(fdiv.inputs[0], "SUB")
        length = self.split_const(sub_op, "frame_length")[1]
        if length.size != 1:
            raise FrontEndMismatch("frame_length is not a scalar")
        declared_len = int(length.reshape(()))
        if declared_step != step or declared_len != n:
            raise FrontEndMismatch(
                f"framing disagrees: gather hop {step} vs frame_step {declared_step}, "
                f"FFT length {n} vs frame_length {declared_len}"
            )
        # subframes: RESHAPE(STRIDED_SLICE(signal)) -> the normalised signal
        sl = self.op(self.op(g.inputs[0], "RESHAPE").inputs[0], "STRIDED_SLICE")
        return step, int(sl.inputs[0])

    def normalisation(self, t: int) -> tuple[float, float, float, int]:
        """((x - min) / (max(x - min) + eps) - offset) * scale -> (eps, offset, scale, input length)."""
        mul = self.op(t, "MUL")
        self.no_activation(mul)
        t1, scale = self.split_const(mul, "scale")
        sub = self.op(t1, "SUB")
        self.no_activation(sub)
        t2, offset = self.split_const(sub, "offset")
        div = self.op(t2, "DIV")
        self.no_activation(div)
        shifted, denom = (int(x) for x in div.inputs[:2])
        add = self.op(denom, "ADD")
        mx_t, eps = self.split_const(add, "eps")
        rmax = self.op(mx_t, "REDUCE_MAX")
        sub0 = self.op(shifted, "SUB")
        x, mn_t = (int(v) for v in sub0.inputs[:2])
        if int(rmax.inputs[0]) != shifted:
            raise FrontEndMismatch("the max is not taken of (x - min)")
        rmin = self.op(mn_t, "REDUCE_MIN")
        if int(rmin.inputs[0]) != x:
            raise FrontEndMismatch("the min is not taken of the input")
        for r in (rmin, rmax):
            ax = self.const(r.inputs[1], "reduce axis").reshape(-1).tolist()
            if ax not in ([1], [-1]) or not r.builtinOptions.keepDims:
                raise FrontEndMismatch(f"per-window reduction over axes {ax}, expected the sample axis")
        if x not in [int(i) for i in self.sg.inputs]:
            raise FrontEndMismatch(f"the normalised signal {self.name(x)!r} is not the graph input")
        n_in = int(self.sg.tensors[x].shape[-1])
        return float(eps.reshape(())), float(offset.reshape(())), float(scale.reshape(())), n_in
