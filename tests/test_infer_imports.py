"""The Kaggle side imports no torch and no TensorFlow: a fresh interpreter imports the inference path and scores
with an exported head, and neither is loaded. (The head graph is made here, with torch and TensorFlow; the
interpreter that runs it must not need them.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from birdkit.competition import Competition
from birdkit.encoders import get_encoder

CHILD = """
import sys
import birdkit.heads.runner
import birdkit.infer
import birdkit.workflows.notebook
from birdkit.infer import InferConfig, run_inference

r = run_inference(InferConfig(sys.argv[1], sys.argv[2], models=sys.argv[3], workers=1, progress=False,
                              fallback=False))
assert r.errors == [] and r.plan["heads"] == ["lin"], (r.errors, r.plan)
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "tensorflow", "keras", "jax"})
print("heavy:", ",".join(heavy) or "none")
"""


@pytest.fixture(scope="module")
def head_models(synthetic_comp, tmp_path_factory) -> Path:
    """An exported-layout folder with one linear head on the placeholder encoder's embeddings."""
    torch = pytest.importorskip("torch")
    from birdkit.package.convert import head_to_tflite

    species = Competition(synthetic_comp).species
    d = get_encoder("placeholder").embedding_dim
    lin = torch.nn.Linear(d, len(species))
    with torch.no_grad():
        lin.weight.copy_(torch.from_numpy(np.random.default_rng(0).normal(0, 0.1, (len(species), d))))
    root = tmp_path_factory.mktemp("models")
    (root / "heads").mkdir()
    (root / "heads" / "lin.tflite").write_bytes(head_to_tflite(torch.nn.Sequential(lin).eval(), d))
    card = {"name": "lin", "species": species, "encoder": {"name": "placeholder"}, "embedding_dim": d,
            "head": {"kind": "linear", "in_dim": d, "out_dim": len(species)}}  # fmt: skip
    (root / "heads" / "lin.json").write_text(json.dumps(card))
    return root


def test_inference_path_needs_neither_torch_nor_tensorflow(synthetic_comp, head_models, tmp_path):
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(synthetic_comp), str(tmp_path / "s.csv"), str(head_models)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "heavy: none"
    assert (tmp_path / "s.csv").stat().st_size > 0
