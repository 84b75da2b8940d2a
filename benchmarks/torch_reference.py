"""Eager PyTorch reference for the superposition toy model (SPEC.md, section S1).

This module re-implements, in plain eager PyTorch, the training approach of the
official "Toy Models of Superposition" notebook (Elhage et al. 2022,
Anthropic's ``toy_models.ipynb``) and of the widely used ARENA re-implementation:

* Instances are a tensor dimension: ``W`` has shape
  ``(n_instances, n_features, n_hidden)`` and is an ``nn.Parameter`` initialised
  with ``torch.nn.init.xavier_normal_`` applied to the whole 3-D tensor (as the
  notebook does; note that PyTorch then computes fan_in = n_features * n_hidden
  and fan_out = n_instances * n_hidden, so the init scale depends on
  n_instances -- this quirk is reproduced on purpose). ``b_final`` has shape
  ``(n_instances, n_features)`` and starts at zero.
* ``feature_probability`` (per instance) and ``importance`` (per feature) are
  broadcast over ``(batch, instance, feature)``.
* Every step draws a fresh batch: values ``U[0, 1)``, each kept with probability
  ``feature_probability`` and zeroed otherwise.
* Forward: ``h = einsum("bif,ifh->bih", x, W)``,
  ``x_hat = relu(einsum("bih,ifh->bif", h, W) + b_final)``.
* Loss: ``(importance * (x.abs() - x_hat) ** 2)``, mean over batch and
  features, summed over instances (so each instance gets its own gradient, as
  if trained alone).
* Optimiser: ``torch.optim.AdamW`` over all parameters, constant lr
  (reference settings lr=1e-3, weight_decay=0.01), with
  ``opt.zero_grad(); loss.backward(); opt.step()`` every step.

It is the eager baseline ("reference side") for ``benchmarks/bench_tms.py``.
No ``torch.compile``, no CUDA graphs, no fused kernels beyond PyTorch defaults.

Threading: ``torch.set_num_threads`` is deliberately NOT called anywhere in
this module, so PyTorch uses its default intra-op thread count (normally all
physical cores of the machine). Report the core count alongside any timing.

Run ``python benchmarks/torch_reference.py`` for a short timing at n=20, m=5,
batch 1024, 1000 instances, feature probability 0.1, followed by the dense
n=5, m=2 sanity check.
"""

from __future__ import annotations

import time
from typing import Union

import torch
import torch.nn.functional as F
from torch import nn

FloatOrTensor = Union[float, torch.Tensor]


class ReferenceTMS(nn.Module):
    """ReLU-output toy model with tied weights, many instances at once."""

    def __init__(
        self,
        n_instances: int,
        n_features: int,
        n_hidden: int,
        feature_probability: FloatOrTensor = 1.0,
        importance: torch.Tensor | None = None,
    ) -> None:
        super().__init__()
        self.n_instances = n_instances
        self.n_features = n_features
        self.n_hidden = n_hidden

        fp = torch.as_tensor(feature_probability, dtype=torch.float32)
        if fp.ndim == 0:
            fp = fp.expand(n_instances)
        fp = fp.reshape(n_instances)
        # (instances, 1): broadcasts against (batch, instances, features).
        self.register_buffer("feature_probability", fp[:, None].clone())

        if importance is None:
            importance = torch.ones(n_features)
        imp = torch.as_tensor(importance, dtype=torch.float32).reshape(n_features)
        # (1, features): broadcasts against (batch, instances, features).
        self.register_buffer("importance", imp[None, :].clone())

        self.W = nn.Parameter(
            nn.init.xavier_normal_(torch.empty(n_instances, n_features, n_hidden))
        )
        self.b_final = nn.Parameter(torch.zeros(n_instances, n_features))

    def generate_batch(self, batch_size: int) -> torch.Tensor:
        """Fresh sparse batch of shape (batch, instances, features)."""
        shape = (batch_size, self.n_instances, self.n_features)
        feat = torch.rand(shape, device=self.W.device)
        keep = torch.rand(shape, device=self.W.device) <= self.feature_probability
        return torch.where(keep, feat, torch.zeros((), device=self.W.device))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        hidden = torch.einsum("...if,ifh->...ih", features, self.W)
        out = torch.einsum("...ih,ifh->...if", hidden, self.W) + self.b_final
        return F.relu(out)

    def loss(self, batch: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """Importance-weighted MSE: per-instance mean, summed over instances."""
        error = self.importance * (batch.abs() - out) ** 2
        return error.mean(dim=(0, 2)).sum()


def _importance(n_features: int, importance_ratio: float) -> torch.Tensor:
    return importance_ratio ** torch.arange(n_features, dtype=torch.float32)


def _make(
    n_instances: int,
    n_features: int,
    n_hidden: int,
    feature_probability: FloatOrTensor,
    importance_ratio: float,
    lr: float,
    weight_decay: float,
    seed: int,
) -> tuple[ReferenceTMS, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = ReferenceTMS(
        n_instances,
        n_features,
        n_hidden,
        feature_probability=feature_probability,
        importance=_importance(n_features, importance_ratio),
    )
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    return model, opt


def _step(model: ReferenceTMS, opt: torch.optim.Optimizer, batch_size: int) -> torch.Tensor:
    opt.zero_grad()
    batch = model.generate_batch(batch_size)
    out = model(batch)
    loss = model.loss(batch, out)
    loss.backward()
    opt.step()
    return loss


def train_reference(
    n_instances: int,
    n_features: int,
    n_hidden: int,
    feature_probability: FloatOrTensor,
    importance_ratio: float,
    batch_size: int,
    steps: int,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    seed: int = 0,
) -> tuple[ReferenceTMS, float]:
    """Train with constant-lr AdamW; return (model, loss of the final step).

    The returned loss is the summed-over-instances loss of the last step's
    batch (as the notebook logs it); divide by ``n_instances`` for a mean.
    """
    model, opt = _make(
        n_instances, n_features, n_hidden, feature_probability,
        importance_ratio, lr, weight_decay, seed,
    )
    loss = torch.tensor(float("nan"))
    for _ in range(steps):
        loss = _step(model, opt, batch_size)
    return model, float(loss.detach())


def steps_per_second(
    n_instances: int,
    n_features: int,
    n_hidden: int,
    feature_probability: FloatOrTensor,
    importance_ratio: float,
    batch_size: int,
    steps: int,
    warmup_steps: int,
    lr: float = 1e-3,
    weight_decay: float = 0.01,
    seed: int = 0,
) -> float:
    """Training steps per second, timing only the ``steps`` after warmup.

    Each step is the full notebook step (batch generation, forward, loss,
    backward, AdamW update). Uses ``time.perf_counter``; on CUDA the device is
    synchronised before reading the clock. The thread count is left at
    PyTorch's default (``torch.set_num_threads`` is not called).
    Multiply by ``n_instances`` for model-steps/s.
    """
    model, opt = _make(
        n_instances, n_features, n_hidden, feature_probability,
        importance_ratio, lr, weight_decay, seed,
    )
    cuda = model.W.is_cuda
    for _ in range(warmup_steps):
        _step(model, opt, batch_size)
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        _step(model, opt, batch_size)
    if cuda:
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - t0)


def sanity_check(steps: int = 10000, n_instances: int = 4, seed: int = 0) -> torch.Tensor:
    """Dense (p=1) n=5, m=2 run with importance 0.9**i; returns W.

    Expected (PCA-like solution): in every instance the rows of W for
    features 0 and 1 have norm ~1 and are orthogonal; rows 2-4 have norm ~0.
    Returned W has shape (n_instances, 5, 2); feature norms are
    ``W.norm(dim=-1)``.

    Default is 10,000 steps (the S1 reference length): with lr 1e-3 and this
    init, 2,000 steps is NOT enough -- features 2-4 still carry norms of
    ~0.2-0.9 and features 0/1 are not yet orthogonal; by 5,000 steps it is
    mostly there, by 10,000 norms are (1, 1, ~0, ~0, ~0).
    """
    model, _ = train_reference(
        n_instances=n_instances,
        n_features=5,
        n_hidden=2,
        feature_probability=1.0,
        importance_ratio=0.9,
        batch_size=1024,
        steps=steps,
        seed=seed,
    )
    return model.W.detach().clone()


if __name__ == "__main__":
    n_inst, n, m, batch, p = 1000, 20, 5, 1024, 0.1
    sps = steps_per_second(
        n_instances=n_inst, n_features=n, n_hidden=m, feature_probability=p,
        importance_ratio=1.0, batch_size=batch, steps=20, warmup_steps=3,
    )
    print(
        f"torch {torch.__version__}, threads={torch.get_num_threads()}: "
        f"n={n} m={m} batch={batch} instances={n_inst} p={p} AdamW eager: "
        f"{sps:.2f} steps/s, {sps * n_inst:.0f} model-steps/s"
    )

    W = sanity_check()
    norms = W.norm(dim=-1)
    unit = W[:, :2] / norms[:, :2, None]
    cos01 = (unit[:, 0] * unit[:, 1]).sum(-1)
    print("sanity check (n=5, m=2, dense, importance 0.9^i, 10000 steps)")
    print("feature norms per instance:\n", norms.numpy().round(3))
    print("cos(W_0, W_1) per instance:", cos01.numpy().round(3))
