"""The task-agnostic trainer: determinism, batch independence, optimizers, elicitation."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from toylab.tasks import Task, superposition
from toylab.train import TrainConfig, initial_params, learning_rate_schedule, train

SHORT = TrainConfig(steps=60, batch_size=64, elicit_steps=5)
CONFIGS = [{"feature_probability": p, "importance": 0.9} for p in (0.05, 0.3, 1.0)]


def test_same_seed_same_numbers_and_another_seed_differs():
    task = superposition(5, 2)
    a = train(task, CONFIGS, seeds=2, seed=7, config=SHORT)
    b = train(task, CONFIGS, seeds=2, seed=7, config=SHORT)
    c = train(task, CONFIGS, seeds=2, seed=8, config=SHORT)
    np.testing.assert_array_equal(a.params["W"], b.params["W"])
    np.testing.assert_array_equal(a.history("loss"), b.history("loss"))
    assert not np.allclose(a.params["W"], c.params["W"])


def test_an_instance_trained_alone_equals_the_same_instance_in_a_larger_batch():
    task = superposition(5, 2)
    crowd = train(task, CONFIGS, seeds=3, seed=1, config=SHORT)
    # Config 1, seed index 2 is instance 1·3 + 2 = 5 of the crowd.
    alone = train(task, [CONFIGS[1]], seeds=[2], seed=1, config=SHORT)
    np.testing.assert_allclose(alone.params["W"][0], crowd.params["W"][5], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(alone.history("loss")[:, 0], crowd.history("loss")[:, 5], rtol=1e-5)


def test_instances_trained_in_groups_equal_all_at_once(monkeypatch):
    task = superposition(5, 2)
    together = train(task, CONFIGS, seeds=3, seed=1, config=SHORT)  # 9 instances, 2.6 kB each: one group
    from toylab.train import trainer
    per_instance = trainer._instance_bytes(task, CONFIGS[0], SHORT)
    monkeypatch.setattr(trainer, "_GROUP_BYTES", 4 * per_instance)  # groups of 4, 4, then 1
    assert trainer.group_size(9, per_instance) == 4
    grouped = train(task, CONFIGS, seeds=3, seed=1, config=SHORT)
    np.testing.assert_allclose(grouped.params["W"], together.params["W"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(grouped.history("loss"), together.history("loss"), rtol=1e-5)


def test_a_cpu_group_holds_what_fits_its_byte_budget_and_at_least_one_instance():
    from toylab.train import trainer
    per_instance = trainer._instance_bytes(superposition(20, 5), {"feature_probability": 0.1},
                                           TrainConfig(batch_size=1024, elicit_steps=0))
    assert 80 * 1024 <= per_instance < 90 * 1024  # the batch (1024 × 20 floats) and the weights
    assert trainer.group_size(1000, per_instance) == 2 * 2**20 // per_instance
    assert trainer.group_size(10, per_instance) == 10
    assert trainer.group_size(1000, 10 * 2**20) == 1


def test_instances_are_ordered_config_major_and_seeds_are_distinct():
    result = train(superposition(5, 2), CONFIGS[:2], seeds=2, config=SHORT)
    assert [(i.config["feature_probability"], i.seed) for i in result.instances] == [
        (0.05, 0), (0.05, 1), (0.3, 0), (0.3, 1)]
    W = result.params["W"]
    assert not np.allclose(W[0], W[1])


@pytest.mark.parametrize("optimizer", ["adamw", "adam", "sgd"])
@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
def test_every_optimizer_and_schedule_reduces_the_loss(optimizer, schedule):
    lr = 0.1 if optimizer == "sgd" else 1e-2
    config = TrainConfig(steps=200, batch_size=256, optimizer=optimizer, schedule=schedule,
                         lr=lr, warmup_steps=10, elicit_steps=0)
    result = train(superposition(5, 2), [{"feature_probability": 1.0}], config=config)
    loss = result.history("loss")[:, 0]
    assert np.isfinite(loss).all() and loss[-1] < 0.6 * loss[0]


def test_learning_rate_schedules_warm_up_then_decay_to_zero():
    cosine = learning_rate_schedule(TrainConfig(steps=110, lr=2.0, warmup_steps=10, schedule="cosine"))
    assert [float(cosine(t)) for t in (0, 10, 60, 110)] == pytest.approx([0, 2, 1, 0], abs=1e-6)
    constant = learning_rate_schedule(TrainConfig(lr=3e-4))
    assert float(constant(12345)) == pytest.approx(3e-4)


def test_elicitation_refits_only_the_bias_and_never_hurts_much():
    task = superposition(5, 2)
    config = TrainConfig(steps=300, batch_size=256, elicit_steps=100)
    result = train(task, [{"feature_probability": 0.1, "importance": 0.9}], seeds=2, config=config)
    gaps = np.stack([e.elicitation_gap for e in result.evaluations])
    # Early in training the bias is far from its best value for the current W, so refitting it
    # must help; a held-out batch allows a small negative gap only from noise.
    assert gaps[0].min() > 0
    assert gaps.min() > -0.05 * result.history("loss").max()


def test_a_new_task_plugs_in_without_changing_the_trainer():
    """A linear regression task written from scratch trains and converges."""
    target = jnp.array([2.0, -1.0, 0.5])

    def sample(key, hyper, batch_size):
        x = jax.random.normal(key, (batch_size, 3))
        return x, x @ target + hyper["noise"] * jax.random.normal(jax.random.fold_in(key, 1), (batch_size,))

    task = Task(
        name="regression", spec={"d": 3},
        hyper=lambda c: {"noise": np.float32(c["noise"])},
        init=lambda key, hyper: {"w": jnp.zeros(3)},
        sample=sample,
        loss=lambda p, batch, hyper: jnp.mean((batch[0] @ p["w"] - batch[1]) ** 2),
        flops_per_step=lambda batch_size: 18.0 * batch_size,
        metrics=lambda p, hyper, key: {"error": jnp.linalg.norm(p["w"] - target)},
    )
    result = train(task, [{"noise": 0.0}, {"noise": 0.1}],
                   config=TrainConfig(steps=500, batch_size=32, lr=0.05, optimizer="adam", elicit_steps=2))
    assert result.history("error")[-1].max() < 0.05
    assert result.evaluations[-1].flops == 500 * 3 * 6.0 * 32


def test_trainer_results_are_well_shaped_numpy():
    result = train(superposition(6, 3, tied=False), CONFIGS, seeds=2, config=SHORT)
    assert result.params["W"].shape == (6, 3, 6) and result.params["W_dec"].shape == (6, 6, 3)
    assert isinstance(result.params["W"], np.ndarray)
    for evaluation in result.evaluations:
        for values in (*evaluation.raw.values(), *evaluation.elicited.values()):
            assert values.shape == (6,) and np.isfinite(values).all()
    assert result.history("features_per_dimension").shape == (len(result.evaluations), 6)
    with pytest.raises(KeyError, match="no metric 'nonsense'"):
        result.history("nonsense")


def test_initial_params_are_the_weights_training_starts_from():
    task = superposition(5, 2)
    start = initial_params(task, CONFIGS[:2], seeds=2, seed=3)
    one_step = train(task, CONFIGS[:2], seeds=2, seed=3,
                     config=TrainConfig(steps=1, batch_size=8, lr=1e-9, optimizer="sgd", elicit_steps=0))
    np.testing.assert_allclose(start["W"], one_step.params["W"], atol=1e-7)
    assert start["W"].shape == (4, 2, 5)


def test_a_progress_function_hears_the_steps_done_up_to_the_last():
    seen: list[int] = []
    train(superposition(5, 2), CONFIGS[:1], config=SHORT, progress=seen.append)
    assert seen == sorted(seen) and seen[-1] == SHORT.steps and len(seen) >= 2


def _counting_regression_task():
    """A small regression task that counts how often JAX traces its loss (a Python call)."""
    traces = []

    def loss(params, batch, hyper):
        traces.append(1)
        x, y = batch
        return jnp.mean((x @ params["w"] - y) ** 2)

    def sample(key, hyper, batch_size):
        x = jax.random.normal(key, (batch_size, 2))
        return x, x @ jnp.array([1.0, -2.0])

    task = Task(name="counted", spec={}, hyper=lambda c: {"scale": np.float32(1)},
                init=lambda key, hyper: {"w": jnp.zeros(2)}, sample=sample, loss=loss,
                flops_per_step=lambda batch_size: 12.0 * batch_size,
                metrics=lambda p, hyper, key: {}, batch_size=16)
    return task, traces


def test_a_task_trained_again_reuses_its_compiled_functions_and_gives_the_same_numbers():
    task, traces = _counting_regression_task()
    first = train(task, [{}], seeds=3, config=TrainConfig(steps=20, elicit_steps=0))
    traced = len(traces)
    assert traced > 0
    # Another length, other evaluations and other seeds (as many) leave the compiled step as it is.
    again = train(task, [{}], seeds=3, config=TrainConfig(steps=20, elicit_steps=0))
    longer = train(task, [{}], seeds=[5, 6, 7], config=TrainConfig(steps=35, elicit_steps=0, eval_every_steps=7))
    assert len(traces) == traced
    np.testing.assert_array_equal(again.params["w"], first.params["w"])
    # The same numbers as a task compiled afresh (a new object is a new task to the cache).
    fresh = train(task._replace(), [{}], seeds=[5, 6, 7], config=TrainConfig(steps=35, elicit_steps=0,
                                                                          eval_every_steps=7))
    assert len(traces) > traced
    np.testing.assert_array_equal(fresh.params["w"], longer.params["w"])
    # A config the step reads (the learning rate) compiles anew, and trains differently.
    traced = len(traces)
    faster = train(task, [{}], seeds=3, config=TrainConfig(steps=20, elicit_steps=0, lr=0.1))
    assert len(traces) > traced
    assert not np.allclose(faster.params["w"], first.params["w"])


def test_a_factory_called_twice_with_one_spec_returns_one_task():
    assert superposition(5, 2) is superposition(n_features=5, n_hidden=2, tied=True)
    assert superposition(5, 2) is not superposition(5, 3)
    assert superposition(5, 2) is not superposition(5, 2, output="linear")


@pytest.mark.parametrize("schedule", ["constant", "cosine"])
def test_configs_with_one_optimizer_key_step_alike(schedule):
    from toylab.train.optim import make_optimizer, optimizer_key

    base = TrainConfig(steps=50, lr=0.1, schedule=schedule, warmup_steps=5)
    others = [base.model_copy(update=change) for change in
              ({"eval_batches": 9, "elicit_steps": 0, "compute_factor": 2.0, "batch_size": 7},
               {"steps": 80}, {"lr": 0.2}, {"optimizer": "sgd"}, {"warmup_steps": 0})]
    params = {"w": jnp.ones(3)}
    grads = {"w": jnp.array([1.0, -2.0, 3.0])}

    def updates(config):
        optimizer = make_optimizer(config)
        state, out = optimizer.init(params), []
        for _ in range(60):
            update, state = optimizer.update(grads, state, params)
            out.append(update["w"])
        return np.stack(out)

    for other in others:
        same_key = optimizer_key(other) == optimizer_key(base)
        assert same_key == np.array_equal(updates(other), updates(base)), other
    assert optimizer_key(others[0]) == optimizer_key(base)
    assert (optimizer_key(others[1]) == optimizer_key(base)) == (schedule == "constant")
