"""The study registry behind ``toylab reproduce``, and the checks the CLI used to make itself."""

import pytest

from toylab.errors import ConfigError
from toylab.experiments import STUDIES, capability, intro, scurve, tms
from toylab.experiments.studies import reproduce


def test_every_study_runs_summarizes_saves_and_reports_itself():
    for name, study in STUDIES.items():
        assert study.describe()["study"] == name
        for function in (study.train, study.summarize, study.write_run, study.tables, study.warning):
            assert callable(function), (name, function)
    assert STUDIES["intro"].store is intro.default_store and STUDIES["scurves"].store is None


def test_reproduce_refuses_an_unknown_study_and_a_store_it_would_not_use(tmp_path):
    with pytest.raises(ConfigError, match="unknown study 'nope'; available: capability, dimensionality, importance, intro, "
                       "linear, myopia, phase-n2m1, phase-n3m2, rescale, scurves"):
        reproduce("nope", tmp_path)
    with pytest.raises(ConfigError, match="--store .*: only the intro, linear, phase-n2m1, phase-n3m2, importance and "
                       "dimensionality studies train as a sweep into a store"):
        reproduce("scurves", tmp_path / "out", store=tmp_path / "s.sqlite")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("run", [tms.run, scurve.run, capability.run])
def test_fewer_than_one_seed_is_refused_by_name(run):
    with pytest.raises(ConfigError, match="seeds=0: need at least 1 seed per config"):
        run(seeds=0)


def test_scurve_summary_refuses_an_unknown_time_axis():
    with pytest.raises(ConfigError, match="time_axis='sqrt': choose linear or log"):
        scurve.summarize(None, time_axis="sqrt")
