"""SAE-steps per second: toylab's compiled trainer against an eager PyTorch SAE loop, side by side.

Command::

    python benchmarks/bench_sae.py [--rounds R]     # needs the `bench` extra (CPU PyTorch)

Setting (issue 11): 512 sparse autoencoders trained at once on one shared array of 65,536
activations (d_in = 16; 32 sparse directions, density 0.05), d_sae = 64, L1 architecture
(λ = 0.1), Adam lr 3e-3, 256 rows per SAE per step drawn with replacement, unit-norm decoder
columns after every step. Both sides run in this process, alternating; each side's figure is the
median of its rounds.

- toylab: :func:`toylab.train.train` on :func:`toylab.tasks.sae.sae_on_activations`, rate
  measured between its step-1 evaluation and the end (compilation excluded, reported apart).
- reference: the same SAE written as eager PyTorch with the SAEs as a tensor dimension
  (``einsum`` over a leading ``saes`` axis, ``torch.optim.Adam`` on the stacked parameters,
  the decoder renormalised under ``no_grad``), the way one batches many SAEs without a
  compiler; timed after warm-up steps. Both sides write the encoder as
  ``W_enc h + (b_enc − W_enc b_dec)``, which spares the backward pass a batch-sized product.

Target: toylab ≥ 5× the reference.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from _sidebyside import compare, trainer_steps_per_second  # noqa: E402

N_SAES, ROWS, D_IN, N_DIRECTIONS, DENSITY, D_SAE, BATCH, L1, LR = 512, 65_536, 16, 32, 0.05, 64, 256, 0.1, 3e-3


def activations(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((N_DIRECTIONS, D_IN))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    codes = np.where(rng.random((ROWS, N_DIRECTIONS)) < DENSITY, rng.random((ROWS, N_DIRECTIONS)), 0.0)
    return (codes @ directions).astype(np.float32)


def toylab_steps_per_second(acts: np.ndarray, steps: int) -> tuple[float, float]:
    from toylab.tasks.sae import sae_on_activations

    task = sae_on_activations(acts, d_sae=D_SAE, batch_size=BATCH, held_out=1024)
    return trainer_steps_per_second(task, [{"l1_coefficient": L1}], seeds=N_SAES, steps=steps,
                                    optimizer="adam", lr=LR)


def reference_steps_per_second(acts: np.ndarray, steps: int, warmup_steps: int = 2) -> float:
    import torch

    generator = torch.Generator().manual_seed(0)
    data = torch.from_numpy(acts[1024:])
    W_dec = torch.randn(N_SAES, D_IN, D_SAE, generator=generator)
    W_dec /= W_dec.norm(dim=1, keepdim=True)
    W_dec.requires_grad_(True)
    W_enc = W_dec.detach().transpose(1, 2).clone().requires_grad_(True)  # (saes, d_sae, d_in)
    b_enc = torch.zeros(N_SAES, D_SAE, requires_grad=True)
    b_dec = data.mean(0).repeat(N_SAES, 1).requires_grad_(True)
    optimizer = torch.optim.Adam([W_enc, b_enc, W_dec, b_dec], lr=LR)

    def step() -> None:
        rows = torch.randint(0, data.shape[0], (N_SAES, BATCH), generator=generator)
        h = data[rows]  # (saes, batch, d_in)
        # W_enc (h − b_dec) + b_enc as W_enc h + (b_enc − W_enc b_dec), the algebra toylab's encoder uses
        bias = b_enc - torch.einsum("nkd,nd->nk", W_enc, b_dec)  # (saes, d_sae)
        f = torch.relu(torch.einsum("nkd,nbd->nbk", W_enc, h) + bias[:, None])  # (saes, batch, d_sae)
        h_hat = torch.einsum("ndk,nbk->nbd", W_dec, f) + b_dec[:, None]
        loss = ((h - h_hat) ** 2).sum(-1).mean(-1) + L1 * f.sum(-1).mean(-1)  # (saes,)
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()  # the SAEs are independent: the sum's gradient is each one's own
        optimizer.step()
        with torch.no_grad():
            W_dec.div_(W_dec.norm(dim=1, keepdim=True))

    for _ in range(warmup_steps):
        step()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per side")
    parser.add_argument("--toylab-steps", type=int, default=300)
    parser.add_argument("--reference-steps", type=int, default=20)
    args = parser.parse_args()
    acts = activations()
    compare(lambda: toylab_steps_per_second(acts, args.toylab_steps),
            lambda: reference_steps_per_second(acts, args.reference_steps),
            rounds=args.rounds, models=N_SAES,
            setting=f"{N_SAES} SAEs, d_in={D_IN}, d_sae={D_SAE}, batch {BATCH}, L1 λ={L1}, Adam, "
                    f"one shared array of {ROWS} activations")


if __name__ == "__main__":
    main()
