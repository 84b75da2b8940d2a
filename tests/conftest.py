"""Test-session settings."""

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
