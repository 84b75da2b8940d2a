"""``toylab reproduce importance`` and ``dimensionality`` (the reference notebook's n = 100 and n = 200
experiments), on small fast versions: fewer features, two or three probabilities, few steps."""

import json

import numpy as np
import pytest

from toylab.experiments import dimensionality, findings, importance, notebook
from toylab.experiments.studies import reproduce

ROW = {"feature_probability", "seed", "diverged", "loss", "loss_standard_error", "loss_examples",
       "features_per_dimension", "dimensions_per_feature", "n_represented", "n_alone", "n_superposed",
       "feature_dimensionality", "feature_norms", "interference", "fraction_counts", "seeds_dimensions_per_feature"}


def _check(summary, finding_id):
    return next(f for f in findings.FINDINGS if f.id == finding_id).check(summary)


def test_fraction_counts_take_the_nearest_fraction_within_near():
    D = np.array([1.0, 0.985, 0.96, 0.75, 0.67, 0.5, 0.515, 0.39, 0.38, 0.2, 0.9])
    kept = np.ones_like(D, bool)
    kept[-1] = False
    counts = notebook.fraction_counts(D, kept)
    # 0.39 is nearer 2/5 (0.4) than 3/8 (0.375); 0.38 nearer 3/8; 0.96 and 0.2 sit at none.
    assert counts == {"1": 2, "3/4": 1, "2/3": 1, "1/2": 2, "2/5": 1, "3/8": 1, "other": 2, "not represented": 1}


@pytest.mark.slow
def test_importance_keeps_the_most_important_alone_when_dense_and_superposes_when_sparse(tmp_path, monkeypatch):
    # n = 10 features of importance 100^(−i/9) in m = 3 dimensions: the notebook's setting scaled down.
    monkeypatch.setattr(importance, "N_FEATURES", 10)
    monkeypatch.setattr(importance, "N_HIDDEN", 3)
    monkeypatch.setattr(importance, "IMPORTANCE", tuple(100.0 ** -np.linspace(0, 1, 10)))
    monkeypatch.setattr(importance, "FEATURE_PROBABILITY", (1.0, 0.05))
    done = reproduce("importance", tmp_path / "out", seeds=2, steps=3000, store=tmp_path / "s.sqlite",
                     progress=False)
    summary = json.loads((done.folder / "summary.json").read_text())
    assert [r["feature_probability"] for r in summary["rows"]] == [1.0, 0.05]
    assert len(summary["instances"]) == 4 and all(set(r) == ROW for r in summary["rows"])
    assert all(len(r["feature_dimensionality"]) == 10 for r in summary["rows"])
    assert (done.folder / "norms_and_interference.png").exists() and (done.folder / "weights.npz").exists()
    dense, sparse = summary["rows"]
    # PCA when dense: the 3 most important features, each alone; superposition when sparse.
    assert dense["n_represented"] == 3 and dense["n_alone"] == 3 and dense["n_superposed"] == 0
    assert _check(summary, "importance-dense-pca").passed
    assert sparse["n_represented"] > 3 and sparse["n_superposed"] >= 2
    assert _check(summary, "importance-important-alone").passed or sparse["n_alone"] == 0


@pytest.mark.slow
def test_dimensionality_sits_at_one_when_dense_and_below_one_half_when_sparse(tmp_path, monkeypatch):
    # n = 20 equally important features in m = 4 dimensions, dense and very sparse.
    monkeypatch.setattr(dimensionality, "N_FEATURES", 20)
    monkeypatch.setattr(dimensionality, "N_HIDDEN", 4)
    monkeypatch.setattr(dimensionality, "FEATURE_PROBABILITY", (1.0, 0.05))
    done = reproduce("dimensionality", tmp_path / "out", seeds=2, steps=3000, store=tmp_path / "s.sqlite",
                     progress=False)
    summary = json.loads((done.folder / "summary.json").read_text())
    assert all(set(r) == ROW for r in summary["rows"]) and len(summary["instances"]) == 4
    assert all(len(r["seeds_dimensions_per_feature"]) == 2 for r in summary["rows"])
    for name in ("dimensions_per_feature", "feature_dimensionality"):
        assert (done.folder / f"{name}.png").exists() and (done.folder / f"{name}.svg").exists()
    dense, sparse = summary["rows"]
    # Dense and equally important: a projection onto m dimensions (‖W‖²_F = m), not necessarily onto m
    # of the features (any m-dimensional subspace serves equally well).
    assert abs(dense["dimensions_per_feature"] - 1) <= 0.05
    assert sparse["dimensions_per_feature"] <= 0.5 and sparse["n_represented"] > 8
    counts = sparse["fraction_counts"]
    assert sum(counts.values()) == 20 and counts["not represented"] == 20 - sparse["n_represented"]


def _rows(values, **extra):
    p = 20.0 ** -np.linspace(0, 1, len(values))
    return {"study": {"n_hidden": 20, "near": notebook.NEAR},
            "rows": [{"feature_probability": float(q), "diverged": False, "dimensions_per_feature": v, **extra}
                     for q, v in zip(p, values, strict=True)]}


def test_sticky_check_needs_three_settings_at_one_and_three_at_one_half():
    check = next(f for f in findings.FINDINGS if f.id == "dimensionality-sticky").check
    assert check(_rows([1.0, 0.99, 0.97, 0.8, 0.53, 0.5, 0.46, 0.4])).passed
    two_at_half = check(_rows([1.0, 0.99, 0.97, 0.8, 0.53, 0.5, 0.44, 0.4]))
    assert not two_at_half.passed and two_at_half.numbers["run_at_half"] == 2
    assert not check(_rows([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3])).passed  # a smooth fall


def test_fraction_check_pools_only_where_the_model_superposes():
    summary = _rows([1.0, 0.5, 0.4])
    summary["rows"][0]["fraction_counts"] = {"1": 0, "other": 20, "not represented": 180}  # dense: left out
    summary["rows"][1]["fraction_counts"] = {"1/2": 30, "other": 10, "not represented": 160}
    summary["rows"][2]["fraction_counts"] = {"2/5": 20, "other": 20, "not represented": 160}
    measured = _check(summary, "dimensionality-fractions")
    assert measured.numbers["share"] == 50 / 80 and measured.passed
    summary["rows"][2]["fraction_counts"] = {"2/5": 10, "other": 30, "not represented": 160}
    assert not _check(summary, "dimensionality-fractions").passed  # 40/80


def test_superposition_grows_check_reads_the_dense_and_sparsest_rows():
    summary = _rows([1.0, 0.7, 0.45])
    for row, kept, shared in zip(summary["rows"], (20, 26, 31), (0, 8, 10), strict=True):
        row.update(n_represented=kept, n_superposed=shared)
    assert _check(summary, "importance-superposition-grows").passed
    summary["rows"][0]["n_superposed"] = 1  # superposition already at p = 1
    assert not _check(summary, "importance-superposition-grows").passed
