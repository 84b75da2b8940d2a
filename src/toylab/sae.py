"""Sparse autoencoders on your own activations: ``toylab.sae.fit`` and ``toylab sae ACTS.npy``.

Trains ``seeds`` SAEs side by side (one compiled program, :func:`toylab.train.train` on
:func:`toylab.tasks.sae.sae_on_activations`) on one array of activations, ``(rows, d_in)``, from
numpy, JAX or PyTorch, and measures each on held-out rows: L0, fraction of variance unexplained,
dead latents and, when the true feature directions are known, MMCS, MCC (Hungarian one-to-one)
and the number of features matched at cosine ≥ 0.9 (:mod:`toylab.metrics.sae`).

Defaults, for activations at any scale: ``d_sae = 4 d_in``; the L1 architecture with
``l1_coefficient = 0.3 · RMS‖h − mean h‖`` (the penalty ``λ Σ f_j`` scales with ``h`` while the
squared error scales with its square, so λ must carry the activations' scale; 0.3 recovers 8
sparse directions in 4 dimensions, see tests/test_sae.py); Adam at lr 3e-3, 256 rows a step.

Example:
    >>> import numpy as np
    >>> acts = np.random.default_rng(0).random((1000, 3)).astype(np.float32)
    >>> fitted = fit(acts, d_sae=6, k=2, steps=20, seeds=2)  # doctest: +SKIP
    >>> [sae["seed"] for sae in fitted.saes], fitted.saes[0]["l0"] <= 2  # doctest: +SKIP
    ([0, 1], True)
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
from rich.table import Table

from toylab.arrays import load_array
from toylab.errors import ConfigError
from toylab.io import atomic_write, json_safe
from toylab.metrics import sae as sae_metrics
from toylab.tasks.sae import _checked_activations, checked_features, sae_on_activations
from toylab.train import TrainConfig, TrainResult, train

__all__ = ["SAEFit", "fit", "fit_file", "summarize", "write_run", "tables", "default_l1_coefficient"]

_L1_SCALE = 0.3  # default λ in units of the activations' RMS (centred) norm


@dataclasses.dataclass(frozen=True)
class SAEFit:
    """Trained SAEs (one per seed) and what was measured on the held-out rows.

    ``saes[i]``: ``seed``, ``l0``, ``fvu``, ``dead_latents`` and with features ``mmcs``,
    ``mcc``, ``matched``. ``best``: the index of the best seed (highest MCC when the features
    are known, else the lowest held-out SAE loss ``‖h − ĥ‖² + λ Σ f``).
    """

    result: TrainResult
    d_sae: int
    l1_coefficient: float
    k: int | None
    saes: list[dict[str, Any]]
    best: int

    @property
    def params(self) -> dict[str, np.ndarray]:
        """Every SAE's weights, leading axis ``seeds``: ``W_enc (d_sae, d_in)``, ``W_dec (d_in, d_sae)``, biases."""
        return self.result.params


def default_l1_coefficient(activations: np.ndarray) -> float:
    """``0.3 · sqrt(E‖h − mean h‖²)``: λ at the activations' own scale."""
    return float(_L1_SCALE * sae_metrics.rms_norm(activations))


def fit(
    activations: Any,
    *,
    d_sae: int | None = None,
    l1_coefficient: float | None = None,
    k: int | None = None,
    steps: int = 5000,
    seeds: int = 4,
    features: Any = None,
    feature_axis: int = 1,
    lr: float = 3e-3,
    batch_size: int = 256,
    held_out: int | None = None,
    seed: int = 0,
) -> SAEFit:
    """Train ``seeds`` SAEs on ``activations`` side by side and measure them on held-out rows.

    Args:
      activations: ``(rows, d_in)``, numpy, JAX or PyTorch; finite.
      d_sae: latents per SAE (default ``4 d_in``).
      l1_coefficient: λ of the L1 architecture, ≥ 0 (default: see the module docstring).
      k: train TopK SAEs with ``k`` active latents per row instead (1 ≤ k ≤ d_sae).
      steps: optimizer steps per SAE.
      seeds: SAEs, each from its own initialisation and batches.
      features: the true feature directions, ``(d_in, n_features)`` (``feature_axis=0``:
        ``(n_features, d_in)``), for MMCS, MCC and matched features.
      lr, batch_size: Adam's learning rate; rows per step.
      held_out: the first rows, kept out of training and measured on (default
        ``min(4096, rows // 10)``).
      seed: the base seed.

    Raises:
      ConfigError: activations that are not a finite 2-D array, both λ and ``k`` given, λ < 0,
        ``k`` outside 1..d_sae, features of another dimension than the activations'.
    """
    acts = _checked_activations(activations)
    d_in = acts.shape[1]
    d_sae = 4 * d_in if d_sae is None else d_sae
    if k is not None and l1_coefficient is not None:
        raise ConfigError(f"l1_coefficient={l1_coefficient!r} and k={k!r}: give one, the L1 penalty or TopK's k")
    if feature_axis not in (0, 1) or isinstance(feature_axis, bool):
        raise ConfigError(f"feature_axis={feature_axis!r}: expected 1 (features are columns) or 0 (rows)")
    if features is not None:
        features = checked_features(_array(features).T if feature_axis == 0 else features, d_in)
    architecture = "standard" if k is None else "topk"
    task = sae_on_activations(acts, d_sae=d_sae, architecture=architecture, held_out=held_out,
                              features=features, batch_size=batch_size)
    if k is None:
        l1_coefficient = default_l1_coefficient(acts) if l1_coefficient is None else l1_coefficient
        config = {"l1_coefficient": l1_coefficient}
    else:
        l1_coefficient, config = 0.0, {"k": k}
    result = train(task, [config], seeds=seeds, seed=seed,
                   config=TrainConfig(steps=steps, optimizer="adam", lr=lr, elicit_steps=0))
    saes, losses = [], []
    held = task.data["held_out"]
    for index, instance in enumerate(result.instances):
        params = result.instance_params(index)
        latents = np.asarray(sae_metrics.encode(params, held, k))
        h_hat = np.asarray(sae_metrics.decode(params, latents))
        row = {"seed": instance.seed, "l0": sae_metrics.l0(latents),
               "fvu": sae_metrics.fraction_of_variance_unexplained(held, h_hat),
               "dead_latents": sae_metrics.dead_latents(latents)}
        if features is not None:
            row["mmcs"] = sae_metrics.mmcs(params["W_dec"], features)
            row["mcc"] = sae_metrics.mcc(params["W_dec"], features)
            row["matched"] = int(sae_metrics.matched_features(params["W_dec"], features).sum())
        saes.append(row)
        losses.append(np.mean(np.sum((held - h_hat) ** 2, axis=1)) + l1_coefficient * np.mean(latents.sum(axis=1)))
    best = int(np.argmax([row["mcc"] for row in saes])) if features is not None else int(np.nanargmin(losses))
    return SAEFit(result=result, d_sae=d_sae, l1_coefficient=float(l1_coefficient), k=k, saes=saes, best=best)


def _array(values: Any) -> np.ndarray:
    if hasattr(values, "detach"):
        values = values.detach().cpu().float().numpy()
    return np.asarray(values)


def fit_file(path: str | Path, *, features: str | Path | None = None, array: str | None = None,
             **options: Any) -> SAEFit:
    """:func:`fit` on arrays read from files as ``toylab measure`` reads them (``.npy``, ``.npz``,
    ``.safetensors``; never unpickled). A refusal names the file."""
    acts = load_array(path, array=array)
    try:
        acts = _checked_activations(acts)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    true = None
    if features is not None:
        true = load_array(features)
        try:
            d_in = acts.shape[1]
            checked_features(true.T if options.get("feature_axis", 1) == 0 else true, d_in)
        except ConfigError as exc:
            raise ConfigError(f"{features}: {exc}") from None
    return fit(acts, features=true, **options)


def summarize(fitted: SAEFit) -> dict[str, Any]:
    """The JSON of ``toylab sae --json``: ``saes`` (one per seed), ``best`` (that seed's row) and the settings."""
    return {"d_sae": fitted.d_sae, "l1_coefficient": None if fitted.k is not None else fitted.l1_coefficient,
            "k": fitted.k, "steps": fitted.result.config.steps, "saes": fitted.saes,
            "best": fitted.saes[fitted.best]}


def write_run(folder: str | Path, fitted: SAEFit, summary: dict[str, Any]) -> list[Path]:
    """``summary.json`` and ``sae.npz`` (every seed's weights, leading axis ``seeds``) into ``folder``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {name: np.asarray(leaf) for name, leaf in fitted.params.items()}
    return [atomic_write(folder / "summary.json", lambda f: f.write(json.dumps(json_safe(summary), indent=1).encode())),
            atomic_write(folder / "sae.npz", lambda f: np.savez(f, **arrays))]


def tables(summary: dict[str, Any]) -> list[Table]:
    """One row per seed, for a terminal."""
    setting = f"k={summary['k']}" if summary["k"] is not None else f"λ={summary['l1_coefficient']:.3g}"
    table = Table(title=f"SAEs with d_sae={summary['d_sae']}, {setting}, {summary['steps']} steps (held-out rows)")
    columns = [c for c in ("seed", "l0", "fvu", "dead_latents", "mmcs", "mcc", "matched") if c in summary["best"]]
    for column in columns:
        table.add_column(column, justify="right")
    for row in summary["saes"]:
        best = " *" if row is summary["best"] or row == summary["best"] else ""
        table.add_row(*(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns[:-1]),
                      f"{row[columns[-1]]:.3f}{best}" if isinstance(row[columns[-1]], float) else f"{row[columns[-1]]}{best}")
    return [table]
