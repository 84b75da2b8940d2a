"""Writes contract_reference.npz: weights trained by the trainer before the Task contract widened.

Run against commit d977cd3 (its lowrank task still took a filler batch_size=1):

    git worktree add /tmp/old d977cd3
    cd /tmp/old && PYTHONPATH=src python <this file> <repo>/tests/data/contract_reference.npz
"""
import sys

import numpy as np
from toylab.tasks import superposition
from toylab.tasks.lowrank import lowrank
from toylab.tasks.classifier import digits, mlp_classifier
from toylab.train import TrainConfig, train


def main(path):
    out = {}
    r = train(superposition(5, 2), [{"feature_probability": 0.1, "importance": 0.9}, {"feature_probability": 0.5}],
              seeds=2, seed=7, config=TrainConfig(steps=300, batch_size=256, elicit_steps=10))
    out.update({f"superposition/{k}": v for k, v in r.params.items()})
    out["superposition/loss"] = r.history("loss"); out["superposition/elicited_loss"] = r.history("loss", elicited=True)
    r = train(lowrank(d=6, entries_per_step=16), [{"rank": 2, "init_scale": 0.1}], seeds=2, seed=3,
              config=TrainConfig(steps=200, batch_size=1, lr=0.05, optimizer="sgd", elicit_steps=0))
    out.update({f"lowrank/factors/{i}": v for i, v in enumerate(r.params["factors"])})
    out["lowrank/loss"] = r.history("loss")
    r = train(mlp_classifier(digits(), n_hidden=8), [{}], seeds=2, seed=1,
              config=TrainConfig(steps=100, batch_size=128, optimizer="adam", lr=1e-2, elicit_steps=0))
    out.update({f"classifier/{k}": v for k, v in r.params.items()})
    out["classifier/test_accuracy"] = r.history("test_accuracy")
    np.savez(path, **out)
    print({k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    main(sys.argv[1])
