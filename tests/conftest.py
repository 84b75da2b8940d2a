"""Test-session settings and the fixtures several test modules share."""

import os
import warnings
from pathlib import Path

import jax
import matplotlib
import pytest

matplotlib.use("Agg")

# Many tests train the same small programs; XLA's persistent cache compiles each once per
# machine instead of once per test (about 1–2 s each on 2 cores).
jax.config.update("jax_compilation_cache_dir", str(Path(__file__).parent.parent / ".jax_cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


@pytest.fixture(scope="module")
def strict_promotion():
    """Strict rank and dtype promotion for a whole module (``pytestmark = usefixtures(...)``).

    Module-scoped so that hypothesis tests run under it too (equinox's test practice).
    """
    with jax.numpy_rank_promotion("raise"), jax.numpy_dtype_promotion("strict"):
        yield


# Set in the test process and inherited by Ray's workers: a task factory can tell where it runs.
COORDINATOR = "TOYLAB_TEST_COORDINATOR_PID"


@pytest.fixture(scope="session")
def local_ray():
    """One local Ray instance for the whole session: starting one takes ~5 s on 2 cores.

    Its workers import the toylab under test (not another install of it) and the test modules
    (for factories that tests register), so both folders go on their path.
    """
    import ray  # the ray extra, which `make test` installs; only the Ray tests need it

    import toylab

    tests = Path(__file__).parent
    os.environ[COORDINATOR] = str(os.getpid())
    path = os.pathsep.join([str(tests), str(Path(toylab.__file__).parent.parent)])
    with warnings.catch_warnings():  # Ray's fork + exec of its node processes: see sweeps.backends.ray
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield
    ray.shutdown()
