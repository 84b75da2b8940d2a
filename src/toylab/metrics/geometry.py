"""Which features share a subspace, and which polytope they form.

Elhage et al. (2022), "Toy Models of Superposition", §6 "The Geometry of Superposition"
(https://transformer-circuits.pub/2022/toy_model): in trained autoencoders the represented
features split into groups that live in orthogonal subspaces, and each group is a regular
polytope whose features all share one dimensionality ``D_i = dims / k``.

Host-side (numpy), for one trained matrix at a time: the result is a list of Python objects
meant for tables, figures and JSON, not for ``jax.jit``.

Algorithm, for ``W`` of shape ``(d_hidden, n_features)``:

1. Features failing :func:`~toylab.metrics.represented` form one "not represented" group.
2. The represented ones are joined by an edge when their directions overlap,
   ``|Ŵ_i · Ŵ_j| > overlap_threshold``; each connected component is a group.
3. A group's ``dims`` is the numerical rank of its unit columns; ``k`` its size.
4. It is named after the polytope ``(k, dims)`` when every ``D_i`` in it is within ``tol`` of
   ``dims / k``, and "other" otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from toylab.errors import ConfigError
from toylab.metrics.superposition import (
    REPRESENTED_THRESHOLD,
    as_weight_matrix,
    feature_dimensionality,
    represented,
)

__all__ = [
    "POLYTOPES",
    "NOT_REPRESENTED",
    "OTHER",
    "OVERLAP_THRESHOLD",
    "RANK_TOLERANCE",
    "D_TOLERANCE",
    "FeatureGroup",
    "geometry",
    "describe",
    "describe_dicts",
]

# (k features, dims) -> name; each has D_i = dims/k for every member (Elhage et al. 2022, §6).
POLYTOPES: Mapping[tuple[int, int], str] = {
    (1, 1): "dedicated",
    (2, 1): "digon",
    (3, 2): "triangle",
    (4, 3): "tetrahedron",
    (5, 2): "pentagon",
    (8, 3): "square antiprism",
}
NOT_REPRESENTED = "not represented"
OTHER = "other"

# Two features share a subspace when |cos| between their directions exceeds this. The
# polytopes' overlaps are all far above it: digon 1, triangle 1/2, tetrahedron 1/3, pentagon
# 0.309 and 0.809, square antiprism (tight frame) 1/3 and 0.805 and, smallest, (√2 − 1)/3 ≈ 0.138.
# Features in orthogonal subspaces of trained autoencoders have |cos| < 0.05, so 0.1 separates
# them with a factor of 2 either side. Connectivity needs only a spanning tree of edges, so a
# group stays whole even if its smallest overlaps drift below the threshold.
OVERLAP_THRESHOLD = 0.1

# A group's dims count the singular values of its unit columns above this fraction of the
# largest. A regular polytope is a tight frame, so its nonzero singular values are all equal
# (√(k/dims)); 0.1 ignores an out-of-subspace tilt of up to ~6° per feature from imperfect
# training while keeping any genuine extra dimension, whose singular value is ≥ ~1/√k · s_max.
RANK_TOLERANCE = 0.1

# How close each D_i must be to dims/k for a group to get a polytope's name. Trained polytopes
# come within ~0.01; a lopsided group misses by far more (a "digon" whose partner has norm 0.4
# has D = 0.86 and 0.14, not 1/2), and it must be reported as "other", not as a polytope.
D_TOLERANCE = 0.05


@dataclasses.dataclass(frozen=True)
class FeatureGroup:
    """A set of features that share a subspace, and what they form there.

    Attributes:
      features: the feature (column) indices, ascending.
      dims: dimensions they span (numerical rank); 0 for "not represented".
      name: a key of :data:`POLYTOPES`' values, "other" or "not represented".
      D: per-feature dimensionality: the exact ``dims / k`` for a named polytope, the measured
        mean of ``D_i`` over the group for "other", 0 for "not represented".
    """

    features: tuple[int, ...]
    dims: int
    name: str
    D: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: ``{"features": [...], "dims": int, "name": str, "D": float}``."""
        return {
            "features": [int(i) for i in self.features],
            "dims": int(self.dims),
            "name": str(self.name),
            "D": float(self.D),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureGroup:
        """The inverse of :meth:`to_dict`, e.g. for groups read back from a run's JSON."""
        return cls(tuple(int(i) for i in data["features"]), int(data["dims"]), str(data["name"]), float(data["D"]))


def geometry(
    W: Any,
    *,
    norm_threshold: float = REPRESENTED_THRESHOLD,
    overlap_threshold: float = OVERLAP_THRESHOLD,
    rank_tolerance: float = RANK_TOLERANCE,
    tol: float = D_TOLERANCE,
) -> list[FeatureGroup]:
    """Split one weight matrix's features into groups and name each group's polytope.

    A group of ``k`` features spanning ``dims`` dimensions is named from :data:`POLYTOPES` when
    ``(k, dims)`` is there and every member has ``|D_i − dims/k| ≤ tol``:

    ============  ===  ====  =========
    name          k    dims  D = dims/k
    ============  ===  ====  =========
    dedicated     1    1     1
    digon         2    1     1/2
    triangle      3    2     2/3
    tetrahedron   4    3     3/4
    pentagon      5    2     2/5
    sq. antiprism 8    3     3/8
    ============  ===  ====  =========

    Args:
      W: one weight matrix, shape ``(d_hidden, n_features)``, any array-like
        (see :func:`~toylab.metrics.as_weight_matrix`).
      norm_threshold: passed to :func:`~toylab.metrics.represented`.
      overlap_threshold: ``|Ŵ_i · Ŵ_j|`` above which two features share a group.
      rank_tolerance: singular values of a group's unit columns above this fraction of the
        largest count as dimensions.
      tol: allowed distance of each ``D_i`` from ``dims / k`` for a polytope's name.

    Returns:
      Groups ordered by their smallest feature index, "not represented" (if any) last.

    Reference:
      Elhage et al. (2022), "Toy Models of Superposition", §6 "The Geometry of Superposition".

    Example:
      >>> import numpy as np
      >>> angles = 2 * np.pi * np.arange(5) / 5
      >>> W = np.stack([np.cos(angles), np.sin(angles)])  # (d_hidden=2, n_features=5)
      >>> [g.to_dict() for g in geometry(W)]
      [{'features': [0, 1, 2, 3, 4], 'dims': 2, 'name': 'pentagon', 'D': 0.4}]
    """
    for label, value in (("overlap_threshold", overlap_threshold), ("rank_tolerance", rank_tolerance), ("tol", tol)):
        if not 0.0 <= value <= 1.0:
            raise ConfigError(f"{label}={value!r}: expected a number in [0, 1]")
    w = as_weight_matrix(W)
    if w.ndim != 2:
        raise ConfigError(
            f"geometry takes one 2-D weight matrix (d_hidden, n_features), got shape {w.shape}; "
            "index the leading axes, e.g. geometry(W[i])"
        )
    D = np.asarray(feature_dimensionality(w), dtype=np.float64)  # (n_features,)
    kept = np.asarray(represented(w, norm_threshold))  # (n_features,)
    w64 = np.asarray(w, dtype=np.float64)  # (d_hidden, n_features)
    # Kept features have norm > 1e-6, so the division is safe.
    w_hat = w64[:, kept] / np.linalg.norm(w64[:, kept], axis=0)  # (d_hidden, n_kept)
    indices = np.flatnonzero(kept)  # position in w_hat -> feature index

    # 2. Connected components of the overlap graph, visiting features in index order so that
    #    components come out ordered by their smallest feature.
    adjacent = np.abs(w_hat.T @ w_hat) > overlap_threshold  # (n_kept, n_kept)
    groups: list[FeatureGroup] = []
    unvisited = set(range(len(indices)))
    for start in range(len(indices)):
        if start not in unvisited:
            continue
        component, frontier = [], [start]
        unvisited.discard(start)
        while frontier:
            node = frontier.pop()
            component.append(node)
            for neighbour in np.flatnonzero(adjacent[node]):
                if int(neighbour) in unvisited:
                    unvisited.discard(int(neighbour))
                    frontier.append(int(neighbour))
        members = sorted(component)
        groups.append(_name_group(indices[members], w_hat[:, members], D[indices[members]], rank_tolerance, tol))

    dropped = np.flatnonzero(~kept)
    if dropped.size:
        groups.append(FeatureGroup(tuple(int(i) for i in dropped), 0, NOT_REPRESENTED, 0.0))
    return groups


def describe(groups: Iterable[FeatureGroup]) -> str:
    """A one-line summary of :func:`geometry`'s groups, for tables and figure titles.

    Groups with the same name are counted together in order of first appearance:
    dedicated features as ``"2×dedicated"``, dropped ones as ``"1 not represented"``, and
    multi-feature groups with their members, ``"pentagon{0,1,2,3,4}"`` or
    ``"2×digon{0,1}{2,3}"``.

    Args:
      groups: the output of :func:`geometry`.

    Returns:
      The summary; ``"no features"`` for an empty list.

    Example:
      >>> describe([FeatureGroup((0,), 1, "dedicated", 1.0), FeatureGroup((2,), 1, "dedicated", 1.0),
      ...           FeatureGroup((1,), 0, "not represented", 0.0)])
      '2×dedicated, 1 not represented'
    """
    by_name: dict[str, list[FeatureGroup]] = {}
    for group in groups:
        by_name.setdefault(group.name, []).append(group)
    parts = []
    for name, same in by_name.items():
        if name == NOT_REPRESENTED:
            parts.append(f"{sum(len(g.features) for g in same)} {name}")
        elif name == POLYTOPES[(1, 1)]:
            parts.append(f"{len(same)}×{name}")
        else:
            count = f"{len(same)}×" if len(same) > 1 else ""
            members = "".join("{" + ",".join(str(i) for i in g.features) + "}" for g in same)
            parts.append(f"{count}{name}{members}")
    return ", ".join(parts) if parts else "no features"


def describe_dicts(groups: Iterable[Mapping[str, Any]]) -> str:
    """:func:`describe` for groups stored as :meth:`FeatureGroup.to_dict` dictionaries.

    Example:
      >>> describe_dicts([{"features": [0, 1], "dims": 1, "name": "digon", "D": 0.5}])
      'digon{0,1}'
    """
    return describe(FeatureGroup.from_dict(group) for group in groups)


def _name_group(
    features: Sequence[int] | np.ndarray,
    w_hat: np.ndarray,  # (d_hidden, k): the group's unit columns
    D: np.ndarray,  # (k,)
    rank_tolerance: float,
    tol: float,
) -> FeatureGroup:
    """Steps 3–4: the group's rank and, if it is a polytope, its name."""
    k = len(features)
    singular = np.linalg.svd(w_hat, compute_uv=False)
    dims = int(np.sum(singular > rank_tolerance * singular[0]))
    features = tuple(int(i) for i in features)
    name = POLYTOPES.get((k, dims))
    if name is not None and np.all(np.abs(D - dims / k) <= tol):
        return FeatureGroup(features, dims, name, dims / k)
    return FeatureGroup(features, dims, OTHER, float(np.mean(D)))
