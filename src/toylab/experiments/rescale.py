"""The rescaling sanity check on superposition measures: multiply one layer's weights by c.

Command::

    toylab rescale-check [--scales 0.1,1,10] [--steps N] [--tms-steps N] [--json] [--out DIR]

Setting. (1) A bias-free ReLU network with a softmax output, ``logits = W_out ReLU(W_in x)``,
is trained on scikit-learn's handwritten digits (61 informative pixels, 32 hidden units, Adam,
1,000 steps; :mod:`toylab.tasks.classifier`), then ``W_in`` is multiplied by each ``c`` on a
log grid from 0.1 to 10. (2) The superposition autoencoder (n = 5, m = 2, p = 0.05, equal
importance; the best of 4 seeds) is trained and its ``W`` multiplied by the same ``c``.

Which "features" a classifier layer has. The measures are applied to ``W_in`` with the input
pixels as features (its columns, ``W_in[:, i]``: where pixel ``i`` lands in the hidden layer).
That is the role ``W`` plays in the autoencoder, ``h = W x``: n input features placed into m
hidden dimensions (here 61 into 32), so the same measure reads the same thing in both models,
and the critique is tested on the measure exactly as Elhage et al. define it. (The hidden units
as features, the rows of ``W_in``, scale identically under ``c``; the conclusion is the same.)

Expected result. Classifier: every prediction is unchanged at every ``c`` (``ReLU(c z) =
c ReLU(z)`` without biases, and the largest logit stays the largest), test accuracy ≈ 0.97 at
every ``c``; Elhage's features per dimension of ``c·W_in`` is ``c²`` times its value at
``c = 1`` (a 10,000-fold range over the grid), while each ``D_i``, their mean, and the
scale-invariant features per dimension (:func:`toylab.metrics.features_per_dimension_invariant`)
do not move. Autoencoder: the same measures move (or not) the same way, but the loss does
change with ``c`` (it is lowest near the trained ``c = 1``), so there the scale is part of the
solution, and Elhage et al.'s measure reads what they meant by it.

Runtime: about 10–20 s on 2 CPU cores, most of it compiling.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from rich.table import Table

from toylab import figures, metrics
from toylab.errors import ConfigError, validated
from toylab.experiments import tms
from toylab.experiments.runs import divergence_warning, diverged
from toylab.io import atomic_write, json_safe
from toylab.figures.rescale import rescale_check
from toylab.tasks.base import Hyper, Task
from toylab.tasks.classifier import digits, mlp_classifier, mlp_logits
from toylab.train import TrainConfig, train

__all__ = ["SCALES", "RescaleResult", "run", "rescale_classifier", "rescale_autoencoder",
           "summarize", "warning", "write_run"]

# -- settings ------------------------------------------------------------------------------------
SCALES = tuple(float(c) for c in np.logspace(-1, 1, 9))  # c = 10^(−1 … 1) in steps of 10^0.25, c = 1 included
N_HIDDEN = 32  # hidden units: 61 pixel features into 32 dimensions
CLASSIFIER_TRAIN = TrainConfig(  # ≈ 97% test accuracy in ~2 s on 2 cores
    steps=1000, batch_size=128, optimizer="adam", lr=1e-2, schedule="cosine", elicit_steps=0)
TMS_N_FEATURES = 5  # n
TMS_N_HIDDEN = 2  # m
TMS_FEATURE_PROBABILITY = 0.05  # sparse enough for the pentagon (Elhage et al. 2022, §1)
TMS_SEEDS = 4  # the lowest-loss seed is rescaled
TMS_TRAIN = TrainConfig(steps=3000, batch_size=1024, optimizer="adamw", lr=1e-3, elicit_steps=0)
TMS_EVAL_EXAMPLES = 2**16  # one fixed held-out sample scores the autoencoder at every c


@dataclasses.dataclass(frozen=True)
class RescaleResult:
    """Both models, and every measure at every scale. Arrays are numpy, first axis ``scales``."""

    scales: np.ndarray  # (scales,)
    settings: dict[str, Any]  # JSON-ready: data set, sizes, training configs
    classifier_params: dict[str, np.ndarray]  # W_in (d_hidden, n_inputs), W_out (n_classes, d_hidden)
    tms_params: dict[str, np.ndarray]  # W (d_hidden, n_features), b (n_features,)
    classifier: dict[str, np.ndarray]  # from rescale_classifier
    autoencoder: dict[str, np.ndarray]  # from rescale_autoencoder


def run(
    *,
    scales: Sequence[float] = SCALES,
    n_hidden: int = N_HIDDEN,
    steps: int = CLASSIFIER_TRAIN.steps,
    tms_steps: int = TMS_TRAIN.steps,
    tms_seeds: int = TMS_SEEDS,
    seed: int = 0,
    progress: bool | None = None,
) -> RescaleResult:
    """Train both models and rescale each by every ``c`` in ``scales``.

    Args:
      scales: the factors ``c > 0``; the trained weights (``c = 1``) are the reference for
        ``predictions_changed`` whether or not 1 is among them.
      n_hidden: hidden units of the digits classifier.
      steps, tms_steps: optimizer steps for the classifier and the autoencoder.
      tms_seeds: autoencoder seeds; the lowest-loss one is rescaled.
      seed: base seed of both trainings and of the data split.

    A model that diverged (non-finite loss or weights) is not rescaled: its measures are NaN
    (null in JSON) and ``settings`` says so (``classifier.diverged``,
    ``autoencoder.diverged_seeds``). The autoencoder rescaled is the lowest-loss seed among
    those that did not diverge.

    Raises:
      ConfigError: an empty ``scales``, a ``c`` that is not a finite number > 0, or a bad
        size or step count.
    """
    c = _checked_scales(scales)
    if tms_seeds < 1:
        raise ConfigError(f"tms_seeds={tms_seeds}: need at least 1 autoencoder seed")
    classifier_config = validated(TrainConfig, **{**CLASSIFIER_TRAIN.model_dump(), "steps": steps})
    tms_config = validated(TrainConfig, **{**TMS_TRAIN.model_dump(), "steps": tms_steps})

    # 1. The classifier: train, then rescale W_in.
    dataset = digits(split_seed=seed)
    task = mlp_classifier(dataset, n_hidden=n_hidden)
    trained = train(task, [{}], seeds=1, seed=seed, config=classifier_config, progress=progress)
    classifier_params = {name: np.asarray(leaf[0]) for name, leaf in trained.params.items()}
    classifier_diverged = bool(diverged(trained)[0])
    classifier = _unmeasured(c, dataset.x_test.shape[-1], ("accuracy", "predictions_changed")) \
        if classifier_diverged else rescale_classifier(classifier_params, dataset.x_test, dataset.y_test, c)

    # 2. The autoencoder: train several seeds, rescale the lowest-loss one's W (b stays).
    autoencoders = tms.run(
        n_features=TMS_N_FEATURES, n_hidden=TMS_N_HIDDEN, feature_probability=[TMS_FEATURE_PROBABILITY],
        importance=1.0, seeds=tms_seeds, seed=seed, train_config=tms_config, progress=progress)
    best = tms.best_indices(autoencoders)[0]  # a finite seed when there is one
    tms_params = {name: np.asarray(leaf) for name, leaf in autoencoders.instance_params(best).items()}
    hyper = autoencoders.task.hyper(autoencoders.instances[best].config)
    tms_diverged = diverged(autoencoders)
    autoencoder = _unmeasured(c, TMS_N_FEATURES, ("loss",)) if tms_diverged[best] else \
        rescale_autoencoder(autoencoders.task, hyper, tms_params, c, key=jax.random.key(seed))

    settings = {
        "study": "rescale-check",
        "classifier": {**task.spec, "layer_rescaled": "W_in", "features": "input pixels (columns of W_in)",
                       "train": classifier_config.model_dump(),
                       "train_accuracy": float(trained.final.raw["train_accuracy"][0]),
                       "test_accuracy": float(trained.final.raw["test_accuracy"][0]),
                       "diverged": classifier_diverged},
        "autoencoder": {"n_features": TMS_N_FEATURES, "n_hidden": TMS_N_HIDDEN,
                        "feature_probability": TMS_FEATURE_PROBABILITY, "importance": 1.0,
                        "seeds": tms_seeds, "best_seed": autoencoders.instances[best].seed,
                        "diverged_seeds": int(tms_diverged.sum()),
                        "eval_examples": TMS_EVAL_EXAMPLES, "train": tms_config.model_dump(),
                        "geometry": None if tms_diverged[best] else metrics.describe(metrics.geometry(tms_params["W"]))},
        "seed": seed,
    }
    return RescaleResult(c, settings, classifier_params, tms_params, classifier, autoencoder)


def rescale_classifier(
    params: dict[str, np.ndarray], x_test: np.ndarray, y_test: np.ndarray, scales: np.ndarray
) -> dict[str, np.ndarray]:
    """Multiply ``W_in`` by each ``c``: what the network does and what the measures say.

    Returns:
      Arrays over ``scales``: ``accuracy`` (test), ``predictions_changed`` (test examples whose
      predicted class differs from the unscaled network's), ``features_per_dimension``,
      ``features_per_dimension_invariant``, ``mean_feature_dimensionality`` (mean ``D_i`` over
      the pixels), and ``feature_dimensionality`` (``(scales, n_inputs)``), all of ``c·W_in``.
    """
    scales = jnp.asarray(scales, dtype=jnp.float32)
    W_in = jnp.asarray(params["W_in"])  # (d_hidden, n_inputs)
    W_out = jnp.asarray(params["W_out"])  # (n_classes, d_hidden)
    x, y = jnp.asarray(x_test), jnp.asarray(y_test)

    def predict(c):
        return jnp.argmax(mlp_logits({"W_in": c * W_in, "W_out": W_out}, x), axis=-1)  # (n_test,)

    reference = predict(jnp.float32(1.0))  # the trained network
    predictions = jax.jit(jax.vmap(predict))(scales)  # (scales, n_test)
    rescaled = scales[:, None, None] * W_in[None]  # (scales, d_hidden, n_inputs)
    out = {
        "accuracy": jnp.mean(predictions == y[None], axis=-1),
        "predictions_changed": jnp.sum(predictions != reference[None], axis=-1),
        **_measures(rescaled),
    }
    return {name: np.asarray(value) for name, value in out.items()}


def rescale_autoencoder(
    task: Task, hyper: Hyper, params: dict[str, np.ndarray], scales: np.ndarray, *, key: jax.Array
) -> dict[str, np.ndarray]:
    """Multiply the autoencoder's ``W`` by each ``c`` (the bias ``b`` stays) and score it.

    Args:
      task: the superposition task the params belong to; ``hyper`` its instance's hyperparameters.
      params: ``W`` (d_hidden, n_features) and ``b`` (n_features,).
      key: draws the fixed held-out sample (:data:`TMS_EVAL_EXAMPLES` examples) every ``c`` is
        scored on, so differences between scales are the model's.

    Returns:
      Arrays over ``scales``: ``loss``, ``features_per_dimension``,
      ``features_per_dimension_invariant``, ``mean_feature_dimensionality`` and
      ``feature_dimensionality`` (``(scales, n_features)``), all of ``c·W``.
    """
    scales = jnp.asarray(scales, dtype=jnp.float32)
    W, b = jnp.asarray(params["W"]), jnp.asarray(params["b"])
    x = task.sample(key, hyper, TMS_EVAL_EXAMPLES)  # (examples, n_features)
    loss = jax.jit(jax.vmap(lambda c: task.loss({**params, "W": c * W, "b": b}, x, hyper)))(scales)
    out = {"loss": loss, **_measures(scales[:, None, None] * W[None])}
    return {name: np.asarray(value) for name, value in out.items()}


def _unmeasured(scales: np.ndarray, n_features: int, names: tuple[str, ...]) -> dict[str, np.ndarray]:
    """What a diverged model reports at every scale: NaN for ``names`` and every measure."""
    out = {name: np.full(scales.shape, np.nan) for name in (*names, "features_per_dimension",
                                                               "features_per_dimension_invariant",
                                                               "mean_feature_dimensionality")}
    return {**out, "feature_dimensionality": np.full((*scales.shape, n_features), np.nan)}


def warning(summary: dict[str, Any]) -> str | None:
    """The line ``toylab rescale-check`` prints when a model diverged, else None."""
    classifier, autoencoder = summary["settings"]["classifier"], summary["settings"]["autoencoder"]
    lost = autoencoder["diverged_seeds"] == autoencoder["seeds"]
    consequences = ["the classifier's measures are null"] if classifier["diverged"] else []
    if autoencoder["diverged_seeds"]:
        consequences.append("the autoencoder's measures are null" if lost else
                            "the autoencoder rescaled is the best finite seed")
    return divergence_warning(classifier["diverged"] + autoencoder["diverged_seeds"], 1 + autoencoder["seeds"],
                              "models", "; ".join(consequences))


def _measures(rescaled: jax.Array) -> dict[str, jax.Array]:
    """The scale-dependent measure and its invariant counterparts, per matrix of a stack."""
    D = metrics.feature_dimensionality(rescaled)  # (scales, n_features)
    return {
        "features_per_dimension": metrics.features_per_dimension(rescaled),
        "features_per_dimension_invariant": metrics.features_per_dimension_invariant(rescaled),
        "mean_feature_dimensionality": jnp.mean(D, axis=-1),
        "feature_dimensionality": D,
    }


def summarize(result: RescaleResult) -> dict[str, Any]:
    """JSON-ready: lists aligned with ``scales``.

    Returns:
      ``{"scales", "accuracy", "predictions_changed", "features_per_dimension",
      "features_per_dimension_invariant", "mean_feature_dimensionality", "tms_loss",
      "tms_features_per_dimension", "tms_features_per_dimension_invariant",
      "tms_mean_feature_dimensionality", "settings"}``; the unprefixed measures are of the
      classifier's ``c·W_in``.
    """
    classifier, autoencoder = result.classifier, result.autoencoder
    per_scale = {
        "scales": result.scales,
        "accuracy": classifier["accuracy"],
        "predictions_changed": classifier["predictions_changed"],
        "features_per_dimension": classifier["features_per_dimension"],
        "features_per_dimension_invariant": classifier["features_per_dimension_invariant"],
        "mean_feature_dimensionality": classifier["mean_feature_dimensionality"],
        "tms_loss": autoencoder["loss"],
        "tms_features_per_dimension": autoencoder["features_per_dimension"],
        "tms_features_per_dimension_invariant": autoencoder["features_per_dimension_invariant"],
        "tms_mean_feature_dimensionality": autoencoder["mean_feature_dimensionality"],
    }
    return {**{name: np.asarray(values).tolist() for name, values in per_scale.items()},
            "settings": result.settings}


def write_run(folder: str | Path, result: RescaleResult, summary: dict[str, Any]) -> list[Path]:
    """Save ``summary.json``, ``weights.npz`` (both models) and the figure ``rescale_check``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = [atomic_write(folder / "summary.json",
                            lambda f: f.write(json.dumps(json_safe(summary), indent=1).encode()))]
    arrays = {**result.classifier_params, **{f"tms_{name}": leaf for name, leaf in result.tms_params.items()}}
    written.append(atomic_write(folder / "weights.npz", lambda f: np.savez(f, **arrays)))
    figure = rescale_check(
        result.scales,
        accuracy=result.classifier["accuracy"],
        predictions_changed=result.classifier["predictions_changed"],
        classifier_measures=_figure_measures(result.classifier),
        tms_loss=result.autoencoder["loss"],
        tms_measures=_figure_measures(result.autoencoder),
        n_test=result.settings["classifier"]["n_test"],
    )
    written += figures.save(figure, folder, "rescale_check")
    return written


def tables(summary: dict[str, Any]) -> list[Table]:
    """Every measure at every ``c``, both models, as a table for a terminal."""
    classifier = summary["settings"]["classifier"]
    table = Table(title=f"W → cW. Classifier: digits, bias-free ReLU, {classifier['n_hidden']} hidden units, "
                        "measures of c·W_in; autoencoder: n = 5, m = 2, p = 0.05")
    for column in ("c", "accuracy", "changed", "feat/dim", "invariant", "mean D_i",
                   "TMS loss", "TMS feat/dim", "TMS invariant"):
        table.add_column(column, justify="right")
    for k, c in enumerate(summary["scales"]):
        table.add_row(
            f"{c:.3g}", f"{summary['accuracy'][k]:.4f}", str(summary["predictions_changed"][k]),
            f"{summary['features_per_dimension'][k]:.4g}", f"{summary['features_per_dimension_invariant'][k]:.4g}",
            f"{summary['mean_feature_dimensionality'][k]:.4g}", f"{summary['tms_loss'][k]:.4g}",
            f"{summary['tms_features_per_dimension'][k]:.4g}",
            f"{summary['tms_features_per_dimension_invariant'][k]:.4g}")
    return [table]


def _figure_measures(measured: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: measured[name] for name in
            ("features_per_dimension", "features_per_dimension_invariant", "mean_feature_dimensionality")}


def _checked_scales(scales: Sequence[float]) -> np.ndarray:
    try:
        c = np.asarray(scales, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError):
        raise ConfigError(f"scales={scales!r}: expected numbers c > 0") from None
    if c.size == 0:
        raise ConfigError("scales=[]: give at least one factor c > 0")
    bad = ~(np.isfinite(c) & (c > 0))
    if bad.any():
        raise ConfigError(f"scales: c={float(c[bad][0])!r} is not a finite number > 0 (W → cW needs c > 0)")
    return c


# -- `toylab reproduce rescale`: the check as a study of `reproduce all` -------------------------


def study_describe() -> dict[str, Any]:
    """The study's settings, for the run folder and ``--json`` output."""
    return {"study": "rescale", "paper": "the seed's critique of features per dimension, and the reply",
            "scales": list(SCALES), "classifier": {"data": "scikit-learn digits", "n_hidden": N_HIDDEN,
                                                   "train": CLASSIFIER_TRAIN.model_dump()},
            "autoencoder": {"n_features": TMS_N_FEATURES, "n_hidden": TMS_N_HIDDEN,
                            "feature_probability": TMS_FEATURE_PROBABILITY, "seeds": TMS_SEEDS,
                            "train": TMS_TRAIN.model_dump()}}


def study_run(*, seeds: int = TMS_SEEDS, steps: int | None = None, seed: int = 0,
              progress: bool | None = None) -> RescaleResult:
    """:func:`run` at the default scales; ``seeds`` are the autoencoder's, ``steps`` (when given)
    both models' (``reproduce all --steps`` shortens every study alike)."""
    lengths = {} if steps is None else {"steps": steps, "tms_steps": steps}
    return run(tms_seeds=seeds, seed=seed, progress=progress, **lengths)
