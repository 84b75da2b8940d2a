"""toylab's XLA setting: Eigen for lone CPU dots, added before JAX starts, never over a user's own."""

import os
import subprocess
import sys

from toylab import _xla


def test_the_setting_is_added_to_empty_flags_and_kept_beside_others(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert _xla.prefer_eigen_dots()
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type=-individual_dot"
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    assert _xla.prefer_eigen_dots()
    assert os.environ["XLA_FLAGS"].split() == ["--xla_force_host_platform_device_count=2",
                                               "--xla_cpu_experimental_ynn_fusion_type=-individual_dot"]


def test_a_users_own_ynnpack_setting_wins_and_an_older_jaxlib_gets_nothing(monkeypatch):
    monkeypatch.setenv("XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=")
    assert not _xla.prefer_eigen_dots()
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_experimental_ynn_fusion_type="
    monkeypatch.delenv("XLA_FLAGS")
    monkeypatch.setattr(_xla, "_jaxlib_version", lambda: (0, 9))
    assert not _xla.prefer_eigen_dots()
    assert "XLA_FLAGS" not in os.environ


def test_the_installed_jaxlib_accepts_the_setting_and_no_lone_dot_goes_to_ynnpack():
    # A flag XLA does not know aborts the process when its first backend starts.
    program = """
import os, toylab, jax, jax.numpy as jnp
assert "-individual_dot" in os.environ["XLA_FLAGS"], os.environ["XLA_FLAGS"]
w, x = jnp.ones((8, 5, 20)), jnp.ones((8, 64, 20))
hlo = jax.jit(lambda w, x: jnp.einsum("ihf,ibf->ibh", w, x)).lower(w, x).compile().as_text()
print("ynn" in hlo, float(jnp.einsum("ihf,ibf->ibh", w, x).sum()))
"""
    env = {key: value for key, value in os.environ.items() if key != "XLA_FLAGS"}
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", str(8 * 5 * 64 * 20.0)]
