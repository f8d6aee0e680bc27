"""EnCodec as an encoder, built from a checkpoint with random weights (no download), without torchaudio."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from birdkit.encoders import get_encoder
from birdkit.encoders.encodec import import_encodec
from birdkit.errors import OptionError

pytestmark = pytest.mark.filterwarnings("ignore:.*weight_norm.*:FutureWarning")  # encodec's own model code


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    """The 24 kHz model's state dict, as the encodec package publishes it, with random weights."""
    import torch

    model = import_encodec().EncodecModel.encodec_model_24khz(pretrained=False)
    path = tmp_path_factory.mktemp("encodec") / "encodec_24khz-random.th"
    torch.save(model.state_dict(), path)
    return path


def test_imports_without_torchaudio():
    import_encodec()
    if importlib.util.find_spec("torchaudio") is None:
        assert "torchaudio" not in sys.modules  # the stand-in is gone once encodec is imported


def test_embedding_definitions(checkpoint):
    rng = np.random.default_rng(0)
    x = (0.1 * rng.normal(size=(3, 120_000))).astype(np.float32)
    latent = get_encoder("encodec", model_path=checkpoint)
    out = latent.embed(x)
    assert out.logits is None and out.embeddings.shape == (3, 256) and latent.embedding_dim == 256
    assert latent.sample_rate == 24_000 and latent.classes == []
    np.testing.assert_allclose(latent.embed(x[:1]).embeddings, out.embeddings[:1], atol=1e-4)  # batch-free
    codes = get_encoder("encodec", model_path=checkpoint, features="codes")
    c = codes.embed(x[:2]).embeddings
    assert c.shape == (2, 750) and codes.embedding_dim == 750  # the paper's 5 x 150 at 1.5 kbps
    assert ((c >= 0) & (c < 1)).all() and np.allclose(c * 1024, np.round(c * 1024))
    wide = get_encoder("encodec", model_path=checkpoint, features="codes", bandwidth=3.0)
    assert wide.embed(x[:1]).embeddings.shape == (1, 1500)  # 5 x 300 at 3 kbps
    opts = latent.describe()["options"]
    assert (opts["bandwidth"], opts["features"], Path(opts["model_path"])) == (
        1.5,
        "latent",
        checkpoint.resolve(),
    )


def test_encodec_option_errors(checkpoint, tmp_path):
    with pytest.raises(OptionError, match="needs --model PATH"):
        get_encoder("encodec")
    with pytest.raises(OptionError, match="--bandwidth 6.0: choose one of 1.5, 3.0"):
        get_encoder("encodec", model_path=checkpoint, bandwidth=6.0)
    bad = tmp_path / "bad.th"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(OptionError, match="not an EnCodec 24 kHz state dict"):
        get_encoder("encodec", model_path=bad)
