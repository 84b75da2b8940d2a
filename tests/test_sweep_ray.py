"""The Ray backend on a real local Ray instance: same results as local, retries, failures."""

import os
from pathlib import Path

import pytest
import ray  # the ray extra, which `make test` installs: missing, these tests fail

from conftest import COORDINATOR

from toylab import sweeps
from toylab.sweeps import registry
from toylab.tasks import superposition

SPEC = dict(task="superposition", task_params={"n_features": 5, "n_hidden": 2},
            axes={"feature_probability": [0.05, 0.2, 0.5, 1.0]}, seeds=2,
            train={"steps": 200, "batch_size": 64, "elicit_steps": 5})
# One Ray for the session (see conftest); starting it and its workers makes these slow.
pytestmark = [pytest.mark.usefixtures("local_ray"), pytest.mark.slow]


def test_ray_gives_the_same_results_as_local(tmp_path):
    from test_sweep import store_rows

    spec = sweeps.SweepSpec(**SPEC)
    on_ray = sweeps.run(spec, store=tmp_path / "ray.sqlite", backend="ray", chunk_size=4, progress=False)
    local = sweeps.run(spec, store=tmp_path / "local.sqlite", chunk_size=4, progress=False)
    assert (on_ray.done, on_ray.chunks) == (local.done, local.chunks) == (8, 2)
    assert store_rows(tmp_path / "ray.sqlite") == store_rows(tmp_path / "local.sqlite")


def crashes_once(marker: str, **params):
    """The superposition task, but the first worker to build it dies (a crashed Ray worker)."""
    if os.environ.get(COORDINATOR) != str(os.getpid()) and not os.path.exists(marker):
        Path(marker).touch()
        os._exit(1)
    return superposition(**params)


def always_fails(**params):
    """A task that cannot be built anywhere but in the coordinator (a chunk that always fails)."""
    if os.environ.get(COORDINATOR) != str(os.getpid()):
        raise RuntimeError("no such hardware here")
    return superposition(**params)


@pytest.fixture
def own_registry(monkeypatch):
    """Tasks registered by a test stay in that test."""
    monkeypatch.setattr(registry, "_FACTORIES", {**registry._FACTORIES})


def test_a_crashed_worker_is_retried_and_the_sweep_finishes(tmp_path, own_registry):
    sweeps.register_task("crashes_once", crashes_once)
    spec = sweeps.SweepSpec(**{**SPEC, "task": "crashes_once",
                               "task_params": {**SPEC["task_params"], "marker": str(tmp_path / "crashed")}})
    summary = sweeps.run(spec, store=tmp_path / "s.sqlite", backend="ray", chunk_size=8, progress=False)
    assert (tmp_path / "crashed").exists()
    assert (summary.done, summary.failed, summary.failures) == (8, 0, [])
    import toylab

    assert list(toylab.load(tmp_path / "s.sqlite").runs["attempts"]) == [2] * 8


def test_a_chunk_failing_every_attempt_is_marked_failed_with_the_reason(tmp_path, own_registry):
    sweeps.register_task("always_fails", always_fails)
    spec = sweeps.SweepSpec(**{**SPEC, "task": "always_fails"})
    summary = sweeps.run(spec, store=tmp_path / "s.sqlite", backend="ray", chunk_size=8, max_attempts=2,
                         progress=False)
    assert (summary.done, summary.failed) == (0, 8)
    assert summary.failures == ["chunk 0 failed 2 times on Ray; last: RuntimeError: no such hardware here"]
