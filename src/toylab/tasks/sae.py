"""Sparse autoencoders (SAEs) on activations whose true features may be known.

An SAE reads a hidden activation ``h`` (``d_in`` numbers) and writes it as a sparse, non-negative
combination of ``d_sae`` learned directions, the columns of its decoder (Bricken et al. 2023,
"Towards Monosemanticity"; names as in SAELens: ``d_in``, ``d_sae``, ``l1_coefficient``, ``k``)::

    f  = ReLU(W_enc (h − b_dec) + b_enc)     # (d_sae,)  latents        W_enc: (d_sae, d_in)
    ĥ  = W_dec f + b_dec                     # (d_in,)   reconstruction W_dec: (d_in, d_sae)
    L  = ‖h − ĥ‖² + λ Σ_j f_j                # λ = l1_coefficient, per instance

The ``"topk"`` architecture (Gao et al. 2024, "Scaling and evaluating sparse autoencoders")
keeps the ``k`` largest pre-activations of each row and zeroes the rest before the ReLU; its
``k`` is a per-instance setting, so SAEs of different ``k`` train side by side (the ``k``-th
largest value is read from a sort, which takes a traced ``k``). ``l1_coefficient`` defaults
to 0 there.

The decoder's columns are renormalised to unit length after every update (the task's
``project``): without it the L1 penalty is beaten by shrinking ``f`` and growing ``W_dec``.
The task trains with Adam without weight decay (its own optimizer), which would fight the
projection.

Two sources of activations, both shared by every instance (the task's ``data``: the trainer
hands it to the compiled loop once, never one copy per instance):

* :func:`sae_on_models`: the hidden layer ``h = W x`` of trained superposition models
  (:mod:`toylab.tasks.superposition`). Every step draws fresh ``x`` from the model's own data
  distribution (its ``sample`` and per-model settings), so there is no finite data set to
  overfit and the true feature directions, the columns ``W_i``, are known. All the models'
  weights are one stacked array; each SAE instance picks its model with the config's
  ``model`` index, so one call trains ``models × λ (or k) × seeds`` SAEs.
* :func:`sae_on_activations`: a fixed array of activations a user brings, ``(rows, d_in)``;
  the first ``held_out`` rows are kept out of training and measured on.

Metrics at every evaluation, on held-out activations: ``l0`` (mean active latents per row),
``fvu`` (fraction of variance unexplained), ``dead_fraction`` (latents never active on the
held-out rows) and, where the true features are known, ``mmcs`` (mean over true features of
the best cosine with a decoder column) and ``matched`` (true features whose best cosine is at
least 0.9). :mod:`toylab.metrics.sae` has these and the one-to-one (Hungarian) measures.

Example:
    >>> import numpy as np
    >>> task = sae_on_activations(np.random.default_rng(0).random((512, 4), np.float32), d_sae=8, held_out=64)
    >>> task.hyper({"l1_coefficient": 0.01})
    {'l1_coefficient': np.float32(0.01)}
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array

from toylab.arrays import load_array
from toylab.errors import ConfigError
from toylab.metrics.sae import MATCH_THRESHOLD, decode, encode
from toylab.tasks.base import Task

__all__ = ["sae_on_activations", "sae_on_models", "checked_features", "ARCHITECTURES"]

ARCHITECTURES = ("standard", "topk")
# Held-out activations drawn per evaluation from a model source: enough that a latent firing
# on 1 row in 1,000 is seen active (dead latents are counted on them).
_MODEL_HELD_OUT = 4096


def _unit_columns(W: Array) -> Array:
    return W / jnp.maximum(jnp.linalg.norm(W, axis=0, keepdims=True), 1e-12)


def _check_sizes(d_in: int, d_sae: int, architecture: str) -> None:
    if architecture not in ARCHITECTURES:
        raise ConfigError(f"architecture={architecture!r}: expected one of {', '.join(ARCHITECTURES)}")
    for name, value in (("d_in", d_in), ("d_sae", d_sae)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ConfigError(f"{name}={value!r}: expected an integer ≥ 1")


def _hyper_reader(d_sae: int, architecture: str, extra: Mapping[str, Any] | None = None):
    """``config -> hyper`` for one SAE: ``l1_coefficient`` (λ ≥ 0) and, for topk, ``k`` in 1..d_sae."""
    allowed = {"l1_coefficient"} | ({"k"} if architecture == "topk" else set()) | set(extra or {})

    def hyper(config: Mapping[str, Any]) -> dict[str, np.ndarray]:
        unknown = set(config) - allowed
        if unknown:
            raise ConfigError(f"unknown SAE setting {sorted(unknown)[0]!r}; a {architecture} SAE takes "
                              f"{', '.join(sorted(allowed))}")
        l1 = config.get("l1_coefficient", 0.0 if architecture == "topk" else 1e-2)
        if isinstance(l1, bool) or not isinstance(l1, (int, float, np.integer, np.floating)) \
                or not (np.isfinite(l1) and l1 >= 0):
            raise ConfigError(f"l1_coefficient={l1!r}: the sparsity penalty λ must be a finite number ≥ 0")
        values = {"l1_coefficient": np.float32(l1)}
        if architecture == "topk":
            if "k" not in config:
                raise ConfigError(f"a topk SAE needs k, the active latents per row (1 to d_sae={d_sae})")
            k = config["k"]
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 1 <= k <= d_sae:
                raise ConfigError(f"k={k!r}: expected an integer from 1 to d_sae={d_sae} (active latents per row)")
            values["k"] = np.int32(k)
        for name, read in (extra or {}).items():
            values[name] = read(config.get(name))
        return values

    return hyper


def _sae_functions(d_in: int, d_sae: int, architecture: str):
    """init, the loss on a batch of activations, project and the FLOPs, shared by both sources."""
    topk = architecture == "topk"

    def init(key: jax.Array, b_dec: Array) -> dict[str, Array]:
        W_dec = _unit_columns(jax.random.normal(key, (d_in, d_sae)))
        # Encoder tied to the decoder at init: each latent starts by reading its own direction.
        return {"W_enc": W_dec.T, "b_enc": jnp.zeros(d_sae), "W_dec": W_dec, "b_dec": b_dec}

    def latents(params, h, hyper):
        return encode(params, h, hyper["k"] if topk else None)

    def sae_loss(params, h, hyper):
        f = latents(params, h, hyper)  # (batch, d_sae)
        mse = jnp.mean(jnp.sum((h - decode(params, f)) ** 2, axis=-1))
        l1 = jnp.mean(jnp.sum(f, axis=-1))  # f ≥ 0: Σ_j f_j is the L1 norm
        return mse + hyper["l1_coefficient"] * l1, {"mse": mse, "l1": l1}

    def held_out_metrics(params, h, hyper, features=None):
        f = latents(params, h, hyper)  # (rows, d_sae)
        active = f > 0
        residual = jnp.sum((h - decode(params, f)) ** 2)
        values = {
            "l0": jnp.mean(jnp.sum(active, axis=-1)),
            "dead_fraction": jnp.mean(~jnp.any(active, axis=0)),
            "fvu": residual / jnp.sum((h - jnp.mean(h, axis=0)) ** 2),
        }
        if features is not None:  # (d_in, n_features), unit columns
            best = jnp.max(features.T @ params["W_dec"], axis=-1)  # (n_features,) best cosine per feature
            values["mmcs"] = jnp.mean(best)
            values["matched"] = jnp.sum(best >= MATCH_THRESHOLD).astype(jnp.float32)
        return values

    def project(params, hyper, data):
        del hyper, data
        return {**params, "W_dec": _unit_columns(params["W_dec"])}

    def flops_per_step(batch_size):
        # Forward per row: encode and decode, d_in·d_sae multiply-adds each (2 FLOPs apiece);
        # backward ≈ 2× forward. The topk sort (d_sae log d_sae comparisons) is not counted.
        return 3.0 * 4.0 * d_in * d_sae * batch_size

    return init, sae_loss, held_out_metrics, project, flops_per_step


def _adam(config, hyper):
    del hyper
    return optax.adam(config.lr)


def sae_on_activations(
    activations: Any,
    *,
    d_sae: int,
    architecture: Literal["standard", "topk"] = "standard",
    held_out: int | None = None,
    features: Any = None,
    batch_size: int = 256,
) -> Task:
    """SAEs on one fixed array of activations, shared by every instance.

    Per-instance config: ``{"l1_coefficient": λ}`` (standard) or ``{"k": k, "l1_coefficient": λ}``
    (topk). Training batches are rows drawn uniformly with replacement from the training rows.

    Args:
      activations: ``(rows, d_in)`` floats (numpy, JAX, PyTorch, or anything ``numpy.asarray``
        reads), or the path of a ``.npy``/``.npz``/``.safetensors`` file holding them (a sweep
        spec's ``[task_params] activations = "acts.npy"``); checked finite and 2-D.
      d_sae: latents per SAE.
      architecture: ``"standard"`` (ReLU with an L1 penalty) or ``"topk"``.
      held_out: the first rows, kept out of training and measured on; default
        ``min(4096, rows // 10)``, at least 1.
      features: optional true feature directions ``(d_in, n_features)`` (columns), for
        ``mmcs`` and ``matched`` at every evaluation; normalised to unit columns here.
      batch_size: rows per step.

    Raises:
      ConfigError: activations that are not a finite 2-D array with at least 2 rows, sizes
        below 1, features whose dimension is not ``d_in``.
    """
    acts = _checked_activations(activations)
    rows, d_in = acts.shape
    _check_sizes(d_in, d_sae, architecture)
    held_out = max(1, min(4096, rows // 10)) if held_out is None else held_out
    if isinstance(held_out, bool) or not isinstance(held_out, (int, np.integer)) or not 1 <= held_out < rows:
        raise ConfigError(f"held_out={held_out!r}: expected an integer from 1 to rows − 1 = {rows - 1}")
    data = {"train": acts[held_out:], "held_out": acts[:held_out],
            # The decoder bias starts at the mean activation, the best constant reconstruction.
            "mean": acts[held_out:].mean(axis=0)}
    if features is not None:
        data["features"] = checked_features(features, d_in)
    init_sae, sae_loss, held_out_metrics, project, flops = _sae_functions(d_in, d_sae, architecture)

    def init(key, hyper, data):
        del hyper
        return init_sae(key, data["mean"])

    def sample(key, hyper, batch_size, data):
        del hyper
        rows = jax.random.randint(key, (batch_size,), 0, data["train"].shape[0])
        return data["train"][rows]  # (batch, d_in)

    def loss(params, h, hyper, data):
        del data
        return sae_loss(params, h, hyper)

    def metrics(params, hyper, key, data):
        del key  # the whole held-out set: nothing to draw
        return held_out_metrics(params, data["held_out"], hyper, data.get("features"))

    return Task(
        name="sae",
        spec={"source": "activations", "rows": rows, "d_in": d_in, "d_sae": d_sae,
              "architecture": architecture, "held_out": held_out, "features": features is not None},
        hyper=_hyper_reader(d_sae, architecture), init=init, sample=sample, loss=loss,
        flops_per_step=flops, metrics=metrics, batch_size=batch_size, has_aux=True, data=data,
        project=project, optimizer=_adam,
    )


def sae_on_models(
    source: Task,
    params: Mapping[str, Any],
    hyper: Mapping[str, Any],
    *,
    d_sae: int,
    architecture: Literal["standard", "topk"] = "standard",
    batch_size: int = 1024,
) -> Task:
    """SAEs on the hidden activations ``h = W x`` of trained superposition models.

    Per-instance config: ``{"model": i, "l1_coefficient": λ}`` (and ``"k"`` for topk), where
    ``i`` indexes the stacked models. Every step draws a fresh batch ``x`` from model ``i``'s own
    distribution (``source.sample`` with its settings) and trains on ``h = W_i x``; the true
    feature directions are the columns of ``W_i``, normalised (a zero column is a dropped
    feature, which no latent can match).

    Besides the SAE metrics, every evaluation records ``spliced_loss_recovered`` (SAELens):
    ``(L_zero − L_spliced) / (L_zero − L_model)``, the model's loss with ``h`` replaced by the
    SAE's reconstruction, against the loss with ``h = 0``.

    Args:
      source: the superposition task the models were trained with (its ``sample`` and ``spec``).
      params: the models' weights with a leading ``models`` axis, e.g. ``TrainResult.params``.
      hyper: the models' per-instance settings with a leading ``models`` axis
        (``TrainResult.hyper``): their feature probabilities and importances.
      d_sae: latents per SAE.
      architecture: ``"standard"`` or ``"topk"``.
      batch_size: examples per step.

    Raises:
      ConfigError: a source that is not a superposition task, weights or settings whose
        ``models`` axes differ, sizes below 1; a config's ``model`` outside ``0..models−1``.
    """
    if source.name != "superposition" or source.sample is None:
        raise ConfigError(f"source task {source.name!r}: sae_on_models reads superposition models")
    W = np.asarray(params["W"], np.float32)
    if W.ndim != 3:
        raise ConfigError(f"params['W'] has shape {W.shape}: expected (models, d_hidden, n_features)")
    n_models, d_in, n_features = W.shape
    _check_sizes(d_in, d_sae, architecture)
    model_params = {name: np.asarray(value, np.float32) for name, value in params.items()}
    model_hyper = {name: np.asarray(value) for name, value in hyper.items()}
    for name, value in (*model_params.items(), *model_hyper.items()):
        if value.shape[:1] != (n_models,):
            raise ConfigError(f"{name} has shape {value.shape}: expected a leading models axis of {n_models}")
    tied, relu_output = source.spec["tied"], source.spec["output"] == "relu"
    data = {"model": model_params, "source": model_hyper}
    init_sae, sae_loss, held_out_metrics, project, flops = _sae_functions(d_in, d_sae, architecture)

    def read_model(value):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < n_models:
            raise ConfigError(f"model={value!r}: expected the index of one of the {n_models} models (0 to "
                              f"{n_models - 1})")
        return np.int32(value)

    def one_model(data, index):
        pick = lambda tree: jax.tree.map(lambda leaf: leaf[index], tree)  # noqa: E731
        return pick(data["model"]), pick(data["source"])

    def hidden(model, source_hyper, key, rows):
        x = source.sample(key, source_hyper, rows)  # (rows, n_features)
        return x, jnp.einsum("hf,bf->bh", model["W"], x)  # h: (rows, d_hidden)

    def output(model, h):
        W_out = model["W"].T if tied else model["W_dec"]  # (n_features, d_hidden)
        pre = jnp.einsum("fh,bh->bf", W_out, h) + model["b"]
        return jax.nn.relu(pre) if relu_output else pre

    def model_loss(model, source_hyper, x, h):
        return jnp.mean(source_hyper["importance"] * (x - output(model, h)) ** 2)

    def init(key, hyper, data):
        del hyper, data
        return init_sae(key, jnp.zeros(d_in))

    def sample(key, hyper, batch_size, data):
        model, source_hyper = one_model(data, hyper["model"])
        return hidden(model, source_hyper, key, batch_size)[1]

    def loss(params, h, hyper, data):
        del data
        return sae_loss(params, h, hyper)

    def metrics(params, hyper, key, data):
        model, source_hyper = one_model(data, hyper["model"])
        x, h = hidden(model, source_hyper, key, _MODEL_HELD_OUT)
        true = model["W"] / jnp.maximum(jnp.linalg.norm(model["W"], axis=0, keepdims=True), 1e-12)
        values = held_out_metrics(params, h, hyper, true)
        h_hat = decode(params, encode(params, h, hyper["k"] if architecture == "topk" else None))
        L_model = model_loss(model, source_hyper, x, h)
        L_zero = model_loss(model, source_hyper, x, jnp.zeros_like(h))
        L_spliced = model_loss(model, source_hyper, x, h_hat)
        values["spliced_loss_recovered"] = (L_zero - L_spliced) / (L_zero - L_model)
        return values

    return Task(
        name="sae",
        spec={"source": "superposition", "source_spec": dict(source.spec), "models": n_models,
              "d_in": d_in, "n_features": n_features, "d_sae": d_sae, "architecture": architecture},
        hyper=_hyper_reader(d_sae, architecture, {"model": read_model}), init=init, sample=sample,
        loss=loss, flops_per_step=flops, metrics=metrics, batch_size=batch_size, has_aux=True,
        data=data, project=project, optimizer=_adam,
    )


def _checked_activations(activations: Any) -> np.ndarray:
    """A finite float32 ``(rows, d_in)`` array with at least 2 rows, or a one-line ConfigError.

    A path (``str`` or :class:`pathlib.Path`) is read as ``toylab measure`` reads files, so a
    sweep spec can name its activations in ``[task_params]``.
    """
    if isinstance(activations, (str, Path)):
        try:
            return _checked_activations(load_array(activations))
        except ConfigError as exc:
            message = str(exc)
            raise ConfigError(message if message.startswith(str(activations)) else f"{activations}: {message}") from None
    if hasattr(activations, "detach"):  # a PyTorch tensor, possibly on a GPU: never import torch
        activations = activations.detach().cpu().float().numpy()
    try:
        acts = np.asarray(activations)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"activations: could not read {type(activations).__name__} as an array: {exc}") from None
    if acts.dtype.kind not in "biuf":
        raise ConfigError(f"activations have dtype {acts.dtype}: expected real numbers")
    if acts.ndim != 2:
        raise ConfigError(f"activations have shape {acts.shape}: expected 2-D (rows, d_in), one activation "
                          "vector per row")
    bad = ~np.isfinite(acts)
    if bad.any():
        row, column = (int(i) for i in np.argwhere(bad)[0])
        raise ConfigError(f"activations contain {acts[row, column]} at row {row}, column {column} "
                          f"({int(bad.sum())} non-finite entries); remove or fix those rows")
    if acts.shape[0] < 2 or acts.shape[1] < 1:
        raise ConfigError(f"activations have shape {acts.shape}: need at least 2 rows and 1 column")
    return np.ascontiguousarray(acts, dtype=np.float32)


def checked_features(features: Any, d_in: int) -> np.ndarray:
    """True feature directions as unit columns ``(d_in, n_features)``, float32 (from an array or a file path).

    Raises:
      ConfigError: not a finite 2-D array, a first axis other than ``d_in``, or a zero column.
    """
    if isinstance(features, (str, Path)):
        features = load_array(features)
    if hasattr(features, "detach"):
        features = features.detach().cpu().float().numpy()
    array = np.asarray(features, dtype=np.float64) if np.asarray(features).dtype.kind in "biuf" else None
    if array is None or array.ndim != 2:
        raise ConfigError(f"features have shape {np.shape(features)}: expected 2-D (d_in, n_features), "
                          "one true direction per column")
    if array.shape[0] != d_in:
        raise ConfigError(f"features have dimension {array.shape[0]} (shape {array.shape}) but the activations "
                          f"have d_in={d_in}; transpose them (--feature-axis 0) if features are rows")
    if not np.isfinite(array).all():
        raise ConfigError(f"features of shape {array.shape} contain a NaN or infinite entry")
    norms = np.linalg.norm(array, axis=0)
    if (norms == 0).any():
        raise ConfigError(f"feature {int(np.argmax(norms == 0))} is a zero vector: it has no direction")
    return (array / norms).astype(np.float32)
