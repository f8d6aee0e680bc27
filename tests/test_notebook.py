"""notebooks/inference.ipynb, executed with papermill as Kaggle would run it: the kit imported from the exported
dataset, inputs found under a /kaggle/input-like tree, a dry run when test_soundscapes is empty.

(The minicomp run, byte-identical to `birdkit infer`, is in test_infer.py beside the CLI run it compares to.)
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from birdkit.infer import check_submission
from birdkit.metrics import score_submission
from birdkit.workflows.notebook import NOTEBOOK, NotebookError, resolve_inputs, run_notebook

DATASET_ID = "someone/birdkit-models"


def outputs(executed: Path) -> str:
    """All text the executed notebook printed (stdout, stderr, results)."""
    nb = nbformat.read(executed, as_version=4)
    parts = []
    for c in nb.cells:
        for o in c.get("outputs", []):
            parts.append(o.get("text") or o.get("data", {}).get("text/plain", ""))
    return "\n".join(parts)


@pytest.fixture(scope="module")
def demo_dataset(synthetic_comp, tmp_path_factory) -> Path:
    """The demo's models: a linear head on BirdNET embeddings of the synthetic training clips (weak labels: BirdNET
    has never heard these species), exported as the Kaggle dataset (kit code, encoder, head, card)."""
    from birdkit.heads.card import TrainConfig
    from birdkit.heads.train import train_head
    from birdkit.package.export import export
    from birdkit.store.embed import embed_split
    from birdkit.store.labels import LabelSpec

    tmp = tmp_path_factory.mktemp("demo_models")
    embed_split(synthetic_comp, "train_audio", tmp / "emb", workers=1, progress=False)
    config = TrainConfig(head="linear", labels=LabelSpec(folder="all"), epochs=30, seed=0)
    train_head(tmp / "emb", tmp / "models" / "lin", config, progress=False, name="lin")
    export([tmp / "models" / "lin"], tmp / "dataset", dataset_id=DATASET_ID)
    return tmp / "dataset"


def test_notebook_is_committed_clean_and_papermill_ready():
    nb = json.loads(NOTEBOOK.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c["outputs"] and c["execution_count"] is None for c in code)
    tagged = [c for c in code if "parameters" in c["metadata"].get("tags", [])]
    assert len(tagged) == 1 and tagged[0] is code[0]
    params = "".join(tagged[0]["source"])
    for name in (
        "DATA_DIR",
        "MODELS_DIR",
        "KIT_DIR",
        "PASSTHROUGH",
        "OUT",
        "PROFILE",
        "WORKERS",
        "BUDGET_MIN",
    ):
        assert f"{name} = " in params
    text = "".join("".join(c["source"]) for c in code)
    assert "pip install" not in text and "!pip" not in text and "run_inference" not in text  # thin cells
    assert "notebook.infer(" in text and "check_submission(" in text


def test_notebook_on_demo_data_imports_the_kit_from_the_dataset(demo_dataset, synthetic_comp, tmp_path):
    """Kaggle's way: only the dataset provides birdkit (KIT_DIR left empty), the head scores species BirdNET has
    never heard of, and the profile table is printed."""
    run = run_notebook(synthetic_comp, tmp_path, models_dir=demo_dataset, parameters={"KIT_DIR": None})
    text = outputs(run.notebook)
    assert f"from {demo_dataset.resolve() / 'birdkit'}" in text
    assert "| Name | Profile (sec) | Rate (sec/4m) | Test Estimate (hours) |" in text
    sub = check_submission(run.submission, synthetic_comp)
    truth = pd.read_csv(synthetic_comp / "test_labels_5s.csv", keep_default_na=False)
    score = score_submission(sub, truth)
    assert score > 0.8, score  # BirdNET passthrough cannot tell these species apart at all (0.5)
    prof = json.loads(run.profile.read_text())
    assert prof["config"]["heads"] == ["lin"] and prof["stages"]["head"]["cpu_s"] > 0
    assert prof["files"] == 2 and prof["failed_files"] == 0


def test_empty_test_folder_dry_runs_on_unlabeled_soundscapes(synthetic_comp, tmp_path):
    comp = tmp_path / "comp"
    (comp / "test_soundscapes").mkdir(parents=True)
    (comp / "unlabeled_soundscapes").symlink_to(synthetic_comp / "unlabeled_soundscapes")
    for name in ("sample_submission.csv", "eBird_Taxonomy_v2021.csv"):
        shutil.copyfile(synthetic_comp / name, comp / name)
    run = run_notebook(comp, tmp_path / "out", passthrough="birdnet", parameters={"DRY_RUN_FILES": 1})
    assert "dry run on the first 1 unlabeled soundscapes" in outputs(run.notebook)
    sub = check_submission(run.submission, comp, "unlabeled_soundscapes", 1)
    assert list(sub["row_id"]) == [f"synth_unlabeled_000_{5 * (i + 1)}" for i in range(6)]


def test_inputs_are_found_the_kaggle_way(synthetic_comp, tmp_path):
    # newer layout: /kaggle/input/competitions/<slug>, datasets deeper
    root = tmp_path / "input"
    (root / "competitions").mkdir(parents=True)
    (root / "competitions" / "birdclef-2024").symlink_to(synthetic_comp)
    ds = root / "datasets" / "someone" / "birdkit-models"
    (ds / "heads").mkdir(parents=True)
    (ds / "birdkit").mkdir()
    (ds / "heads" / "lin.tflite").write_bytes(b"")
    found = resolve_inputs(root=root)
    assert found.data_dir == root / "competitions" / "birdclef-2024" and found.models_dir == ds
    assert found.passthrough is None and found.split == "test_soundscapes" and not found.dry_run
    # classic layout, a dataset with only the encoder: BirdNET passthrough is chosen, and said
    root2 = tmp_path / "input2"
    root2.mkdir()
    (root2 / "birdclef-2024").symlink_to(synthetic_comp)
    (root2 / "kit" / "encoders" / "birdnet").mkdir(parents=True)
    found = resolve_inputs(root=root2)
    assert found.data_dir == root2 / "birdclef-2024" and found.models_dir == root2 / "kit"
    assert found.passthrough == "birdnet"
    with pytest.raises(NotebookError, match="attach the birdclef-2024"):
        resolve_inputs(root=tmp_path / "nothing")
