"""Label files and the species mapping: logit column i is row i of the label file, whatever its order; each
competition species is found by eBird code first, else by scientific name through the taxonomy."""

from __future__ import annotations

import numpy as np
import pytest

from birdkit.competition import Competition
from birdkit.encoders import competition_logits, species_index
from birdkit.encoders.classes import output_roles, read_label_file
from birdkit.errors import OptionError
from birdkit.synthetic import SPECIES


def test_label_file_formats(tmp_path):
    p = tmp_path / "label.csv"
    p.write_text("ebird2021\nostric2\ncomrav\n")  # Perch v1: a header, one code per row
    assert read_label_file(p) == ["ostric2", "comrav"]
    assert read_label_file(p, 2) == ["ostric2", "comrav"]
    p.write_text("Struthio camelus\nCorvus corax\n")  # no header: the class count settles it
    assert read_label_file(p, 2) == ["Struthio camelus", "Corvus corax"]
    p.write_text("scientific_name,ebird2021\nStruthio camelus,ostric2\nCorvus corax,comrav\n")
    assert read_label_file(p, 2) == ["ostric2", "comrav"]  # the code column wins
    with pytest.raises(OptionError, match=r"--labels .*4 classes but the model has 2 logits"):
        p.write_text("a\nb\nc\nd\n")
        read_label_file(p, 2)
    with pytest.raises(OptionError, match="no such file"):
        read_label_file(tmp_path / "missing.csv")


def test_output_roles_by_name():
    assert output_roles(["spatial_embedding", "embedding", "spectrogram", "label"]) == {
        "embedding": "embedding",
        "logits": "label",
    }


def test_column_order_follows_the_label_file_not_a_sort(synthetic_comp):
    """The DS@GT bug: a sorted index shifted each species onto its neighbour's column. Here the label file is in
    reverse order, mixes codes and scientific names, and has classes the competition lacks."""
    comp = Competition(synthetic_comp)
    classes = ["noise_a"]
    for i, s in enumerate(reversed(SPECIES)):
        classes += [s.scientific if i % 2 else s.code, f"other_{i}"]
    logits = np.arange(len(classes), dtype=np.float32)[None, :].repeat(3, axis=0)  # logit value = its column
    index = species_index(classes, comp)
    mapped = competition_logits(logits, index)
    for j, code in enumerate(comp.species):
        sp = next(s for s in SPECIES if s.code == code)
        want = classes.index(sp.code) if sp.code in classes else classes.index(sp.scientific)
        assert mapped[0, j] == want, (code, mapped[0, j], want)
    # a species the file lacks is never predicted
    index = species_index(classes[:3], comp)
    assert (competition_logits(logits[:, :3], index) == -np.inf).sum(axis=1)[0] == len(comp.species) - 1


def test_code_beats_a_scientific_name_elsewhere(synthetic_comp):
    comp = Competition(synthetic_comp)
    s = SPECIES[0]
    index = species_index([s.scientific, "x", s.code], comp)  # both present: the code's column
    assert index[comp.species.index(s.code)] == 2
