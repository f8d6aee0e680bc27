"""Self-profiling: the Table 7 arithmetic, stage timers, and `birdkit profile` on real soundscapes."""

from __future__ import annotations

import json
import time

import pytest

from birdkit.cli.main import main
from birdkit.profile import Profile, StageTimes, table, usable_cores
from birdkit.workflows.profile import configurations


def make_profile(**kw) -> Profile:
    base = dict(name="x", files=20, failed_files=0, rows=960, audio_s=20 * 240.0, wall_s=62.0, cpu_s=50.0,
                setup_s=2.0, stages={}, cores=4, workers=4)  # fmt: skip
    return Profile(**{**base, **kw})


def test_rate_and_estimate_follow_the_papers_table_7():
    """20 soundscapes in 60 s after 2 s of setup: 3 s per 4-min soundscape, 1100 of them in 0.92 h."""
    p = make_profile()
    assert p.rate_s_per_4min == pytest.approx(3.0)
    assert p.cpu_s_per_4min == pytest.approx(2.5)
    assert p.test_estimate_h == pytest.approx((2 + 3.0 * 1100) / 3600)
    assert p.within_budget
    slow = make_profile(wall_s=2 + 20 * 6.6)  # 6.6 s per soundscape: 2.02 h
    assert not slow.within_budget and slow.test_estimate_h > 2
    t = table([p, slow]).splitlines()
    assert t[0].startswith("| Name | Profile (sec) | Rate (sec/4m) | Test Estimate (hours) |")
    assert t[2] == "| x | 62.0 | 3.00 | 0.92 | 2.50 | 4 | ok |"
    assert t[3].endswith("| over |")
    back = Profile.from_dict(json.loads(json.dumps(p.to_dict())))
    assert back == p


def test_stage_times_count_cpu_and_merge():
    t = StageTimes()
    with t.stage("encoder"):
        x = 0
        for i in range(300_000):
            x += i
    with t.stage("decode"):
        time.sleep(0.05)
    assert t.cpu["encoder"] > 0.005 and t.cpu["decode"] < 0.02 <= t.wall["decode"]
    other = StageTimes(wall={"encoder": 1.0}, cpu={"encoder": 0.5})
    t.add(other.as_dict())
    assert t.wall["encoder"] > 1.0 and t.cpu["encoder"] > 0.5


def test_configurations_cover_passthrough_windows_and_graph_variants():
    names = [c.name for c in configurations()]
    assert "birdnet passthrough fast" in names and "birdnet passthrough centre fast" in names
    assert "birdnet passthrough full-graph" in names


@pytest.mark.shared
def test_profile_command_prints_and_saves_the_table(minicomp, tmp_path, capsys):
    """Two configurations on a two-minute soundscape: the centre window costs the encoder less than the paper's
    two windows, and both rows are printed and saved."""
    out, md = tmp_path / "profile.json", tmp_path / "profile.md"
    only = "birdnet passthrough fast,birdnet passthrough centre fast"
    rc = main(["profile", "--data-dir", str(minicomp), "--split", "unlabeled_soundscapes", "--files", "1",
               "--only", only, "--out", str(out), "--table", str(md)])  # fmt: skip
    assert rc == 0
    printed = capsys.readouterr().out
    assert "| birdnet passthrough fast |" in printed and "| birdnet passthrough centre fast |" in printed
    assert md.read_text().strip() in printed
    paper, centre = json.loads(out.read_text())
    for p in (paper, centre):
        assert p["files"] == 1 and p["audio_s"] == pytest.approx(120.0, abs=0.1) and p["rows"] == 24
        assert p["cores"] == usable_cores() and p["test_files"] == 1100 and p["guard"]["switched"] is None
    assert centre["config"]["encoders"][0]["windows"] == "centre"
    assert centre["stages"]["encoder"]["cpu_s"] < paper["stages"]["encoder"]["cpu_s"]  # 24 windows, not 48


def test_profile_command_rejects_unknown_configurations(tmp_path, capsys):
    assert main(["profile", "--data-dir", str(tmp_path), "--only", "nonsense"]) == 2
    err = capsys.readouterr().err
    assert "unknown configurations ['nonsense']" in err and "birdnet passthrough fast" in err  # and the known


def test_configurations_come_from_what_the_encoders_declare():
    """BirdNET declares its graph variants and a centre-window fastest option; the placeholder declares none."""
    names = [c.name for c in configurations(passthrough=("birdnet", "placeholder"))]
    assert names == [
        "birdnet passthrough fast",
        "birdnet passthrough centre fast",
        "birdnet passthrough full-graph",
        "birdnet passthrough centre full-graph",
        "placeholder passthrough",
    ]
    full = next(c for c in configurations() if c.name == "birdnet passthrough centre full-graph")
    assert full.windows == "centre" and full.encoder_options == {"fast": False}
    assert [c.name for c in configurations(passthrough=("birdnet",), windows=False)] == [
        "birdnet passthrough fast",
        "birdnet passthrough full-graph",
    ]


def test_profile_writes_under_out_not_the_current_folder(synthetic_comp, tmp_path, monkeypatch, capsys):
    """`birdkit profile --out DIR`: profile.json and profile.md in DIR; nothing in the working folder."""
    pytest.importorskip("torch")
    from test_bad_inputs import _head_folder

    from birdkit.competition import Competition

    models = _head_folder(tmp_path / "models", Competition(synthetic_comp).species)
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    rc = main(["profile", "--data-dir", str(synthetic_comp), "--models", str(models), "--only", "head", "--files",
               "1", "--out", str(tmp_path / "prof")])  # fmt: skip
    assert rc == 0
    assert json.loads((tmp_path / "prof" / "profile.json").read_text())["files"] == 1
    assert "| head |" in (tmp_path / "prof" / "profile.md").read_text()
    assert list(cwd.iterdir()) == []


def test_profile_refuses_zero_files(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["profile", "--data-dir", str(tmp_path), "--files", "0"])
    assert "--files" in capsys.readouterr().err


def test_each_head_gets_its_own_row_and_runs_alone(synthetic_comp, tmp_path):
    """A folder of two heads: besides the all-heads rows, one row per head, which scores with that head only."""
    import shutil

    from test_bad_inputs import _head_folder

    from birdkit.competition import Competition
    from birdkit.errors import BirdkitError
    from birdkit.infer import InferConfig, run_inference
    from birdkit.workflows.profile import profile_configurations, select

    models = _head_folder(tmp_path / "models", Competition(synthetic_comp).species)
    card = json.loads((models / "heads" / "lin.json").read_text())
    shutil.copy(models / "heads" / "lin.tflite", models / "heads" / "other.tflite")
    (models / "heads" / "other.json").write_text(json.dumps({**card, "name": "other"}))
    configs = configurations(models, passthrough=())
    names = [c.name for c in configs]
    assert "head" in names and names[-2:] == ["head lin", "head other"]
    (p,) = profile_configurations(synthetic_comp, models, files=1, configs=select(configs, "head other"))
    assert p.name == "head other" and p.config["heads"] == ["other"] and p.files == 1
    with pytest.raises(BirdkitError, match="no head named nosuch"):
        run_inference(
            InferConfig(synthetic_comp, tmp_path / "s.csv", models=models, heads=("nosuch",), fallback=False)
        )


def test_an_encoder_without_logits_gets_no_passthrough_row():
    """EnCodec and the SSL encoder have no classifier: timing their passthrough would time nothing useful."""
    names = [c.name for c in configurations(passthrough=("encodec", "ssl", "placeholder"))]
    assert names and all(n.startswith("placeholder passthrough") for n in names)
