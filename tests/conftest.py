"""Shared fixtures. Real data comes from ../shared (never copied into the repo); tests needing it skip without it."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
MINICOMP = SHARED / "data" / "minicomp"
EDGE_CASES = SHARED / "data" / "edge_cases"


@pytest.fixture(scope="session")
def minicomp() -> Path:
    if not MINICOMP.is_dir():
        pytest.skip("../shared/data/minicomp is not present")
    return MINICOMP


@pytest.fixture(scope="session")
def edge_cases() -> Path:
    if not EDGE_CASES.is_dir():
        pytest.skip("../shared/data/edge_cases is not present")
    return EDGE_CASES


@pytest.fixture(scope="session")
def birdnet():
    """One BirdNET encoder for the whole session (its interpreter is slow to warm up)."""
    from birdkit.encoders import get_encoder

    return get_encoder("birdnet")


@pytest.fixture(scope="session")
def minicomp_train_store(minicomp, tmp_path_factory) -> Path:
    """BirdNET embeddings of every minicomp training clip, computed once per session."""
    from birdkit.store.embed import embed_split

    out = tmp_path_factory.mktemp("emb") / "train"
    embed_split(minicomp, "train_audio", out, workers=2, progress=False)
    return out


@pytest.fixture(scope="session")
def minicomp_test_store(minicomp, tmp_path_factory) -> Path:
    """BirdNET embeddings of minicomp's two ten-minute test soundscapes, computed once per session."""
    from birdkit.store.embed import embed_split

    out = tmp_path_factory.mktemp("emb") / "test"
    embed_split(minicomp, "test_soundscapes", out, workers=2, progress=False)
    return out


@pytest.fixture(scope="session")
def synthetic_comp(tmp_path_factory) -> Path:
    """The built-in synthetic competition (what `birdkit demo` generates), once per session."""
    from birdkit.synthetic import generate

    return generate(tmp_path_factory.mktemp("synthetic") / "comp")


def _placeholder_store(comp: Path, split: str, out: Path) -> Path:
    from birdkit.store.embed import embed_split

    embed_split(comp, split, out, encoder="placeholder", progress=False)
    return out


@pytest.fixture(scope="session")
def placeholder_train_store(synthetic_comp, tmp_path_factory) -> Path:
    """The synthetic competition's training clips through the placeholder encoder: a real store (64-d, six
    mapped species) in well under a second, with no model file and no ../shared. Read it; do not write into it
    (copy it first)."""
    return _placeholder_store(synthetic_comp, "train_audio", tmp_path_factory.mktemp("placeholder") / "train")


@pytest.fixture(scope="session")
def placeholder_test_store(synthetic_comp, tmp_path_factory) -> Path:
    """The synthetic test soundscapes (which have test_labels_5s.csv) through the placeholder encoder."""
    return _placeholder_store(
        synthetic_comp, "test_soundscapes", tmp_path_factory.mktemp("placeholder") / "test"
    )
