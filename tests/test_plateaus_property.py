"""The plateau detector on Saxe staircases it was not tuned on (hypothesis).

Saxe, McClelland & Ganguli (2014): a two-layer linear network learning a target with singular
values ``s_1 > … > s_K`` from a small aligned init of strength ``u₀ = ε²`` follows one S-curve
per mode, ``u_k(t) = s_k e^{2 s_k t} / (e^{2 s_k t} − 1 + s_k/u₀)``; the loss
``½ Σ_k (s_k − u_k)²`` is a staircase whose drop ``k`` removes ``½ s_k²``, is half learned at
``t_k = ln(s_k/u₀ − 1) / (2 s_k)`` and falls fastest at ``τ_k = t_k − ln 2 / (2 s_k)``
(:mod:`toylab.theory.saxe`). Jermyn & Shlegeris (2022) read the number and times of these
drops off loss curves; here the curves are drawn at random and the answer is known.

**What counts as a visible drop.** Every mode's drop is at least 1.36 × ``min_drop`` of the
range (consecutive singular values differ by a factor 1.25-1.8, so with three modes the
smallest is ≥ 1/(1 + 1.8² + 1.8⁴) = 6.8% of ``½ Σ s²``), and consecutive drops are
separated: ``τ_{k+1} − τ_k ≥ 1.5 (1/s_k + 1/s_{k+1})``, i.e. 1.5 times the sum of the two
S-curves' time scales ``1/s`` (the detector's own tests use the overlapping ``s = 3, 2`` pair
at ``u₀ = 1e-6``, a factor 1.3). The run lasts until ``τ_K + 4/s_K``, long enough for the last
mode to settle on its final plateau.

**Tolerance.** A drop time must be within ``0.25/s_k`` (a quarter of the mode's time scale)
plus 1% of the run (the detector's grid and smoothing) of ``τ_k``; hence within
``ln 2/(2 s_k)`` more of the half-learned time ``t_k``, which is also checked.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from toylab.metrics.plateaus import find_plateaus
from toylab.theory import saxe

MIN_RATIO, MAX_RATIO = 1.25, 1.8  # consecutive singular values s_k / s_{k+1}
SEPARATION = 1.5  # the gap between steepest points, in units of 1/s_k + 1/s_{k+1}
POINTS = 400  # evaluations, evenly spaced in t


@st.composite
def staircases(draw):
    """(s, u0, noise, seed): a visible, separated Saxe staircase and its noise."""
    modes = draw(st.integers(1, 3), label="modes")
    smallest = draw(st.floats(0.5, 3.0), label="s_K")
    ratios = draw(st.lists(st.floats(MIN_RATIO, MAX_RATIO), min_size=modes - 1, max_size=modes - 1), label="ratios")
    s = smallest * np.cumprod([1.0, *ratios])[::-1]  # (modes,), descending
    u0 = 10.0 ** draw(st.floats(-10.0, -3.0), label="log10 u0")  # ε from 1e-5 to 0.03
    steepest = saxe.steepest_drop_time(s, u0)
    gaps = np.diff(steepest)
    assume(np.all(gaps >= SEPARATION * (1 / s[:-1] + 1 / s[1:])))
    noise = draw(st.sampled_from([0.0, 0.003, 0.01, 0.03]), label="relative noise")
    seed = draw(st.integers(0, 2**16), label="noise seed")
    return s, u0, noise, seed


@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI is stable
    suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
)
@given(staircases())
def test_saxe_staircases_have_one_drop_per_mode_at_the_closed_form_times(case):
    s, u0, noise, seed = case
    steepest = np.atleast_1d(saxe.steepest_drop_time(s, u0))  # τ_k
    half = np.atleast_1d(saxe.drop_time(s, u0))  # t_k
    end = steepest[-1] + 4.0 / s[-1]
    t = np.linspace(0.0, end, POINTS)
    loss = saxe.loss_curve(t, s, u0)
    loss = loss * (1.0 + noise * np.random.default_rng(seed).standard_normal(t.size))

    drops = find_plateaus(t, loss).drops

    found = np.array([d.time for d in drops])
    assert len(drops) == len(s), f"s={s}, u0={u0:.3g}, noise={noise}: drops at {found}, expected {steepest}"
    tolerance = 0.25 / s + 0.01 * end
    assert np.all(np.abs(found - steepest) <= tolerance), (found, steepest, tolerance)
    assert np.all(np.abs(found - half) <= math.log(2) / (2 * s) + tolerance), (found, half)
    sizes = np.array([d.size for d in drops])
    np.testing.assert_allclose(sizes, 0.5 * s**2, rtol=0.25, atol=0.05 * 0.5 * np.sum(s**2))
