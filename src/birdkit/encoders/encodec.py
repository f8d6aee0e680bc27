"""EnCodec (Meta's neural audio codec, ``encodec`` 0.1.1, torch) as an encoder, from a user-supplied checkpoint.

The 24 kHz model's encoder turns 5 s (120,000 samples) into 375 frames of a 128-d latent, which its residual vector
quantiser codes with 2 codebooks at 1.5 kbps or 4 at 3 kbps (the two bandwidths the paper tried). The embedding,
``features``:

``latent`` (default)  the quantised latent (what the decoder sees at that bandwidth), its mean and its standard
                      deviation over the 375 frames: 256 values. Bandwidth changes the numbers, not the width.
``codes``             the paper's: the codebook indices themselves, flattened (2 x 375 = 750 = "5x150" at 1.5 kbps,
                      4 x 375 = 1500 = "5x300" at 3 kbps), scaled to [0, 1) by the codebook size.

EnCodec has no classifier: it gives no logits, so its stores are labelled by a surrogate (``birdkit label
--surrogate``). The checkpoint is the state dict the ``encodec`` package publishes (``encodec_24khz-d7cc33bc.th``);
nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from birdkit.encoders.base import Capabilities, EncoderOutputs, check_chunks
from birdkit.errors import OptionError

SAMPLE_RATE = 24_000
WINDOW_S = 5
BANDWIDTHS = (1.5, 3.0)
FEATURES = ("latent", "codes")
CODEBOOK = 1024


def _torchaudio_standin() -> types.ModuleType:
    """What ``import encodec`` needs from torchaudio, failing only if called.

    encodec 0.1.1 imports torchaudio at import time but uses it only to read, write and resample files, which
    birdkit does itself; PyPI's torchaudio does not load with our torch build, so it is not installed. This
    stand-in is put in ``sys.modules`` only while encodec is imported, and only when torchaudio is missing.
    """
    mod = types.ModuleType("torchaudio")

    def unavailable(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("torchaudio is not installed; birdkit decodes and resamples audio itself")

    mod.load = mod.save = unavailable  # type: ignore[attr-defined]
    mod.transforms = types.SimpleNamespace(Resample=unavailable, Spectrogram=unavailable)  # type: ignore[attr-defined]
    return mod


def import_encodec() -> Any:
    """The ``encodec`` package, imported without torchaudio when it is absent."""
    if "encodec" in sys.modules:
        return sys.modules["encodec"]
    standin = importlib.util.find_spec("torchaudio") is None
    if standin:
        sys.modules["torchaudio"] = _torchaudio_standin()
    try:
        import encodec
    except ImportError as exc:
        raise OptionError(
            "--encoder encodec needs the encodec package: `pip install --no-deps encodec==0.1.1 einops`"
        ) from exc
    finally:
        if standin:
            sys.modules.pop("torchaudio", None)
    return encodec


class EncodecEncoder:
    """EnCodec 24 kHz's encoder and quantiser: 5 s chunks -> an embedding (``features``), no logits."""

    name = "encodec"
    version = ""
    sample_rate = SAMPLE_RATE
    # 7.82 s per 4-min soundscape uncompiled in the paper (Table 7), several times BirdNET
    capabilities = Capabilities(
        fastest_options={"bandwidth": 1.5}, cost=16.0, logits=False
    )  # measured: RESULTS.md
    classes: list[str] = []

    def __init__(
        self,
        model_path: str | Path | None = None,
        bandwidth: float = 1.5,
        features: str = "latent",
        batch_size: int = 8,
        num_threads: int = 1,
    ) -> None:
        if model_path is None:
            raise OptionError(
                "--encoder encodec needs --model PATH: the 24 kHz checkpoint (encodec_24khz-d7cc33bc.th)"
            )
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise OptionError(f"--model {self.model_path}: no such file")
        if float(bandwidth) not in BANDWIDTHS:
            raise OptionError(
                f"--bandwidth {bandwidth}: choose one of {', '.join(map(str, BANDWIDTHS))} (kbps)"
            )
        if features not in FEATURES:
            raise OptionError(f"--features {features}: choose one of {', '.join(FEATURES)}")
        import torch

        encodec = import_encodec()
        self._torch = torch
        torch.set_num_threads(max(1, int(num_threads)))
        data = self.model_path.read_bytes()
        self.version = hashlib.sha256(data).hexdigest()[:12]
        with warnings.catch_warnings():  # encodec's weight_norm is deprecated in torch; harmless here
            warnings.simplefilter("ignore", FutureWarning)
            model = encodec.EncodecModel.encodec_model_24khz(pretrained=False)
        try:
            state = torch.load(self.model_path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
        except Exception as exc:  # torch raises RuntimeError, UnpicklingError, KeyError for a wrong file
            raise OptionError(
                f"--model {self.model_path}: not an EnCodec 24 kHz state dict ({str(exc).splitlines()[0][:160]})"
            ) from exc
        model.set_target_bandwidth(float(bandwidth))
        self.model = model.eval()
        self.bandwidth = float(bandwidth)
        self.features = features
        self.batch_size = max(1, int(batch_size))
        self.n_samples = WINDOW_S * SAMPLE_RATE
        frames = int(np.ceil(self.n_samples / np.prod(model.encoder.ratios)))
        n_q = model.quantizer.get_num_quantizers_for_bandwidth(model.frame_rate, self.bandwidth)
        self.embedding_dim = 2 * model.encoder.dimension if features == "latent" else n_q * frames
        self.classes = []

    @classmethod
    def export_files(cls, model_path: str | Path | None = None, **options: Any) -> dict[str, Path]:
        return {Path(model_path).name: Path(model_path)} if model_path else {}

    def describe(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "runtime": f"torch {self._torch.__version__}",
            "bandwidth_kbps": self.bandwidth,
            "features": self.features,
            "options": {
                "model_path": str(self.model_path.resolve()),
                "bandwidth": self.bandwidth,
                "features": self.features,
            },
        }

    def _features(self, x: Any) -> Any:
        m = self.model
        latent = m.encoder(x)  # [B, 128, frames]
        codes = m.quantizer.encode(latent, m.frame_rate, m.bandwidth)  # [n_q, B, frames]
        if self.features == "codes":
            return codes.transpose(0, 1).reshape(x.shape[0], -1).float() / CODEBOOK
        q = m.quantizer.decode(codes)  # [B, 128, frames]
        return self._torch.cat([q.mean(dim=-1), q.std(dim=-1)], dim=1)

    def embed(self, chunks: np.ndarray) -> EncoderOutputs:
        """[n, 120000] float32 at 24 kHz -> embeddings [n, embedding_dim]; no logits."""
        chunks = check_chunks(chunks, self.n_samples, "EnCodec (24 kHz)")
        out = []
        with self._torch.inference_mode():
            for s in range(0, len(chunks), self.batch_size):
                x = self._torch.from_numpy(chunks[s : s + self.batch_size])[:, None, :]
                out.append(self._features(x).numpy())
        emb = np.concatenate(out) if out else np.zeros((0, self.embedding_dim), np.float32)
        return EncoderOutputs(emb, None)
