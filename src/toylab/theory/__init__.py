"""Closed-form theory that the toy models are checked against.

- :mod:`toylab.theory.saxe`: exact gradient-flow dynamics of deep linear networks (Saxe,
  McClelland & Ganguli 2014), the S-curves and loss staircase of Jermyn & Shlegeris (2022).
- :mod:`toylab.theory.phases`: expected losses of the n = 2, m = 1 superposition model's three
  candidate solutions, and the phase boundaries they imply (Elhage et al. 2022, §4).
- :mod:`toylab.theory.myopia`: value iteration on the epoch-shutdown MDP, the
  myopic and far-sighted optima the learners are held to.
"""

from toylab.theory import myopia, phases, saxe
from toylab.theory.saxe import (
    drop_sizes,
    drop_time,
    loss_curve,
    loss_levels,
    mode_strength,
    steepest_drop_time,
)

__all__ = ["myopia", "phases", "saxe", "mode_strength", "drop_time", "steepest_drop_time", "loss_curve", "loss_levels",
           "drop_sizes"]
