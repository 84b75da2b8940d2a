"""One error hierarchy: bad input to figures, phase metrics and phase theory is a one-line ConfigError,
and the package cites papers and concepts, never a design document that is not in the repository."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot is imported anywhere in this process

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import toylab  # noqa: E402
from toylab import figures  # noqa: E402
from toylab.errors import ConfigError  # noqa: E402
from toylab.metrics import classify_phase  # noqa: E402
from toylab.metrics.lowrank import Bump  # noqa: E402
from toylab.theory import phases  # noqa: E402

T = np.linspace(0.0, 1.0, 5)
ONES = np.ones(3)
MEASURES = {"features_per_dimension": ONES, "features_per_dimension_invariant": ONES,
            "mean_feature_dimensionality": ONES}

# Every public function that checks its input, called with one bad value; the fragment names it.
BAD_CALLS = {
    "feature_vectors: d_hidden 3": (lambda: figures.feature_vectors(np.zeros((2, 3, 5))), "(2, 3, 5)"),
    "feature_vectors: titles": (lambda: figures.feature_vectors(np.zeros((2, 2, 5)), ["a"]), "1 titles"),
    "feature_vectors: importance": (lambda: figures.feature_vectors(np.zeros((2, 5)), importance=ONES), "(3,)"),
    "norms_and_interference: empty": (lambda: figures.norms_and_interference(np.zeros((0, 2, 5))), "(0, 2, 5)"),
    "dimensions_per_feature: p = 0": (lambda: figures.dimensions_per_feature([0.5, 0.0], [1.0, 1.0]), "got 0.0"),
    "dimensions_per_feature: best": (lambda: figures.dimensions_per_feature([0.5, 0.1], [1, 1], best=[True]), "(1,)"),
    "feature_dimensionality: shapes": (lambda: figures.feature_dimensionality(ONES / 2, np.ones((4, 5))), "(4, 5)"),
    "loss_history: shapes": (lambda: figures.loss_history([1, 2], [[1.0, 2.0, 3.0]], ["a"]), "(1, 3)"),
    "loss_history: no step > 0": (lambda: figures.loss_history([0, 0], [[1.0, 2.0]], ["a"]), "step > 0"),
    "save: extension": (lambda: figures.save(Figure(), "/tmp", "x.png"), "'x.png'"),
    "LossCurves: shapes": (lambda: figures.LossCurves(T, np.ones((2, 4))), "(2, 4)"),
    "loss_curves: floor": (lambda: figures.loss_curves(figures.LossCurves(T, T + 1), log_loss=True,
                                                       loss_floor=-1.0), "got -1.0"),
    "loss_curves: log time": (lambda: figures.loss_curves(figures.LossCurves(-T - 1, T), log_time=True), "t > 0"),
    "rank_sweep: no panels": (lambda: figures.rank_sweep([]), "at least one panel"),
    "mode_strengths: shapes": (lambda: figures.mode_strengths(T, np.ones((5, 2)), ONES), "(3,)"),
    "alignment: bump": (lambda: figures.alignment(T, np.ones((5, 1, 1)), bumps=[Bump(3, 0, 0.5, 1.0, 1.0)]),
                        "learned=3"),
    "plateau_vs_init: scales": (lambda: figures.plateau_vs_init([-1.0], {"GD": [1.0]}), "positive"),
    "rescale_check: scales": (lambda: figures.rescale_check(
        -ONES, accuracy=ONES, predictions_changed=ONES, classifier_measures=MEASURES, tms_loss=ONES,
        tms_measures=MEASURES, n_test=10), "all > 0"),
    "phase_diagram: names": (lambda: figures.phase_diagram([0.5], [1.0], [["pentagon"]]), "'pentagon'"),
    "classify_phase: one feature": (lambda: classify_phase(np.ones((2, 1))), "(2, 1)"),
    "classify_phase: extra": (lambda: classify_phase(np.ones((2, 3)), extra=5), "extra=5"),
    "candidate_losses: density": (lambda: phases.candidate_losses(np.linspace(0, 1, 50), 1.0), "density=0.0"),
    "closed_form_phase: importance": (lambda: phases.closed_form_phase(0.5, -2.0), "relative_importance=-2.0"),
    "boundary_density: importance": (lambda: phases.boundary_density(0.0), "relative_importance=0.0"),
    "candidate_solution: phase": (lambda: phases.candidate_solution("pentagon", 0.1), "phase='pentagon'"),
}


@pytest.mark.parametrize("call, fragment", BAD_CALLS.values(), ids=BAD_CALLS.keys())
def test_bad_input_raises_a_one_line_config_error_naming_the_value(call, fragment):
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and fragment in message, message


# The design document's name and its sections S1–S6; a test fixture named SPEC is another matter
# (this test reads only the package).
DOCUMENT = re.compile(r"\bSPEC\b|\bS[1-6]\b")


def test_the_package_cites_papers_not_a_document_outside_the_repository():
    package = Path(toylab.__file__).parent
    found = [f"{path.relative_to(package)}:{number}: {line.strip()}"
             for path in sorted(package.rglob("*.py"))
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
             if DOCUMENT.search(line)]
    assert not found, "\n".join(found)
