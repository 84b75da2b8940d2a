"""XLA settings toylab applies before JAX starts, each one measured on toylab's own workloads.

``--xla_cpu_experimental_ynn_fusion_type=-individual_dot``: XLA's CPU backend (jaxlib ≥ 0.10)
hands every lone dot to YNNPACK by default; for the many tiny products of models trained side
by side, Eigen's are faster. Measured on 2 cores, side by side (jaxlib 0.10.2): 1000
superposition models at n = 20, m = 5, 1.37× the model-steps/s; 20 at n = 100, m = 20, 1.28×;
64 rank-10 S-curve runs at d = 100 within noise (0.9–1.0×). YNNPACK still runs the fusions
it forms with other operations.

The flag is added to ``XLA_FLAGS`` only when it names no YNNPACK setting of its own (a user's
choice wins) and only for a jaxlib that knows the flag (an older one refuses an unknown flag).
It takes effect if JAX's backend has not started yet, as when toylab is imported first or runs
as the ``toylab`` command; processes spawned later inherit it.
"""

from __future__ import annotations

import importlib.util
import os
import re
from pathlib import Path

_YNN_SETTING = "xla_cpu_experimental_ynn_fusion_type"
_EIGEN_DOTS = f"--{_YNN_SETTING}=-individual_dot"
_FIRST_JAXLIB_WITH_IT = (0, 10)


def prefer_eigen_dots() -> bool:
    """Add :data:`_EIGEN_DOTS` to ``XLA_FLAGS`` where it applies; True when it was added."""
    flags = os.environ.get("XLA_FLAGS", "")
    if _YNN_SETTING in flags or _jaxlib_version() < _FIRST_JAXLIB_WITH_IT:
        return False
    os.environ["XLA_FLAGS"] = f"{flags} {_EIGEN_DOTS}".strip()
    return True


def _jaxlib_version() -> tuple[int, ...]:
    # Read from jaxlib/version.py, not importlib.metadata (70 ms, a tenth of `toylab --help`).
    spec = importlib.util.find_spec("jaxlib")
    if spec is None or not spec.submodule_search_locations:
        return (0,)
    try:
        text = (Path(next(iter(spec.submodule_search_locations))) / "version.py").read_text(encoding="utf-8")
    except OSError:
        return (0,)
    found = re.search(r'^_version\s*=\s*"(\d+)\.(\d+)', text, re.MULTILINE)
    return (int(found[1]), int(found[2])) if found else (0,)
