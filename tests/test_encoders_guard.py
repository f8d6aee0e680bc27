"""The budget guard knows each encoder's cost: after the fastest options, an ensemble drops its costliest member
(and the heads on it) first, then the next, while one member is left; each step is measured on its own plan."""

from __future__ import annotations

from pathlib import Path

from birdkit.encoders import registry
from birdkit.heads.runner import HeadInfo
from birdkit.infer.files import FileJob
from birdkit.infer.guard import BudgetGuard, drop_costliest
from birdkit.infer.plan import EncoderSpec, Plan


def _plan() -> Plan:
    encs = (
        EncoderSpec("placeholder", "placeholder", 16_000),
        EncoderSpec("encodec", "encodec", 24_000, {"bandwidth": 1.5}),
        EncoderSpec("perch", "perch", 32_000),
    )
    heads = tuple((HeadInfo(f"h{i}", Path(f"h{i}.tflite"), None), i) for i in (0, 1, 2, 1))
    return Plan(("a", "b"), encs, heads)


def test_costs_are_declared():
    cost = {n: registry.resolve(n).capabilities.cost for n in ("placeholder", "perch", "encodec", "tflite")}
    assert cost["placeholder"] < cost["tflite"] <= cost["perch"] < cost["encodec"]


def test_drops_the_costliest_member_first():
    plan = _plan()
    one = drop_costliest(plan)
    assert [e.name for e in one.encoders] == ["placeholder", "perch"]
    assert [(h.name, i) for h, i in one.heads] == [("h0", 0), ("h2", 1)]  # the heads on EnCodec went with it
    two = drop_costliest(one)
    assert [e.name for e in two.encoders] == ["placeholder"] and [h.name for h, _ in two.heads] == ["h0"]
    assert drop_costliest(two) is None  # never the last member


def test_guard_steps_until_nothing_cheaper_is_left():
    plan = _plan()
    g = BudgetGuard(total_bytes=100, budget_min=1.0, margin_min=0.0, after_files=1)
    run_s = stream_s = 0.0
    for _ in range(6):  # every file predicts far over the budget
        run_s, stream_s = run_s + 30.0, stream_s + 30.0
        if g.update(FileJob(0, "f", 10), run_s, stream_s):
            nxt = g.switch(plan)
            if nxt is None:
                break
            plan, stream_s = nxt, 0.0  # the new plan streams afresh
    assert [e.name for e in plan.encoders] == ["placeholder"]
    assert [s["to"] for s in g.steps][-1] is None and g.exhausted
    assert g.record()["switched"]["from"].startswith("placeholder + encodec + perch")
