"""A worked task: sparse autoencoders on a fixed array of activations whose features are known.

The activations stand in for a toy model's hidden layer: ``n_features`` sparse features, each
a random unit direction ``dᵢ`` in ``d_in`` dimensions (more features than dimensions, so they
are in superposition), on with probability ``p`` and then of magnitude ``U[0, 1)``::

    x = Σᵢ cᵢ dᵢ,     cᵢ = 0 w.p. 1 − p, else cᵢ ~ U[0, 1)

The array is drawn once and shared by every instance (the task's ``data``): the trainer hands
it to the compiled loop once, so a thousand autoencoders read one copy.

The autoencoder, with SAELens' names (``d_in``, ``d_sae``, ``l1_coefficient``)::

    f  = ReLU((x − b_dec) W_enc + b_enc)          # (d_sae,) latents
    x̂  = f W_dec + b_dec                           # W_dec: (d_sae, d_in), unit-norm rows
    L  = ‖x − x̂‖² + λ ‖f‖₁                          # λ = l1_coefficient, per instance

The decoder rows are renormalised to unit length after every update (the task's ``project``):
without it the L1 penalty is beaten by shrinking ``f`` and growing ``W_dec``. Training uses Adam
without weight decay (the task's own optimizer), as decay would fight the projection.

Metrics, on held-out rows never trained on: ``l0`` (mean active latents per row),
``dead_fraction`` (latents inactive on every held-out row), ``fvu`` (fraction of variance
unexplained) and ``mmcs`` (mean over true features of the best cosine similarity with a
decoder row; 1 when every feature has a latent of its own).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from toylab.errors import ConfigError
from toylab.tasks import Task


def toy_activations(n_features: int, d_in: int, p: float, rows: int, seed: int = 0) -> dict[str, np.ndarray]:
    """``{"activations": (rows, d_in), "features": (n_features, d_in)}``, float32."""
    rng = np.random.default_rng(seed)
    features = rng.standard_normal((n_features, d_in))
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    on = rng.random((rows, n_features)) < p
    codes = np.where(on, rng.random((rows, n_features)), 0.0)
    return {"activations": (codes @ features).astype(np.float32), "features": features.astype(np.float32)}


def sparse_autoencoder(n_features: int = 16, d_in: int = 8, d_sae: int = 16, p: float = 0.05,
                       rows: int = 16_384, held_out: int = 2048, seed: int = 0) -> Task:
    """SAEs with ``d_sae`` latents on ``rows`` toy activations; config ``{"l1_coefficient": λ}``."""
    if min(n_features, d_in, d_sae) < 1 or not 0 < p <= 1 or not 0 < held_out < rows:
        raise ConfigError(f"n_features={n_features}, d_in={d_in}, d_sae={d_sae}, p={p}, "
                          f"held_out={held_out} of rows={rows}: sizes ≥ 1, 0 < p ≤ 1, 0 < held_out < rows")
    drawn = toy_activations(n_features, d_in, p, rows, seed)
    data = {"train": drawn["activations"][held_out:], "held_out": drawn["activations"][:held_out],
            "features": drawn["features"]}

    def hyper(config: Mapping[str, Any]) -> dict[str, np.ndarray]:
        unknown = set(config) - {"l1_coefficient"}
        if unknown:
            raise ConfigError(f"unknown setting {sorted(unknown)[0]!r}; the SAE takes l1_coefficient")
        l1 = float(config.get("l1_coefficient", 1e-2))
        if not l1 >= 0:
            raise ConfigError(f"l1_coefficient={l1!r}: the sparsity penalty must be ≥ 0")
        return {"l1_coefficient": np.float32(l1)}

    def unit_rows(W):
        return W / jnp.linalg.norm(W, axis=-1, keepdims=True)

    def init(key, hyper, data):
        del hyper, data
        W_dec = unit_rows(jax.random.normal(key, (d_sae, d_in)))
        # Encoder tied to the decoder at init: each latent starts by reading its own direction.
        return {"W_enc": W_dec.T, "b_enc": jnp.zeros(d_sae), "W_dec": W_dec, "b_dec": jnp.zeros(d_in)}

    def encode(params, x):
        return jax.nn.relu((x - params["b_dec"]) @ params["W_enc"] + params["b_enc"])

    def decode(params, f):
        return f @ params["W_dec"] + params["b_dec"]

    def sample(key, hyper, batch_size, data):
        del hyper
        rows = jax.random.randint(key, (batch_size,), 0, data["train"].shape[0])
        return data["train"][rows]  # (batch, d_in)

    def loss(params, x, hyper, data):
        del data
        f = encode(params, x)  # (batch, d_sae)
        mse = jnp.mean(jnp.sum((x - decode(params, f)) ** 2, axis=-1))
        l1 = jnp.mean(jnp.sum(jnp.abs(f), axis=-1))
        return mse + hyper["l1_coefficient"] * l1, {"mse": mse, "l1": l1}

    def metrics(params, hyper, key, data):
        del hyper, key  # the whole held-out set: nothing to sample
        x = data["held_out"]
        f = encode(params, x)  # (rows, d_sae)
        active = f > 0
        residual = jnp.sum((x - decode(params, f)) ** 2)
        cosine = data["features"] @ unit_rows(params["W_dec"]).T  # (n_features, d_sae)
        return {
            "l0": jnp.mean(jnp.sum(active, axis=-1)),
            "dead_fraction": jnp.mean(~jnp.any(active, axis=0)),
            "fvu": residual / jnp.sum((x - jnp.mean(x, axis=0)) ** 2),
            "mmcs": jnp.mean(jnp.max(cosine, axis=-1)),
        }

    def project(params, hyper, data):
        del hyper, data
        return {**params, "W_dec": unit_rows(params["W_dec"])}

    return Task(
        name="sparse_autoencoder",
        spec={"n_features": n_features, "d_in": d_in, "d_sae": d_sae, "p": p, "rows": rows,
              "held_out": held_out, "seed": seed},
        hyper=hyper, init=init, sample=sample, loss=loss,
        # Forward per row: encode and decode (2·d_in·d_sae multiply-adds each), ×3 for backward.
        flops_per_step=lambda batch_size: 3.0 * 4.0 * d_in * d_sae * batch_size,
        metrics=metrics, batch_size=256, has_aux=True, data=data, project=project,
        optimizer=lambda config, hyper: optax.adam(config.lr),
    )
