"""What a multi-component model has learned of a matrix target, mode by mode.

For a target ``C = U diag(s) Vᵀ`` and a learned ``Z`` (both d×d), mode k's learned *strength*
is ``u_k = u_kᵀ Z v_k`` (Saxe et al. 2014): ``s_k`` once the mode is learned, ≈ 0 before its
S-curve. The functions here are jittable and work on one matrix; ``vmap`` them for many.
:func:`find_bumps` reads a whole history on the host.

References: Jermyn & Shlegeris (2022), "Multi-Component Learning and S-Curves"; Saxe,
McClelland & Ganguli (2014), "Exact solutions to the nonlinear dynamics of learning in deep
linear neural networks".
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool, Float

__all__ = ["mode_strengths", "mode_alignment", "orthogonal_norm", "direction_overlaps",
           "Bump", "find_bumps"]


def mode_strengths(
    Z: Float[ArrayLike, "d d"], U: Float[ArrayLike, "d modes"], V: Float[ArrayLike, "d modes"]
) -> Float[Array, " modes"]:
    """Learned strength of each target mode, ``u_k = U[:, k]ᵀ Z V[:, k]``.

    >>> import numpy as np
    >>> I = np.eye(3)
    >>> mode_strengths(np.diag([3.0, 2.0, 0.5]), I, I).tolist()
    [3.0, 2.0, 0.5]
    """
    return jnp.einsum("ik,ij,jk->k", U, Z, V)


def mode_alignment(
    Z: Float[ArrayLike, "d d"], U: Float[ArrayLike, "d modes"], V: Float[ArrayLike, "d modes"]
) -> Float[Array, " modes"]:
    """Cosine between what Z does to a mode's input direction and that mode's output direction.

    .. math:: a_k = \\frac{u_k^\\top Z v_k}{\\lVert Z v_k \\rVert}

    1 when Z maps ``v_k`` onto ``u_k`` (whatever the strength), ≈ 0 when the image of ``v_k``
    points elsewhere, e.g. towards another mode whose learned vector captured it. Defined as 0
    where ``Z v_k = 0``.

    >>> import numpy as np
    >>> mode_alignment(np.array([[0.0, 1.0], [2.0, 0.0]]), np.eye(2), np.eye(2)).tolist()
    [0.0, 0.0]
    """
    image = jnp.einsum("ij,jk->ik", Z, V)  # (d, modes): Z v_k
    norm = jnp.linalg.norm(image, axis=0)
    safe = jnp.where(norm > 0, norm, 1.0)
    return jnp.where(norm > 0, jnp.einsum("ik,ik->k", U, image) / safe, 0.0)


def orthogonal_norm(
    Z: Float[ArrayLike, "d d"], U: Float[ArrayLike, "d d"], V: Float[ArrayLike, "d d"],
    in_target: Bool[ArrayLike, " d"],
) -> Float[Array, ""]:
    """Frobenius norm of the part of Z outside the target's row and column spaces.

    .. math:: \\lVert Z - P_U Z P_V \\rVert_F, \\quad P_U = U_r U_r^\\top,\\ P_V = V_r V_r^\\top

    with ``U_r, V_r`` the singular vectors of the target's non-zero modes (``in_target``). From
    a random init this part first decays (the norm-decay phase) while the modes are still on
    their plateau.

    >>> import numpy as np
    >>> float(orthogonal_norm(np.diag([1.0, 5.0]), np.eye(2), np.eye(2), np.array([True, False])))
    5.0
    """
    mask = jnp.asarray(in_target, dtype=jnp.result_type(U))
    P_U = jnp.einsum("ik,k,jk->ij", U, mask, U)
    P_V = jnp.einsum("ik,k,jk->ij", V, mask, V)
    return jnp.linalg.norm(Z - P_U @ Z @ P_V)


def direction_overlaps(
    vectors: Float[ArrayLike, "d learned"], U_top: Float[ArrayLike, "d modes"]
) -> Float[Array, "learned modes"]:
    r"""|cosine| between learned vectors and target directions.

    .. math:: O_{jk} = \frac{|a_j^\top u_k|}{\lVert a_j \rVert}

    For the product ``Z = F_1 ⋯ F_N`` the learned vectors are the columns of ``F_1``, the
    output vectors the model combines. Two learned vectors that first grow towards the same
    target direction compete: one of them later turns to another direction, and its overlap
    rises and then falls (a "bump", :func:`find_bumps`). A zero vector has overlap 0.

    >>> import numpy as np
    >>> overlaps = direction_overlaps(np.array([[2.0, 1.0], [0.0, 1.0]]), np.eye(2))
    >>> np.asarray(overlaps, dtype=np.float64).round(3).tolist()
    [[1.0, 0.0], [0.707, 0.707]]
    """
    norms = jnp.linalg.norm(vectors, axis=0)
    safe = jnp.where(norms > 0, norms, 1.0)
    return jnp.abs(jnp.einsum("ij,ik->jk", vectors, U_top)) / safe[:, None]


@dataclasses.dataclass(frozen=True)
class Bump:
    """A non-monotone alignment: learned direction ``learned`` rose towards target ``mode`` by
    at least the threshold, peaked at ``time``, then fell by at least the threshold."""

    learned: int
    mode: int
    time: float
    rise: float
    fall: float

    def to_dict(self) -> dict[str, Any]:
        return {"learned": self.learned, "mode": self.mode, "time": self.time,
                "rise": self.rise, "fall": self.fall}


def find_bumps(
    t: Float[ArrayLike, " evals"], overlaps: Float[ArrayLike, "evals learned modes"],
    *, threshold: float = 0.3,
) -> list[Bump]:
    """Non-monotone alignment histories: a rise of ≥ ``threshold`` to a peak, then a fall of ≥
    ``threshold`` (both in |cosine|, so 0.3 is a large, unambiguous swing).

    For each (learned j, mode k) series the peak that maximises min(rise, fall) is reported,
    with rise measured from the lowest value before it and fall to the lowest value after it.

    >>> t = np.arange(5.0)
    >>> history = np.array([0.1, 0.6, 0.9, 0.4, 0.1])[:, None, None]
    >>> find_bumps(t, history)
    [Bump(learned=0, mode=0, time=2.0, rise=0.8, fall=0.8)]
    """
    t = np.asarray(t, dtype=np.float64)
    overlaps = np.asarray(overlaps, dtype=np.float64)
    lowest_before = np.minimum.accumulate(overlaps, axis=0)
    lowest_after = np.minimum.accumulate(overlaps[::-1], axis=0)[::-1]
    rise, fall = overlaps - lowest_before, overlaps - lowest_after
    swing = np.minimum(rise, fall)  # (evals, learned, modes)
    bumps = []
    for j, k in zip(*np.nonzero(swing.max(axis=0) >= threshold), strict=True):
        peak = int(np.argmax(swing[:, j, k]))
        bumps.append(Bump(int(j), int(k), float(t[peak]), round(float(rise[peak, j, k]), 6),
                          round(float(fall[peak, j, k]), 6)))
    return bumps
