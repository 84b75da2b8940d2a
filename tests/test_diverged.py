"""One diverged instance never costs the others their results, in every study and command.

Divergence comes from plain SGD at a large rate on batches of 32 (50 steps). Measured: at
lr 5 both seeds of p = 1 end with NaN weights while p = 0.05 and p = 0.3 train normally; at
lr 3, seed 1 of p = 1 diverges and seed 0 does not.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from cli_json import outputs_of, result_of
from typer.testing import CliRunner

import toylab
from toylab.cli import app
from toylab.errors import StoreError
from toylab.experiments import intro, phase, reproduce, rescale, tms
from toylab.experiments.runs import divergence_warning, diverged
from toylab.train import TrainConfig

runner = CliRunner()
SGD = TrainConfig(steps=50, batch_size=32, optimizer="sgd", lr=5.0, elicit_steps=3)


def _strict_json(path):
    """A file's JSON, refusing NaN and Infinity (which json.dumps writes, and JSON does not have)."""
    def refuse(constant):
        raise ValueError(f"{path}: {constant} is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def _without_wall_time(entry):
    # Wall time is the only field two identical trainings do not share.
    return {**entry, "history": [{k: v for k, v in row.items() if k != "wall_time"} for row in entry["history"]]}


@pytest.fixture(scope="module")
def with_and_without():
    """The same run with and without a config whose every seed diverges."""
    both = tms.run(feature_probability=[0.05, 0.3, 1.0], seeds=2, train_config=SGD)
    alone = tms.run(feature_probability=[0.05, 0.3], seeds=2, train_config=SGD)
    return both, alone


def test_the_trainer_keeps_going_and_marks_which_instances_diverged(with_and_without):
    both, _ = with_and_without
    assert diverged(both).tolist() == [False, False, False, False, True, True]
    assert np.isfinite(both.final.raw["loss"][:4]).all() and np.isnan(both.final.raw["loss"][4:]).all()


def test_the_other_configs_are_exactly_what_they_are_without_the_diverged_one(tmp_path, with_and_without):
    # An instance's key is folded from (base seed, its config's digest, its seed index) only
    # (train/trainer.py, _instance_keys), never from its position in the batch, so the first four
    # instances draw the same init and batches in both runs; vmap computes each independently,
    # so they are equal bit for bit (measured), not just to float tolerance.
    both, alone = with_and_without
    for name in both.params:
        np.testing.assert_array_equal(both.params[name][:4], alone.params[name])
    summary, reference = tms.summarize(both), tms.summarize(alone)
    assert [_without_wall_time(e) for e in summary["instances"][:4]] == \
        [_without_wall_time(e) for e in reference["instances"]]
    assert [_without_wall_time(e) for e in summary["best"][:2]] == [_without_wall_time(e) for e in reference["best"]]

    tms.write_run(tmp_path / "both", both, summary)
    tms.write_run(tmp_path / "alone", alone, reference)
    weights, alone_weights = np.load(tmp_path / "both" / "weights.npz"), np.load(tmp_path / "alone" / "weights.npz")
    assert weights["W"].shape[0] == 6 and np.isnan(weights["W"][4:]).all()  # every instance is kept
    np.testing.assert_array_equal(weights["W"][:4], alone_weights["W"])
    saved = _strict_json(tmp_path / "both" / "summary.json")
    assert [_without_wall_time(e) for e in saved["instances"][:4]] == \
        [_without_wall_time(e) for e in _strict_json(tmp_path / "alone" / "summary.json")["instances"]]
    # The figures draw the two configs that have a finite best seed: the same panels as without.
    assert sorted(p.name for p in (tmp_path / "both").iterdir()) == sorted(p.name for p in (tmp_path / "alone").iterdir())
    figures, alone_figures = tms.superposition_figures(both, summary), tms.superposition_figures(alone, reference)
    assert {k: len(f.axes) for k, f in figures.items()} == {k: len(f.axes) for k, f in alone_figures.items()}


def test_a_diverged_instance_is_flagged_with_null_metrics_and_its_history_cut(with_and_without):
    both, _ = with_and_without
    summary = tms.summarize(both)
    losses = both.history("loss")
    for index in (4, 5):
        entry = summary["instances"][index]
        assert entry["diverged"] is True and entry["feature_probability"] == 1.0
        assert all(entry[name] is None for name in tms.MEASURES)
        first_bad = int(np.argmin(np.isfinite(losses[:, index])))
        # Up to and including the first non-finite loss.
        assert [row["loss"] for row in entry["history"][:-1]] == losses[:first_bad, index].tolist()
        assert len(entry["history"]) == first_bad + 1 and not math.isfinite(entry["history"][-1]["loss"])
    assert not any(entry["diverged"] for entry in summary["instances"][:4])
    # Every seed of p = 1 diverged: its best entry is its first instance, flagged.
    assert summary["best"][2] is summary["instances"][4]
    assert tms.warning(summary) == divergence_warning(2, 6) == \
        "warning: 2 of 6 instances diverged (non-finite loss or weights); their metrics are null"
    assert tms.warning(tms.summarize(with_and_without[1])) is None
    table = tms.tables(summary)[0]
    assert [cell for cell in table.columns[2].cells][2] == "diverged"


def test_best_skips_a_diverged_seed_even_when_it_comes_first():
    # At lr 3 with threefry's data, seed 0 of p = 1 diverges and seed 1 does not (measured). A NaN
    # loss compares false with everything, so a plain "lowest loss" scan would have kept seed 0.
    result = tms.run(feature_probability=[1.0], seeds=2, rng="threefry",
                     train_config=SGD.model_copy(update={"lr": 3.0}))
    assert diverged(result).tolist() == [True, False]
    assert tms.best_indices(result) == [1]
    summary = tms.summarize(result)
    assert summary["best"] == [summary["instances"][1]] and not summary["best"][0]["diverged"]


def test_best_is_the_lowest_loss_among_the_seeds_that_did_not_diverge_read_back_from_a_store(tmp_path, monkeypatch):
    # reproduce intro trains into a store, which keeps no weights for a diverged run; the run
    # comes back with NaN weights and its recorded history, in its place.
    train = SGD.model_copy(update={"lr": 3.0})  # seed 0 of p = 1 diverges, the others do not (measured)
    monkeypatch.setattr(intro, "TRAIN", train)
    monkeypatch.setattr(intro, "FEATURE_PROBABILITY", (0.05, 1.0))
    done = reproduce("intro", tmp_path / "out", seeds=2, steps=50, store=tmp_path / "intro.sqlite")
    instances = done.summary["instances"]
    assert [(e["feature_probability"], e["seed"], e["diverged"]) for e in instances] == [
        (0.05, 0, False), (0.05, 1, False), (1.0, 0, True), (1.0, 1, False)]
    assert done.summary["best"][1] is instances[3]  # the only finite seed of p = 1
    assert done.warning() == "warning: 1 of 4 instances diverged (non-finite loss or weights); their metrics are null"
    history = instances[2]["history"]
    assert not math.isfinite(history[-1]["loss"]) and all(math.isfinite(row["loss"]) for row in history[:-1])

    # The same instances trained directly: the finite ones match the store's, bit for bit.
    direct = tms.summarize(tms.run(feature_probability=[0.05, 1.0], importance=intro.IMPORTANCE, seeds=2,
                                   train_config=train))
    finite = [0, 1, 3]
    assert [_without_wall_time(direct["instances"][i]) for i in finite] == [_without_wall_time(instances[i]) for i in finite]
    assert direct["instances"][2]["diverged"] and len(direct["instances"][2]["history"]) == len(history)
    weights = np.load(tmp_path / "out" / "weights.npz")
    assert weights["W"].shape[0] == 4 and np.isnan(weights["W"][2]).all() and np.isfinite(weights["W"][finite]).all()
    assert (tmp_path / "out" / "feature_vectors.png").exists()

    # Read through the API: refused by default (no weights), kept in place when asked for.
    stored = toylab.load(tmp_path / "intro.sqlite")
    with pytest.raises(StoreError, match=r"1 runs are not done \(diverged\)"):
        stored.train_result()
    kept = stored.train_result(diverged=True)
    np.testing.assert_array_equal(kept.params["W"][finite], weights["W"][finite])
    losses = kept.history("loss")
    assert np.isnan(kept.params["W"][2]).all() and np.isnan(losses[-1, 2]) and np.isfinite(losses[:, finite]).all()


def test_tms_command_exits_0_with_the_diverged_flagged_and_one_warning_line(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["tms", "--feature-probability", "0.05,1", "--optimizer", "sgd", "--lr", "5",
                                 "--steps", "50", "--batch", "32", "--elicit-steps", "3", "--seeds", "2",
                                 "--out", str(out), "--json"])
    payload = result_of(result, "tms")
    assert [e["diverged"] for e in payload["instances"]] == [False, False, True, True]
    for entry in payload["instances"][2:]:
        assert entry["loss"] is None and entry["geometry"] is None and entry["feature_norms"] is None
        assert entry["history"][-1]["loss"] is None  # NaN is written as null
    assert [b["diverged"] for b in payload["best"]] == [False, True]
    assert result.stderr.splitlines() == [
        f"run folder: {out}",
        "warning: 2 of 4 instances diverged (non-finite loss or weights); their metrics are null"]
    assert outputs_of(result) == {"folder": str(out)}
    assert _strict_json(out / "summary.json")["instances"] == payload["instances"]
    assert np.load(out / "weights.npz")["W"].shape == (4, 2, 5)
    assert (out / "feature_vectors.png").exists()


def test_every_seed_of_every_config_diverged_still_writes_the_run(tmp_path):
    result = runner.invoke(app, ["tms", "--feature-probability", "1", "--optimizer", "sgd", "--lr", "5",
                                 "--steps", "50", "--batch", "32", "--elicit-steps", "0", "--seeds", "2",
                                 "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.stderr
    assert "diverged" in result.stdout and result.stderr.splitlines()[-1].startswith("warning: 2 of 2 instances")
    # Nothing finite to draw: the summary and the weights, no figures.
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["summary.json", "weights.npz"]


def test_phase_keeps_each_cells_best_finite_seed_and_blanks_a_cell_with_none(tmp_path, monkeypatch):
    # AdamW at lr 1e9 (measured, grid 2, 2 seeds, 50 steps): every seed of the two dense
    # cells overflows, every seed of the two sparse cells stays finite.
    monkeypatch.setattr(phase, "LR", 1e9)
    store, out = tmp_path / "phase.sqlite", tmp_path / "out"
    result = runner.invoke(app, ["phase", "--grid", "2", "--seeds", "2", "--steps", "50", "--store", str(store),
                                 "--out", str(out), "--json"])
    payload = result_of(result, "phase")
    cells = payload["cells"]
    assert [c["diverged"] for c in cells] == [False, True, False, True]
    assert all(c["phase"] is None and c["loss"] is None and c["feature_norms"] is None for c in cells if c["diverged"])
    assert all(c["phase"] in ("superposition", "dedicated", "not_represented") for c in cells if not c["diverged"])
    assert payload["agreement"] <= 0.5  # a cell with no phase does not agree with the closed form
    assert result.stderr.splitlines()[-1] == (
        "warning: 4 of 8 runs diverged (non-finite loss or weights); each cell keeps its best finite seed; "
        "2 of 4 cells had none and have a null phase")
    assert (out / "phase_n2m1.png").exists() and _strict_json(out / "summary.json")["cells"] == cells


def test_rescale_check_reports_a_diverged_autoencoder_as_null(tmp_path, monkeypatch):
    monkeypatch.setattr(rescale, "TMS_TRAIN", SGD.model_copy(update={"lr": 1e4, "elicit_steps": 0}))
    result = rescale.run(scales=[0.5, 1.0, 2.0], steps=30, tms_steps=30, tms_seeds=2)
    summary = rescale.summarize(result)
    assert summary["settings"]["autoencoder"]["diverged_seeds"] == 2 and summary["settings"]["autoencoder"]["geometry"] is None
    assert np.isnan(summary["tms_loss"]).all() and np.isfinite(summary["accuracy"]).all()
    assert rescale.warning(summary) == ("warning: 2 of 3 models diverged (non-finite loss or weights); "
                                        "the autoencoder's measures are null")
    written = {path.name for path in rescale.write_run(tmp_path, result, summary)}
    assert written == {"summary.json", "weights.npz", "rescale_check.png", "rescale_check.svg"}
    assert _strict_json(tmp_path / "summary.json")["tms_loss"] == [None, None, None]
