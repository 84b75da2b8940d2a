"""The Task contract: results from before it widened, and each optional part on its own."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from toylab.errors import ConfigError, TaskError
from toylab.tasks import Task, superposition
from toylab.tasks.classifier import digits, mlp_classifier
from toylab.tasks.lowrank import lowrank
from toylab.train import TrainConfig, train
from toylab.train import trainer

# Weights and histories written by tests/data/make_contract_reference.py at commit d977cd3,
# the trainer before the contract widened.
REFERENCE = np.load(Path(__file__).parent / "data" / "contract_reference.npz")


def _close(actual, name, rtol=1e-5, atol=1e-6):
    np.testing.assert_allclose(actual, REFERENCE[name], rtol=rtol, atol=atol, err_msg=name)


def test_superposition_trains_to_the_same_weights_as_before_the_contract_widened():
    # Recorded with JAX's threefry, the generator toylab used then (rng="threefry" keeps it).
    result = train(superposition(5, 2, rng="threefry"),
                   [{"feature_probability": 0.1, "importance": 0.9}, {"feature_probability": 0.5}],
                   seeds=2, seed=7, config=TrainConfig(steps=300, batch_size=256, elicit_steps=10))
    for name in ("W", "b"):
        _close(result.params[name], f"superposition/{name}")
    _close(result.history("loss"), "superposition/loss")
    _close(result.history("loss", elicited=True), "superposition/elicited_loss")


@pytest.mark.slow
def test_lowrank_and_the_classifier_train_as_before_with_their_batches_owned_by_the_task():
    # lowrank now draws its entries inside the loss from the step's key (no sample), and the
    # classifier reads digits as shared data instead of compiled constants: same numbers.
    result = train(lowrank(d=6, entries_per_step=16), [{"rank": 2, "init_scale": 0.1}], seeds=2, seed=3,
                   config=TrainConfig(steps=200, lr=0.05, optimizer="sgd", elicit_steps=0))
    for i, factor in enumerate(result.params["factors"]):
        _close(factor, f"lowrank/factors/{i}")
    _close(result.history("loss"), "lowrank/loss")
    result = train(mlp_classifier(digits(), n_hidden=8), [{}], seeds=2, seed=1,
                   config=TrainConfig(steps=100, batch_size=128, optimizer="adam", lr=1e-2, elicit_steps=0))
    for name in ("W_in", "W_out"):
        _close(result.params[name], f"classifier/{name}")
    _close(result.history("test_accuracy"), "classifier/test_accuracy")


def test_a_task_that_draws_its_own_batches_refuses_a_batch_size():
    with pytest.raises(ConfigError, match="batch_size=8: task 'lowrank' draws its own batches"):
        train(lowrank(d=4), [{"rank": 1}], config=TrainConfig(steps=2, batch_size=8))


def test_the_task_default_batch_size_applies_unless_the_config_sets_one():
    task = superposition(5, 2)
    assert trainer._batch_size(task, TrainConfig()) == 1024
    assert trainer._batch_size(task, TrainConfig(batch_size=32)) == 32
    with pytest.raises(ConfigError, match="no default batch size"):
        trainer._batch_size(task._replace(batch_size=None), TrainConfig())


def _counter_task(**changes) -> Task:
    """w is pulled to 1; the state counts steps; the loss reports w as aux."""

    def loss(params, batch, hyper, state):
        return (params["w"] - 1.0) ** 2, {"w_seen": params["w"]}, state + 1

    task = Task(
        name="counter", spec={}, hyper=lambda config: {"scale": np.float32(config.get("scale", 1.0))},
        init=lambda key, hyper: {"w": jnp.float32(0.0)}, sample=None, loss=loss,
        flops_per_step=lambda batch_size: 1.0,
        metrics=lambda params, hyper, key: {"draw": jax.random.uniform(key)},
        init_state=lambda key, hyper: jnp.int32(0),
    )
    return task._replace(**changes)


def test_task_state_is_carried_through_every_step_and_aux_is_recorded():
    result = train(_counter_task(), [{}], seeds=3, config=TrainConfig(steps=37, lr=0.1, elicit_steps=0))
    np.testing.assert_array_equal(result.state, [37, 37, 37])
    # Aux comes from the held-out evaluation of the current weights.
    np.testing.assert_allclose(result.history("w_seen")[-1], result.params["w"], rtol=1e-6)


def test_metrics_see_one_key_per_instance_fixed_across_evaluations():
    draws = train(_counter_task(), [{}], seeds=3, config=TrainConfig(steps=20, elicit_steps=0)).history("draw")
    assert np.all(draws == draws[0]) and len(set(draws[0].tolist())) == 3


def test_a_projection_holds_after_every_update():
    task = _counter_task(project=lambda params, hyper: {"w": jnp.minimum(params["w"], 0.25)})
    result = train(task, [{}], config=TrainConfig(steps=50, lr=0.1, elicit_steps=0, eval_every_steps=5))
    assert np.all(result.history("w_seen") <= 0.25) and result.params["w"][0] == pytest.approx(0.25)


def test_a_task_optimizer_reads_each_instance_hyperparameters():
    # SGD at each instance's own rate: after one step w = 2·lr·1 from w = 0.
    task = _counter_task(optimizer=lambda config, hyper: optax.sgd(hyper["scale"]))
    result = train(task, [{"scale": 0.1}, {"scale": 0.2}], config=TrainConfig(steps=1, elicit_steps=0))
    np.testing.assert_allclose(result.params["w"], [0.2, 0.4], rtol=1e-6)


def test_an_aux_output_named_like_a_metric_is_refused():
    task = _counter_task(metrics=lambda params, hyper, key: {"w_seen": params["w"]})
    with pytest.raises(TaskError, match=r"\['w_seen'\] is both a metric and an output of the loss"):
        train(task, [{}], config=TrainConfig(steps=2, elicit_steps=0))


def test_a_population_hook_sees_every_evaluation_but_the_last_and_may_rewrite_values():
    seen = []

    def hook(population):
        seen.append(population.step)
        # Reset every instance's weight: only the last segment's training survives.
        return dataclasses.replace(population, params={"w": jnp.zeros_like(population.params["w"])})

    task = _counter_task(optimizer=lambda config, hyper: optax.sgd(0.1))  # no optimizer state to rewind
    result = train(task, [{}], seeds=2, on_evaluation=hook,
                   config=TrainConfig(steps=40, eval_every_steps=10, elicit_steps=0))
    assert seen == [e.step for e in result.evaluations[:-1]] and 0 < seen[-1] < 40
    alone = train(task, [{}], seeds=2, config=TrainConfig(steps=40 - seen[-1], elicit_steps=0))
    np.testing.assert_allclose(result.params["w"], alone.params["w"], rtol=1e-6)


def test_a_population_hook_may_not_change_shapes():
    def hook(population):
        return dataclasses.replace(population, params={"w": np.zeros((5,), np.float32)})

    with pytest.raises(TaskError, match="changed the structure, shapes or dtypes of params at step 0"):
        train(_counter_task(), [{}], seeds=2, on_evaluation=hook, config=TrainConfig(steps=4, elicit_steps=0))


def test_shared_data_is_one_argument_of_the_compiled_loop_not_a_constant_or_a_copy():
    rows = 4099  # a size no other array has
    data = {"x": np.linspace(0, 1, rows, dtype=np.float32)}
    task = Task(
        name="mean", spec={}, hyper=lambda config: {}, init=lambda key, hyper, data: {"m": jnp.float32(0)},
        sample=lambda key, hyper, batch_size, data: data["x"][jax.random.randint(key, (batch_size,), 0, rows)],
        loss=lambda params, x, hyper, data: jnp.mean((x - params["m"]) ** 2),
        flops_per_step=lambda batch_size: 3.0 * batch_size,
        metrics=lambda params, hyper, key, data: {"error": params["m"] - jnp.mean(data["x"])},
        batch_size=64, data=data)
    models = 3
    _, hyper, keys = trainer._instances(task, [{}], models, 0)
    params, state = trainer._init(task)(hyper, keys, data)
    opt_state = jax.vmap(trainer.make_optimizer(TrainConfig()).init)(params)
    carry = trainer.Carry(params, opt_state, state, jnp.zeros(models))
    run = trainer._segment_runner(task, trainer._optimizer(task, TrainConfig()), 64)
    for group in (models, 2):  # all instances at once, or in groups (of 2, then the one left)
        program = run.lower(carry, keys, hyper, data, 0, 1, group=group).as_text()
        assert f"tensor<{rows}xf32>" in program  # the data as an argument, once
        assert not any(f"x{rows}xf32>" in line for line in program.splitlines())  # not copied per instance
        assert not any("constant" in line and f"tensor<{rows}xf32>" in line  # not folded in
                       for line in program.splitlines())
    result = train(task, [{}], seeds=models, config=TrainConfig(steps=400, lr=0.01, optimizer="adam", elicit_steps=0))
    assert np.abs(result.history("error")[-1]).max() < 0.02
