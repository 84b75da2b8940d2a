"""The compute-schedule evaluations: exactly which steps fire, and why."""

import numpy as np
import pytest

from toylab.train import EvalPoint, TrainConfig, planned_evaluations, train
from toylab.tasks import superposition


def test_default_schedule_fires_at_every_4x_of_compute_and_the_end():
    points = planned_evaluations(10_000)
    assert [p.step for p in points] == [0, 1, 4, 16, 64, 256, 1024, 4096, 10_000]
    assert [p.trigger for p in points] == ["init"] + ["compute"] * 7 + ["end"]


def test_step_interval_fires_first_and_restarts_the_compute_clock():
    points = planned_evaluations(1000, compute_factor=4, every_steps=100)
    # 0,1,4,16,64 by compute; from 64 the interval (164) comes before 4×64=256; from 164 the
    # next compute milestone is 656, so the interval keeps firing every 100 steps.
    assert points == [
        EvalPoint(0, "init"), EvalPoint(1, "compute"), EvalPoint(4, "compute"),
        EvalPoint(16, "compute"), EvalPoint(64, "compute"), EvalPoint(164, "interval"),
        EvalPoint(264, "interval"), EvalPoint(364, "interval"), EvalPoint(464, "interval"),
        EvalPoint(564, "interval"), EvalPoint(664, "interval"), EvalPoint(764, "interval"),
        EvalPoint(864, "interval"), EvalPoint(964, "interval"), EvalPoint(1000, "end"),
    ]


def test_coinciding_triggers_are_all_recorded():
    assert planned_evaluations(8, compute_factor=2, every_steps=4) == [
        EvalPoint(0, "init"), EvalPoint(1, "compute"), EvalPoint(2, "compute"),
        EvalPoint(4, "compute"), EvalPoint(8, "compute+interval+end"),
    ]


def test_non_integer_factor_rounds_milestones_up():
    assert [p.step for p in planned_evaluations(100, compute_factor=1.5)] == [
        0, 1, 2, 3, 5, 8, 12, 18, 27, 41, 62, 93, 100]


def test_trainer_records_the_planned_evaluations_with_their_compute():
    task = superposition(4, 2)
    config = TrainConfig(steps=70, batch_size=16, eval_every_steps=30, elicit_steps=3)
    result = train(task, [{"feature_probability": 0.5}], config=config)
    planned = planned_evaluations(70, every_steps=30)
    assert [(e.step, e.trigger) for e in result.evaluations] == [tuple(p) for p in planned]
    flops_per_step = task.flops_per_step(16)
    assert flops_per_step == 3 * (4 * 2 * 4 + 6 * 4) * 16
    assert [e.flops for e in result.evaluations] == [p.step * flops_per_step for p in planned]
    assert all(b.wall_time >= a.wall_time for a, b in zip(result.evaluations, result.evaluations[1:]))
    assert all(set(e.elicited) == set(e.raw) for e in result.evaluations)


def test_time_interval_fires_evaluations_between_compute_milestones():
    # An interval far shorter than a segment: every segment boundary is past it, so "time"
    # evaluations must appear between the compute milestones whatever the machine's speed.
    interval = 1e-3
    config = TrainConfig(steps=300, batch_size=64, eval_every_seconds=interval, elicit_steps=0,
                         compute_factor=1000)
    result = train(superposition(5, 2), [{"feature_probability": 0.1}], config=config)
    triggers = [e.trigger for e in result.evaluations]
    assert triggers[:2] == ["init", "compute"] and triggers[-1].endswith("end")
    assert triggers.count("time") >= 2, triggers
    steps = [e.step for e in result.evaluations]
    assert steps == sorted(set(steps)) and steps[-1] == 300
    for previous, current in zip(result.evaluations, result.evaluations[1:]):
        if current.trigger == "time":
            assert current.wall_time - previous.wall_time >= interval


@pytest.mark.parametrize("factor", [1.0, 0.5])
def test_compute_factor_must_exceed_one(factor):
    with pytest.raises(ValueError, match="compute_factor"):
        TrainConfig(compute_factor=factor)


def test_elicitation_scaled_to_the_run_fine_tunes_a_fraction_of_the_steps_since_the_last_evaluation():
    task = superposition(5, 2)
    configs = [{"feature_probability": 0.1, "importance": 0.9}]
    scaled = train(task, configs, config=TrainConfig(steps=64, batch_size=64, elicit_steps=10, elicit_fraction=0.25))
    # Evaluations at 0, 1, 4, 16, 64: ⌈0.25 × (0, 1, 3, 12, 48)⌉ capped at 10.
    assert [e.elicit_steps for e in scaled.evaluations] == [0, 1, 1, 3, 10]
    first = scaled.evaluations[0]
    assert first.elicited["loss"] == pytest.approx(first.raw["loss"], rel=1e-6)  # 0 steps: nothing moved
    fixed = train(task, configs, config=TrainConfig(steps=64, batch_size=64, elicit_steps=10))
    assert [e.elicit_steps for e in fixed.evaluations] == [10] * 5
    # Same training either way: elicitation fine-tunes a copy.
    np.testing.assert_array_equal(scaled.params["W"], fixed.params["W"])
    assert fixed.evaluations[0].elicited["loss"] != pytest.approx(fixed.evaluations[0].raw["loss"], rel=1e-6)


def test_a_store_written_before_elicit_fraction_keeps_its_spec_and_runs():
    from toylab.sweeps import SweepSpec

    spec = SweepSpec(task="superposition", axes={"feature_probability": [0.1]}, train={"steps": 10})
    assert "elicit_fraction" not in spec.canonical()["train"]
    assert "elicit_fraction" not in spec.runs()[0].group
    scaled = SweepSpec(task="superposition", axes={"feature_probability": [0.1]},
                       train={"steps": 10, "elicit_fraction": 0.25})
    assert scaled.canonical()["train"]["elicit_fraction"] == 0.25 and scaled.digest != spec.digest
