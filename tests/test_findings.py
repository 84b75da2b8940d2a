"""Published findings of Elhage et al. (2022), on configs small enough for CI."""

import numpy as np
import pytest

from toylab import metrics
from toylab.experiments import tms

FAST = tms.TrainConfig(steps=2500, batch_size=512, elicit_steps=0)


def _best_W(result):
    W = np.asarray(result.params["W"])
    return [W[i] for i in tms.best_indices(result)]


def test_sparse_equal_importance_features_form_a_pentagon():
    """n=5, m=2, equal importance, p=0.05: five features on a regular pentagon (§3)."""
    result = tms.run(n_features=5, n_hidden=2, feature_probability=[0.05], importance=1.0,
                     seeds=3, train_config=FAST)
    (W,) = _best_W(result)
    groups = metrics.geometry(W)
    assert [(g.name, g.features) for g in groups] == [("pentagon", (0, 1, 2, 3, 4))]
    np.testing.assert_allclose(metrics.feature_dimensionality(W), 0.4, atol=0.03)
    assert float(metrics.features_per_dimension(W)) > 2.0


def test_dense_features_give_the_pca_solution():
    """p = 1: the m most important features, orthogonal; the rest are dropped."""
    # Dense data converges slowly at lr 1e-3 (features compete for the plane); 1e-2 is enough.
    fast_dense = FAST.model_copy(update={"steps": 1500, "lr": 1e-2})
    result = tms.run(n_features=5, n_hidden=2, feature_probability=[1.0], importance=0.7,
                     seeds=2, train_config=fast_dense)
    (W,) = _best_W(result)
    assert [g.name for g in metrics.geometry(W)] == ["dedicated", "dedicated", "not represented"]
    assert int(metrics.n_represented(W)) == 2
    assert metrics.represented(W).tolist() == [True, True, False, False, False]
    unit = W[:, :2] / np.linalg.norm(W[:, :2], axis=0)
    assert abs(unit[:, 0] @ unit[:, 1]) < 0.05
    np.testing.assert_allclose(np.asarray(metrics.feature_dimensionality(W))[:2], 1.0, atol=0.02)


@pytest.mark.parametrize("importance", [1.0, 0.8])
def test_a_linear_model_never_superposes(importance):
    """Without the ReLU, at any sparsity, at most one feature per dimension."""
    probabilities = [1.0, 0.3, 0.1, 0.03, 0.01]
    result = tms.run(n_features=8, n_hidden=3, feature_probability=probabilities,
                     importance=importance, output="linear", seeds=1, train_config=FAST)
    fpd = np.asarray(metrics.features_per_dimension(result.params["W"]))
    assert fpd.max() <= 1.02, fpd
