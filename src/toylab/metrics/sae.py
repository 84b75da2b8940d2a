"""How good a sparse autoencoder (SAE) is: sparsity, reconstruction, and recovery of known features.

The SAE itself (SAELens' names; Bricken et al. 2023)::

    f  = ReLU(W_enc (h − b_dec) + b_enc)     # latents, (..., d_sae)
    ĥ  = W_dec f + b_dec                     # W_dec: (d_in, d_sae), one unit column per latent

:func:`encode` and :func:`decode` are pure ``jax.numpy`` (the SAE task trains with them). Every
measure below is host-side and takes any array: numpy, JAX, nested lists, or a PyTorch tensor
(duck-typed, never imported), like the other metrics. Directions are columns: ``decoder`` is
``(d_in, d_sae)`` and ``features`` ``(d_in, n_features)``; ``feature_axis=0`` reads rows
instead (SAELens stores ``W_dec`` as ``(d_sae, d_in)``).

Against known features (cosines are signed: a latent's activation is ≥ 0, so a column pointing
away from a feature does not represent it):

* MMCS, mean max cosine similarity (Sharkey et al. 2022, "Taking features out of superposition
  with sparse autoencoders"): ``(1/n) Σ_i max_j cos(F_i, D_j)``; one latent may serve many
  features.
* MCC with one-to-one matching (O'Neill et al. 2024): the features and latents paired by the
  Hungarian algorithm (``scipy.optimize.linear_sum_assignment``) to maximise the summed cosine,
  then ``(1/n) Σ_i cos(F_i, D_π(i))``; a feature left without a latent (``d_sae < n``) adds 0.
  So ``MCC ≤ MMCS``, with equality when each feature's best latent is its own.
* matched features: those whose one-to-one partner has cosine ≥ 0.9.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize
from jaxtyping import Array, Float

from toylab.errors import ConfigError
from toylab.metrics.superposition import checked_weight_matrix

__all__ = ["encode", "decode", "l0", "fraction_of_variance_unexplained", "dead_latents", "cosines", "mmcs",
           "mcc", "match", "matched_features", "spliced_loss_recovered", "rms_norm", "MATCH_THRESHOLD"]

# A true feature is matched by a latent whose decoder column has at least this cosine with it.
MATCH_THRESHOLD = 0.9


def encode(params: Any, h: Float[Array, "batch d_in"], k: Array | int | None = None) -> Float[Array, "batch d_sae"]:
    """Latents ``f = ReLU(W_enc (h − b_dec) + b_enc)``; with ``k``, only each row's ``k`` largest survive.

    ``params`` holds ``W_enc (d_sae, d_in)``, ``b_enc (d_sae,)``, ``b_dec (d_in,)``. ``k`` may be
    traced (a per-instance setting): the threshold is the ``k``-th largest pre-activation, read
    from a sort (Gao et al. 2024's TopK). Ties at the threshold keep all tied latents.
    """
    # W_enc (h − b_dec) + b_enc written as W_enc h + (b_enc − W_enc b_dec): the same function, and
    # the gradient for b_dec is then one matrix-vector product, not a second batch-sized one.
    bias = params["b_enc"] - params["W_enc"] @ params["b_dec"]  # (d_sae,)
    pre = jnp.einsum("sd,bd->bs", params["W_enc"], h) + bias  # (batch, d_sae)
    if k is None:
        return jax.nn.relu(pre)
    d_sae = pre.shape[-1]
    kth_largest = jnp.take(jnp.sort(pre, axis=-1), d_sae - k, axis=-1)  # (batch,)
    return jnp.where(pre >= kth_largest[:, None], jax.nn.relu(pre), 0.0)


def decode(params: Any, f: Float[Array, "batch d_sae"]) -> Float[Array, "batch d_in"]:
    """Reconstruction ``ĥ = W_dec f + b_dec`` (``W_dec``: ``(d_in, d_sae)``)."""
    return jnp.einsum("ds,bs->bd", params["W_dec"], f) + params["b_dec"]


def _rows(values: Any, name: str) -> np.ndarray:
    """Any array as finite float64 numpy of at least 2 axes (``rows × columns``)."""
    if hasattr(values, "detach"):  # PyTorch: possibly on a GPU, requiring grad, bfloat16
        values = values.detach().cpu().float().numpy()
    array = np.asarray(values)
    if array.dtype.kind not in "biuf":
        raise ConfigError(f"{name}: expected real numbers, got dtype {array.dtype}")
    if array.ndim < 2:
        raise ConfigError(f"{name} has shape {array.shape}: expected 2-D (rows, columns)")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise ConfigError(f"{name} of shape {array.shape} contains a NaN or infinite entry")
    return array


def l0(latents: Any) -> float:
    """Mean number of active (non-zero) latents per row: ``E_rows[#{j : f_j ≠ 0}]``.

    >>> l0([[0.0, 1.0, 2.0], [0.0, 0.0, 0.5]])
    1.5
    """
    return float(np.mean(np.sum(_rows(latents, "latents") != 0, axis=-1)))


def rms_norm(activations: Any) -> np.floating:
    """``sqrt(E_rows ‖h − mean h‖²)``: the activations' scale, in which an L1 coefficient is given
    (the penalty ``λ Σ f_j`` grows with ``h``, the squared error with its square). Computed in
    the array's own dtype.

    >>> float(rms_norm([[0.0, 0.0], [6.0, 8.0]]))
    5.0
    """
    h = np.asarray(activations)
    centred = h - h.mean(axis=0)
    return np.sqrt(np.mean(np.sum(centred**2, axis=1)))


def fraction_of_variance_unexplained(activations: Any, reconstruction: Any) -> float:
    """``Σ ‖h − ĥ‖² / Σ ‖h − mean(h)‖²`` over rows: 0 for a perfect reconstruction, 1 for the mean.

    >>> fraction_of_variance_unexplained([[0.0], [2.0]], [[1.0], [1.0]])
    1.0
    """
    h, h_hat = _rows(activations, "activations"), _rows(reconstruction, "reconstruction")
    if h.shape != h_hat.shape:
        raise ConfigError(f"reconstruction has shape {h_hat.shape}, activations {h.shape}: they must match")
    return float(np.sum((h - h_hat) ** 2) / np.sum((h - h.mean(axis=0)) ** 2))


def dead_latents(latents: Any) -> int:
    """Latents that are zero on every row (measure on held-out rows, never trained on).

    >>> dead_latents([[0.0, 1.0, 0.0], [0.0, 0.0, 2.0]])
    1
    """
    return int(np.sum(~np.any(_rows(latents, "latents") != 0, axis=0)))


def cosines(decoder: Any, features: Any, *, feature_axis: int = 1) -> np.ndarray:
    """``cos(F_i, D_j)``, shape ``(n_features, d_sae)``; a zero column has cosine 0 with everything.

    Raises:
      ConfigError: a non-numeric, non-finite or non-2-D input, or dimensions that differ.
    """
    D = np.asarray(checked_weight_matrix(decoder, feature_axis), np.float64)
    F = np.asarray(checked_weight_matrix(features, feature_axis), np.float64)
    if D.ndim != 2 or F.ndim != 2:
        raise ConfigError(f"decoder {D.shape} and features {F.shape}: expected one 2-D matrix each")
    if D.shape[0] != F.shape[0]:
        raise ConfigError(f"features have dimension {F.shape[0]} but the decoder's columns have {D.shape[0]}: "
                          "both must live in the same activation space (check feature_axis)")
    unit = lambda M: M / np.maximum(np.linalg.norm(M, axis=0, keepdims=True), 1e-300)  # noqa: E731
    return unit(F).T @ unit(D)


def mmcs(decoder: Any, features: Any, *, feature_axis: int = 1) -> float:
    """Mean max cosine similarity, ``(1/n) Σ_i max_j cos(F_i, D_j)`` (Sharkey et al. 2022).

    >>> mmcs([[1.0, 0.0], [0.0, 1.0]], [[0.0, 1.0], [1.0, 0.0]])
    1.0
    """
    return float(np.mean(np.max(cosines(decoder, features, feature_axis=feature_axis), axis=1)))


def _one_to_one(cos: np.ndarray) -> np.ndarray:
    """Each feature's cosine with the latent the Hungarian matching gives it; 0 when it gets none."""
    return _hungarian(cos)[1]


def _hungarian(cos: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    rows, columns = scipy.optimize.linear_sum_assignment(cos, maximize=True)
    partner, paired = np.full(cos.shape[0], -1), np.zeros(cos.shape[0])
    partner[rows], paired[rows] = columns, cos[rows, columns]
    return partner, paired


def match(decoder: Any, features: Any, *, feature_axis: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The one-to-one matching behind :func:`mcc`: each feature's latent and their cosine.

    Returns:
      ``(partner, cosine)``, both ``(n_features,)``: the latent index paired with feature ``i``
      (−1 when ``d_sae < n_features`` leaves it none) and their cosine (0 then).

    >>> match([[0.0, 1.0], [1.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]])[0].tolist()
    [1, 0]
    """
    return _hungarian(cosines(decoder, features, feature_axis=feature_axis))


def mcc(decoder: Any, features: Any, *, feature_axis: int = 1) -> float:
    """Mean cosine over a one-to-one matching of features to latents (O'Neill et al. 2024).

    The matching maximises the summed cosine (Hungarian algorithm); features left over when
    ``d_sae < n_features`` add 0. ``mcc ≤ mmcs``.

    >>> mcc([[1.0, 1.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]])  # one feature, repeated
    0.5
    """
    return float(np.mean(_one_to_one(cosines(decoder, features, feature_axis=feature_axis))))


def matched_features(decoder: Any, features: Any, *, threshold: float = MATCH_THRESHOLD,
                     feature_axis: int = 1) -> np.ndarray:
    """Which true features have a latent of their own: one-to-one partner with cosine ≥ ``threshold``.

    Returns:
      Bool array ``(n_features,)``; its sum is the number of matched features.

    >>> matched_features([[1.0, 1.0], [0.0, 0.0]], [[1.0, 0.0], [0.0, 1.0]]).tolist()
    [True, False]
    """
    return _one_to_one(cosines(decoder, features, feature_axis=feature_axis)) >= threshold


def spliced_loss_recovered(model_loss: Any, spliced_loss: Any, ablated_loss: Any) -> Any:
    """``(L_ablated − L_spliced) / (L_ablated − L_model)``, as SAELens defines it.

    ``L_spliced`` is the model's loss with its activations replaced by the SAE's reconstruction;
    ``L_ablated`` with them zeroed (zero ablation) or set to their mean (mean ablation). 1: the
    SAE loses nothing; 0: no better than ablating the layer. Elementwise over arrays.

    >>> spliced_loss_recovered(1.0, 1.5, 3.0)
    0.75
    """
    model, spliced, ablated = (np.asarray(v, np.float64) for v in (model_loss, spliced_loss, ablated_loss))
    result = (ablated - spliced) / (ablated - model)
    return float(result) if result.ndim == 0 else result
