"""How much of a superposition model's capability we can interpret, feature by feature.

Olah's sketch of interpretability against capability (simple models interpretable, then a
valley, then crisper abstractions) becomes measurable on toy models whose true features are
known, if the vertical axis is *interpretable capability*: a tiny model is fully understood but
does little. For a superposition model (Elhage et al. 2022) with loss
``L = E[(1/n) Σ_i I_i (x_i − x̂_i)²]``:

* capability ``C = L_trivial − L_model``, where ``L_trivial`` is the loss of the best constant
  output (``W = 0`` and the best bias ``b*_i = E[x_i]``). The loss is a sum over features, so
  ``C`` splits exactly into per-feature parts::

      c_i = (I_i / n) (E[(x_i − b*_i)²] − E[(x_i − x̂_i)²]),      Σ_i c_i = C

* interpretable capability ``IC = Σ_{i interpretable} c_i``, with two readings of "interpretable":

  - geometry: feature ``i`` has a dimension of its own, ``D_i ≥ 0.9``
    (:func:`toylab.metrics.feature_dimensionality`);
  - SAE: a sparse autoencoder trained on ``h`` has a latent matched one-to-one to ``W_i`` at
    cosine ≥ 0.9 (:func:`toylab.metrics.sae.match`); and its *splice* variant, the capability
    left when ``h`` is replaced by its reconstruction from the matched latents alone
    (``ĥ = Σ_{j matched} f_j W_dec,j + b_dec``): ``L_trivial − L(ĥ_matched)``.

* the interpretable fraction ``F = IC / C`` for each.

Expectations are means over a sample ``x`` (rows) the caller draws from the model's data
distribution; ``b*`` is the sample mean, so on that sample ``Σ_i c_i = C`` holds to rounding.
Host-side, float64, any array type (numpy, JAX, PyTorch).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from toylab.errors import ConfigError
from toylab.metrics import sae as sae_metrics
from toylab.metrics.superposition import feature_dimensionality, represented

__all__ = ["GEOMETRY_THRESHOLD", "superposition_output", "per_feature_capability", "capability",
           "interpretable_capability"]

# A feature with at least this dimensionality D_i has (nearly) a dimension of its own.
GEOMETRY_THRESHOLD = 0.9


def _array(values: Any, name: str, ndim: int) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().float().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != ndim:
        raise ConfigError(f"{name} has shape {array.shape}: expected {ndim}-D")
    if not np.isfinite(array).all():
        raise ConfigError(f"{name} of shape {array.shape} contains a NaN or infinite entry")
    return array


def superposition_output(W: np.ndarray, b: np.ndarray, h: np.ndarray, *, W_dec: np.ndarray | None = None,
                         relu: bool = True) -> np.ndarray:
    """The superposition model's output from its hidden layer: ``x̂ = ReLU(W_out h + b)``.

    ``W_out = Wᵀ`` (tied, the paper) or ``W_dec`` ``(n_features, d_hidden)``; ``h``: ``(rows, d_hidden)``.
    """
    W_out = W.T if W_dec is None else W_dec  # (n_features, d_hidden)
    pre = h @ W_out.T + b  # (rows, n_features)
    return np.maximum(pre, 0.0) if relu else pre


def per_feature_capability(x: Any, x_hat: Any, importance: Any) -> np.ndarray:
    """``c_i = (I_i/n)(E[(x_i − b*_i)²] − E[(x_i − x̂_i)²])`` with ``b*_i`` the mean of ``x_i``.

    Args:
      x: inputs ``(rows, n_features)``, drawn from the model's data distribution.
      x_hat: the model's outputs on them, same shape.
      importance: ``I``, shape ``(n_features,)``.

    Returns:
      ``(n_features,)``; it sums to ``L_trivial − L_model`` on this sample.

    >>> per_feature_capability([[0.0, 0.0], [2.0, 2.0]], [[0.0, 1.0], [2.0, 1.0]], [1.0, 1.0]).tolist()
    [0.5, 0.0]
    """
    x, x_hat = _array(x, "x", 2), _array(x_hat, "x_hat", 2)
    importance = _array(importance, "importance", 1)
    if x.shape != x_hat.shape or importance.shape != x.shape[1:]:
        raise ConfigError(f"x {x.shape}, x_hat {x_hat.shape} and importance {importance.shape} must agree "
                          "on n_features")
    n = x.shape[1]
    trivial = np.mean((x - x.mean(axis=0)) ** 2, axis=0)  # best constant output: the mean
    model = np.mean((x - x_hat) ** 2, axis=0)
    return importance / n * (trivial - model)


def capability(x: Any, x_hat: Any, importance: Any) -> float:
    """``C = L_trivial − L_model = Σ_i c_i`` (see :func:`per_feature_capability`)."""
    return float(np.sum(per_feature_capability(x, x_hat, importance)))


def interpretable_capability(
    W: Any,
    b: Any,
    x: Any,
    importance: Any,
    *,
    W_dec: Any = None,
    relu: bool = True,
    sae: dict[str, Any] | None = None,
    k: int | None = None,
    threshold: float = sae_metrics.MATCH_THRESHOLD,
    geometry_threshold: float = GEOMETRY_THRESHOLD,
) -> dict[str, Any]:
    """Capability and interpretable capability of one superposition model, by both definitions.

    Args:
      W: the model's encoder ``(d_hidden, n_features)``; ``h = W x``.
      b: its output bias ``(n_features,)``.
      x: a sample of inputs ``(rows, n_features)`` from its data distribution.
      importance: ``I`` ``(n_features,)``.
      W_dec: the untied model's decoder ``(n_features, d_hidden)``; ``None`` for tied (``Wᵀ``).
      relu: whether the model's output has the ReLU (the paper's model does).
      sae: an SAE trained on this model's ``h`` (``W_enc, b_enc, W_dec, b_dec``, see
        :mod:`toylab.metrics.sae`), or ``None`` to report the geometric definition alone.
      k: the SAE's TopK ``k``; ``None`` for a ReLU (L1) SAE.
      threshold: cosine at which an SAE latent matches a true feature.
      geometry_threshold: ``D_i`` at which a feature counts as having a dimension of its own.

    Returns:
      ``capability`` (C), ``per_feature`` (c_i), ``loss_model``, ``loss_trivial``,
      ``interpretable_capability`` and ``fraction`` (each ``{"geometry", "sae", "sae_splice"}``;
      the SAE's are ``None`` without an SAE), ``geometric_features`` (bool per feature), and
      with an SAE: ``matched_features`` (bool per feature) and ``sae`` (``l0``, ``fvu``,
      ``dead_latents``, ``mmcs`` and ``mcc`` over the represented features,
      ``spliced_loss_recovered`` ``{"zero", "mean"}``).
    """
    W, b, x = _array(W, "W", 2), _array(b, "b", 1), _array(x, "x", 2)
    importance = _array(importance, "importance", 1)
    W_dec = None if W_dec is None else _array(W_dec, "W_dec", 2)
    if x.shape[1] != W.shape[1]:
        raise ConfigError(f"x has {x.shape[1]} features, W {W.shape} has {W.shape[1]}")
    output = lambda h: superposition_output(W, b, h, W_dec=W_dec, relu=relu)  # noqa: E731
    loss = lambda x_hat: float(np.mean(importance * (x - x_hat) ** 2))  # noqa: E731

    h = x @ W.T  # (rows, d_hidden)
    x_hat = output(h)
    c = per_feature_capability(x, x_hat, importance)
    C = float(c.sum())
    geometric = np.asarray(feature_dimensionality(W)) >= geometry_threshold
    ic = {"geometry": float(c[geometric].sum()), "sae": None, "sae_splice": None}
    report: dict[str, Any] = {
        "capability": C, "per_feature": c, "loss_model": loss(x_hat),
        "loss_trivial": loss(np.broadcast_to(x.mean(axis=0), x.shape)),
        "geometric_features": geometric,
    }
    if sae is not None:
        params = {name: np.asarray(value, np.float64) for name, value in sae.items()}
        latents = np.asarray(sae_metrics.encode(params, h, k), np.float64)  # (rows, d_sae)
        h_sae = np.asarray(sae_metrics.decode(params, latents), np.float64)
        partner, cosine = sae_metrics.match(params["W_dec"], W)
        matched = cosine >= threshold
        ic["sae"] = float(c[matched].sum())
        # The splice variant: h rebuilt from the matched latents alone (and the decoder bias).
        keep = np.zeros(latents.shape[1], bool)
        keep[partner[matched]] = True
        h_matched = np.asarray(sae_metrics.decode(params, np.where(keep, latents, 0.0)), np.float64)
        ic["sae_splice"] = float(per_feature_capability(x, output(h_matched), importance).sum())
        kept = np.asarray(represented(W))  # MMCS and MCC over the features the model represents
        L_model, L_spliced = loss(x_hat), loss(output(h_sae))
        report["matched_features"] = matched
        report["sae"] = {
            "l0": sae_metrics.l0(latents),
            "fvu": sae_metrics.fraction_of_variance_unexplained(h, h_sae),
            "dead_latents": sae_metrics.dead_latents(latents),
            "matched": int(matched.sum()),
            "mmcs": sae_metrics.mmcs(params["W_dec"], W[:, kept]) if kept.any() else None,
            "mcc": sae_metrics.mcc(params["W_dec"], W[:, kept]) if kept.any() else None,
            "spliced_loss_recovered": {
                "zero": sae_metrics.spliced_loss_recovered(L_model, L_spliced, loss(output(np.zeros_like(h)))),
                "mean": sae_metrics.spliced_loss_recovered(
                    L_model, L_spliced, loss(output(np.broadcast_to(h.mean(axis=0), h.shape)))),
            },
        }
    report["interpretable_capability"] = ic
    report["fraction"] = {name: (None if value is None else (value / C if C > 0 else None))
                          for name, value in ic.items()}
    return report
