"""Test-session settings."""

from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")

# Many tests train the same small programs; XLA's persistent cache compiles each once per
# machine instead of once per test (about 1–2 s each on 2 cores).
jax.config.update("jax_compilation_cache_dir", str(Path(__file__).parent.parent / ".jax_cache"))
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
