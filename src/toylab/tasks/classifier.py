"""A bias-free ReLU network with a softmax output, trained on a real data set that ships in a package.

The rescaling critique of Elhage et al.'s "features per dimension": in such a network,
multiplying a layer's weights by ``c > 0`` leaves every classification unchanged, because ReLU
is positively homogeneous (``ReLU(c z) = c ReLU(z)``), there are no biases to break the
homogeneity, and softmax (and argmax) keep the order of their inputs. This file is that
network, as a :class:`~toylab.tasks.Task` the ordinary trainer trains.

Model, for one example ``x`` with ``n_inputs`` pixels::

    h      = ReLU(W_in x)     # (d_hidden,)    W_in:  (d_hidden, n_inputs)
    logits = W_out h          # (n_classes,)   W_out: (n_classes, d_hidden)
    p      = softmax(logits)

Loss: mean cross-entropy ``−log p_y`` over a minibatch drawn (with replacement) from the
training split; the trainer's evaluations use the exact loss over the whole training split.
The data set is the task's shared ``data``: every instance reads the same arrays, which the
trainer hands to the compiled loop once.

Data: scikit-learn's handwritten digits (``sklearn.datasets.load_digits``: 1,797 8×8 images,
10 classes; the file is inside the package, nothing is downloaded). scikit-learn is used for
that data set only: the model and its training are JAX and optax.

Example:
    >>> import jax
    >>> data = digits()
    >>> data.x_train.shape, data.x_test.shape, data.n_classes
    ((1348, 61), (449, 61), 10)
    >>> task = mlp_classifier(data, n_hidden=16)
    >>> params = task.init(jax.random.key(0), task.hyper({}), data=task.data)
    >>> params["W_in"].shape, params["W_out"].shape
    ((16, 61), (10, 16))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pydantic
from jaxtyping import Array, Float, Int

from toylab.errors import ConfigError, validated
from toylab.tasks.base import Task

__all__ = ["Dataset", "digits", "mlp_classifier", "mlp_logits", "accuracy"]


class Dataset(NamedTuple):
    """A fixed train/test split of a classification data set (numpy, float32 inputs)."""

    name: str
    x_train: Float[np.ndarray, "n_train n_inputs"]
    y_train: Int[np.ndarray, " n_train"]
    x_test: Float[np.ndarray, "n_test n_inputs"]
    y_test: Int[np.ndarray, " n_test"]
    n_classes: int
    split_seed: int  # the seed of the permutation that made the split

    def describe(self) -> dict[str, Any]:
        """JSON-ready sizes and provenance (no data)."""
        return {"dataset": self.name, "n_train": len(self.y_train), "n_test": len(self.y_test),
                "n_inputs": int(self.x_train.shape[1]), "n_classes": self.n_classes,
                "split_seed": self.split_seed}


def digits(*, test_fraction: float = 0.25, split_seed: int = 0) -> Dataset:
    """scikit-learn's 8×8 handwritten digits, split into train and test by a seeded permutation.

    Pixel intensities 0..16 are scaled to [0, 1]. The 3 pixels that are 0 in every image
    (two corners and one edge pixel) are removed: they carry no information and get no
    gradient, so their weight columns would stay at their random initial values and be
    counted as features that the network never learned. 61 inputs remain.

    Args:
      test_fraction: share of the 1,797 images held out for testing, in (0, 1).
      split_seed: seed of the permutation; the same seed always gives the same split.

    Returns:
      A :class:`Dataset`.
    """
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction={test_fraction!r}: expected a share in (0, 1)")
    from sklearn.datasets import load_digits  # imported here: only this data set needs it

    data = load_digits()
    x = np.asarray(data.data, dtype=np.float32) / 16.0  # (n_images, 64), in [0, 1]
    y = np.asarray(data.target, dtype=np.int32)  # (n_images,)
    x = x[:, x.std(axis=0) > 0]  # (n_images, 61): drop the always-zero pixels
    order = np.random.default_rng(split_seed).permutation(len(y))
    n_test = round(test_fraction * len(y))
    test, train = order[:n_test], order[n_test:]
    return Dataset("sklearn digits", x[train], y[train], x[test], y[test], int(y.max()) + 1, split_seed)


def mlp_logits(params: Mapping[str, Array], x: Float[Array, "... n_inputs"]) -> Float[Array, "... n_classes"]:
    """``W_out ReLU(W_in x)`` for one example or a batch (leading axes of ``x``)."""
    h = jax.nn.relu(jnp.einsum("hi,...i->...h", params["W_in"], x))  # (..., d_hidden)
    return jnp.einsum("ch,...h->...c", params["W_out"], h)  # (..., n_classes)


def accuracy(params: Mapping[str, Array], x: Float[Array, "batch n_inputs"], y: Int[Array, " batch"]) -> Array:
    """Share of examples whose largest logit is the label."""
    return jnp.mean(jnp.argmax(mlp_logits(params, x), axis=-1) == y)


class _NoHyper(pydantic.BaseModel, frozen=True, extra="forbid"):
    """Instances of the classifier differ only by seed: no per-instance settings."""


def mlp_classifier(dataset: Dataset, n_hidden: int = 32) -> Task:
    """Build the bias-free ReLU classifier task on ``dataset`` with ``n_hidden`` hidden units.

    Init: He-normal for ``W_in`` (std² = 2/n_inputs, for a ReLU layer), LeCun-normal for
    ``W_out`` (std² = 1/d_hidden). Per-instance config: ``{}`` (seeds differ, nothing else).
    Metrics at each evaluation: ``train_accuracy``, ``test_accuracy``, ``test_loss``.

    Raises:
      ConfigError: ``n_hidden < 1``.
    """
    if isinstance(n_hidden, bool) or not isinstance(n_hidden, int) or n_hidden < 1:
        raise ConfigError(f"n_hidden={n_hidden!r}: expected a whole number ≥ 1 of hidden units")
    n_inputs, n_classes = int(dataset.x_train.shape[1]), dataset.n_classes
    shared = {name: np.asarray(getattr(dataset, name)) for name in ("x_train", "y_train", "x_test", "y_test")}

    def hyper(config: Mapping[str, Any]) -> dict[str, Array]:
        validated(_NoHyper, **config)
        return {}

    def init(key: jax.Array, hyper: dict[str, Array], data) -> dict[str, Array]:
        del hyper, data
        key_in, key_out = jax.random.split(key)
        return {
            "W_in": math.sqrt(2.0 / n_inputs) * jax.random.normal(key_in, (n_hidden, n_inputs)),
            "W_out": math.sqrt(1.0 / n_hidden) * jax.random.normal(key_out, (n_classes, n_hidden)),
        }

    def sample(key: jax.Array, hyper: dict[str, Array], batch_size: int, data):
        del hyper
        index = jax.random.randint(key, (batch_size,), 0, data["x_train"].shape[0])  # (batch,)
        return data["x_train"][index], data["y_train"][index]

    def cross_entropy(params, x, y) -> Array:
        return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(mlp_logits(params, x), y))

    def loss(params: dict[str, Array], batch, hyper: dict[str, Array], data) -> Array:
        del hyper, data
        return cross_entropy(params, *batch)

    def exact_loss(params: dict[str, Array], hyper: dict[str, Array], data) -> Array:
        del hyper
        return cross_entropy(params, data["x_train"], data["y_train"])

    def measure(params: dict[str, Array], hyper: dict[str, Array], key: jax.Array, data) -> dict[str, Array]:
        del hyper, key
        return {
            "train_accuracy": accuracy(params, data["x_train"], data["y_train"]),
            "test_accuracy": accuracy(params, data["x_test"], data["y_test"]),
            "test_loss": cross_entropy(params, data["x_test"], data["y_test"]),
        }

    # Forward FLOPs per example: two matrix-vector products (2 per multiply-add), ReLU, and
    # softmax cross-entropy (~5 per class); a step is 3 forward passes (Kaplan et al. 2020).
    forward_flops = 2.0 * n_hidden * (n_inputs + n_classes) + n_hidden + 5.0 * n_classes
    return Task(
        name="mlp_classifier",
        spec={**dataset.describe(), "n_hidden": n_hidden, "biases": False},
        hyper=hyper,
        init=init,
        sample=sample,
        loss=loss,
        flops_per_step=lambda batch_size: 3.0 * forward_flops * batch_size,
        metrics=measure,
        exact_loss=exact_loss,
        batch_size=128,
        data=shared,
    )
