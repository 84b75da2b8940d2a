"""The sweep store: refusing files that are not stores, one writer, weights before rows, failures."""

import contextlib
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import toylab
from toylab import sweeps
from toylab.cli import app
from toylab.errors import ConfigError, StoreError
from toylab.store import Store
from toylab.store.files import arrays_folder, read_arrays
from toylab.sweeps import backends, registry
from toylab.train import TrainConfig
from toylab.sweeps.chunks import auto_chunk_size, bytes_per_instance, plan_chunks
from toylab.tasks import superposition

runner = CliRunner()
EXAMPLE = str(Path(__file__).parent.parent / "examples" / "sweep_tms.toml")
SPEC = sweeps.SweepSpec(task="superposition", axes={"feature_probability": [0.1, 0.5, 1.0]}, seeds=2,
                        train={"steps": 30, "batch_size": 64, "elicit_steps": 0})


def empty_store(path):
    """A real store holding SPEC's runs, none trained (no JAX work needed)."""
    Store.create(path, SPEC.canonical(), SPEC.digest, plan_chunks(SPEC.runs(), lambda run: 2)).close()
    arrays_folder(path).rmdir()  # empty: the files a refused store must keep are its own
    return path


def foreign_sqlite(path):
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        db.execute("CREATE TABLE notes (text TEXT)")
        db.execute("INSERT INTO notes VALUES ('mine')")
    return path


def truncated_store(path):
    data = empty_store(path).read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def damaged_store(path):
    data = bytearray(empty_store(path).read_bytes())
    data[4096:8192] = b"\xff" * 4096  # page 2 overwritten: the header is intact
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("make, needle", [
    (lambda p: p.write_text("run notes, not a database\n") and p, "not a toylab store: a 26-byte file that is not an SQLite database"),
    (lambda p: p.write_bytes(b"") or p, "not a toylab store: an empty file"),
    (foreign_sqlite, "not a toylab store: an SQLite database of another application"),
    (truncated_store, "is a damaged toylab store"),
    (damaged_store, "is a damaged toylab store"),
])
def test_a_file_that_is_not_a_store_is_refused_and_left_unchanged(tmp_path, make, needle):
    path = make(tmp_path / "store.sqlite")
    before = path.read_bytes()
    result = runner.invoke(app, ["sweep", EXAMPLE, "--store", str(path)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {path}") and needle in lines[0], result.stderr
    with pytest.raises(StoreError, match="toylab store"):
        toylab.load(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["store.sqlite"]  # no -arrays, -wal, -shm


def test_a_directory_as_store_is_refused(tmp_path):
    with pytest.raises(StoreError, match="is a directory"):
        sweeps.run(SPEC, store=tmp_path, progress=False)


def test_one_writer_a_second_sweep_on_an_open_store_is_refused(tmp_path):
    path = empty_store(tmp_path / "s.sqlite")
    with Store.open(path):
        with pytest.raises(StoreError, match="being written by another sweep"):
            sweeps.run(SPEC, store=path, progress=False)
        assert len(toylab.load(path).runs) == 6  # readers are never blocked
    assert sweeps.run(SPEC, store=path, chunk_size=6, progress=False).done == 6  # the lock went with it


def test_done_runs_have_weight_files_readable_without_pickle(tmp_path):
    path = tmp_path / "s.sqlite"
    sweeps.run(SPEC, store=path, progress=False)
    runs = toylab.load(path).runs
    files = sorted(p.name for p in arrays_folder(path).iterdir())
    assert files == sorted(runs["arrays_file"]) and all(f.endswith(".safetensors") for f in files)
    arrays = read_arrays(arrays_folder(path), files[0])
    assert arrays["W"].shape == (2, 5) and arrays["W"].dtype == "float32"


def fragile(fail: bool = False, **params):
    """The superposition task, or (fail=True) one whose loss raises when the trainer traces it."""
    task = superposition(**params)

    def broken_loss(params, batch, hyper):
        raise RuntimeError("the loss broke")

    return task._replace(loss=broken_loss) if fail else task


def test_a_chunk_that_fails_is_marked_failed_and_the_rest_finish(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "_FACTORIES", {**registry._FACTORIES})  # registered for this test only
    sweeps.register_task("fragile", fragile)
    spec = sweeps.SweepSpec(task="fragile", task_params={"n_features": 3}, fixed={"feature_probability": 0.3},
                            axes={"task.fail": [False, True]}, train={"steps": 20, "batch_size": 32, "elicit_steps": 0})
    path = tmp_path / "s.sqlite"
    summary = sweeps.run(spec, store=path, progress=False)
    assert (summary.done, summary.failed) == (1, 1)
    assert summary.failures == ["chunk 1: RuntimeError: the loss broke"]
    runs = toylab.load(path).runs
    assert list(runs["status"]) == ["done", "failed"] and runs.at[1, "error"] == summary.failures[0]
    again = sweeps.run(spec, store=path, progress=False)  # failed runs are tried again
    assert (again.chunks, again.failed) == (1, 1) and list(toylab.load(path).runs["attempts"]) == [1, 2]


def test_chunk_size_follows_memory_and_chunks_are_rectangles_of_equal_size():
    task = superposition(5, 2)
    per_instance = bytes_per_instance(task, {"feature_probability": 0.1}, TrainConfig(batch_size=1024))
    assert per_instance == 10 * (2 * 5 + 5) * 4 + 8 * 1024 * 5 * 4 + 2 * 5 * 4
    assert auto_chunk_size(task, {"feature_probability": 0.1}, TrainConfig(batch_size=1024), memory_bytes=8 * 100 * per_instance) == 100
    assert auto_chunk_size(task, {"feature_probability": 0.1}, TrainConfig(batch_size=1024), memory_bytes=1) == 1
    spec = sweeps.SweepSpec(task="superposition", axes={"feature_probability": [0.1, 0.2, 0.3, 0.4, 0.5]}, seeds=3)
    sizes = {}
    for run, chunk in plan_chunks(spec.runs(), lambda run: 7):
        sizes.setdefault(chunk, []).append((run.cell, run.seed))
    assert [len(members) for members in sizes.values()] == [6, 6, 3]  # 5 points × 3 seeds, ≤ 7 each
    for members in sizes.values():  # each chunk is points × seeds
        cells, seeds = {c for c, _ in members}, {s for _, s in members}
        assert len(members) == len(cells) * len(seeds)
    one_point = plan_chunks(sweeps.SweepSpec(task="superposition", fixed={"feature_probability": 0.1},
                                             seeds=10).runs(), lambda run: 4)
    assert [chunk for _, chunk in one_point] == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]


def test_a_store_read_back_as_a_train_result_equals_training_directly(tmp_path):
    from toylab.experiments import tms
    from toylab.train import TrainConfig

    train = {"steps": 80, "batch_size": 64, "elicit_steps": 5}
    spec = sweeps.SweepSpec(task="superposition", task_params={"n_features": 5, "n_hidden": 2},
                            fixed={"importance": 0.9}, axes={"feature_probability": [0.1, 1.0]}, seeds=2,
                            train=train)
    sweeps.run(spec, store=tmp_path / "s.sqlite", progress=False)
    stored = toylab.load(tmp_path / "s.sqlite").train_result()
    direct = tms.run(feature_probability=[0.1, 1.0], importance=0.9, seeds=2, train_config=TrainConfig(**train))
    assert [(i.config, i.seed) for i in stored.instances] == [(dict(i.config), i.seed) for i in direct.instances]
    np.testing.assert_array_equal(stored.params["W"], direct.params["W"])
    np.testing.assert_array_equal(stored.steps, direct.steps)
    np.testing.assert_allclose(stored.history("loss"), direct.history("loss"), rtol=1e-6)
    np.testing.assert_allclose(stored.history("loss", elicited=True), direct.history("loss", elicited=True), rtol=1e-6)
    # Summaries agree (wall times differ; stored metrics are float64 copies of float32 values).
    for a, b in zip(tms.summarize(stored)["best"], tms.summarize(direct)["best"], strict=True):
        assert (a["seed"], a["geometry"]) == (b["seed"], b["geometry"])
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-6)
        assert a["feature_dimensionality"] == pytest.approx(b["feature_dimensionality"], rel=1e-6)


# -- weight files checked against what was written -------------------------------------------


def test_missing_or_damaged_weight_files_are_named_by_load_and_retrained_by_a_rerun(tmp_path):
    from cli_json import result_of
    from test_sweep import store_rows, write_spec

    path, spec = tmp_path / "s.sqlite", write_spec(tmp_path, probabilities=(0.1, 0.5), steps=30)
    sweeps.run(spec, store=path, chunk_size=2, progress=False)  # chunks: runs 1, 2 and runs 3, 4
    before = store_rows(path)
    folder = arrays_folder(path)
    (folder / "run-00000001.safetensors").unlink()
    overwritten = folder / "run-00000004.safetensors"
    data = bytearray(overwritten.read_bytes())
    data[-4:] = np.float32(0.5).tobytes()  # one weight changed: a valid file of the same size
    overwritten.write_bytes(bytes(data))
    truncated = folder / "run-00000003.safetensors"
    intact = truncated.read_bytes()
    truncated.write_bytes(intact[:100])

    loaded = toylab.load(path)  # the tables need no weights
    assert list(loaded.runs["status"]) == ["done"] * 4
    for run, problem in ((1, "missing"), (3, f"damaged (100 bytes, {len(intact)} written)"),
                         (4, "damaged (checksum mismatch)")):
        with pytest.raises(StoreError) as info:
            loaded.weights(run)
        assert str(info.value) == (f"{path}: weight file run-{run:08d}.safetensors of run {run} is {problem}; "
                                   "rerun the sweep to retrain it")
    for read in (lambda: toylab.load(path, arrays=True), loaded.train_result):
        with pytest.raises(StoreError, match=r"weight file run-00000001\.safetensors of run 1 is missing;"):
            read()
    truncated.write_bytes(intact)  # two damaged files left: one missing, one overwritten

    result = runner.invoke(app, ["sweep", str(spec), "--store", str(path), "--chunk-size", "2", "--json"])
    summary = result_of(result, "sweep")
    assert (summary["repaired"], summary["trained"], summary["chunks"], summary["done"]) == (2, 2, 2, 4)
    assert result.stderr.splitlines() == [
        f"store {path}: 2 runs had missing or damaged weight files (run-00000001.safetensors: missing, "
        "run-00000004.safetensors: damaged (checksum mismatch)); retraining them"]
    assert store_rows(path) == before  # rows, checksums and weight files, byte for byte
    assert toylab.load(path, arrays=True).arrays[4]["W"].shape == (2, 5)


def test_a_store_of_schema_1_is_read_migrated_and_its_weight_files_checked(tmp_path):
    from test_sweep import store_rows

    path = tmp_path / "s.sqlite"
    sweeps.run(SPEC, store=path, chunk_size=6, progress=False)
    before = store_rows(path)
    with contextlib.closing(sqlite3.connect(path)) as db, db:  # as toylab before checksums wrote it
        db.execute("ALTER TABLE runs DROP COLUMN arrays_size")
        db.execute("ALTER TABLE runs DROP COLUMN arrays_sha256")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema'")
    assert set(toylab.load(path, arrays=True).arrays) == {1, 2, 3, 4, 5, 6}  # read without checksums
    damaged = arrays_folder(path) / "run-00000002.safetensors"
    damaged.write_bytes(damaged.read_bytes()[:-8])
    with pytest.raises(StoreError, match=r"weight file run-00000002\.safetensors of run 2 is damaged "
                                         r"\(unreadable: .*\); rerun the sweep"):
        toylab.load(path, arrays=True)

    summary = sweeps.run(SPEC, store=path, chunk_size=6, progress=False)
    assert (summary.repaired, summary.trained) == (1, 1)
    # Migrated to schema 2, and the sound files got the size and checksum they were written with.
    assert store_rows(path) == before
    with contextlib.closing(sqlite3.connect(path)) as db, db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone() == ("2",)


# -- refused before anything is written ------------------------------------------------------


@pytest.mark.parametrize("where, needle", [
    (lambda tmp: Path("/proc/x.sqlite"), "/proc/x.sqlite: cannot create a store there (/proc: No such file or directory)"),
    (lambda tmp: (tmp / "notes").write_text("a file") and tmp / "notes" / "s.sqlite",
     "notes/s.sqlite: cannot create a store there ({tmp}/notes: a file, not a folder)"),
    (lambda tmp: (tmp / "s.sqlite-arrays").write_text("a file") and tmp / "s.sqlite",
     "s.sqlite-arrays is a file, but the store {tmp}/s.sqlite keeps its weight files in a folder of that name"),
    (lambda tmp: empty_store(tmp / "s.sqlite") and (tmp / "s.sqlite-arrays").write_text("a file") and tmp / "s.sqlite",
     "s.sqlite-arrays is a file, but the store {tmp}/s.sqlite keeps its weight files in a folder of that name"),
])
def test_a_store_that_cannot_be_created_or_written_is_one_line_and_nothing_changes(tmp_path, where, needle):
    path = where(tmp_path)
    before = {p: p.read_bytes() for p in tmp_path.iterdir()}
    result = runner.invoke(app, ["sweep", EXAMPLE, "--store", str(path)])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert needle.format(tmp=tmp_path) in lines[0]
    assert {p: p.read_bytes() for p in tmp_path.iterdir()} == before


@pytest.fixture
def unreachable_ray(monkeypatch):
    """Ray whose init fails as it does, after ~27 s, for an address that answers TCP but is no Ray."""
    import ray

    def init(address=None, **_):
        raise ConnectionError(f"Failed to connect to Ray cluster at {address}")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)  # the session's Ray, if a test started it
    monkeypatch.setattr(ray, "init", init)
    # The request to the head's GCS before ray.init waits ~20 s for an answer that never comes;
    # tests/test_ray_cluster.py covers it. Here only what a failed connection leaves behind counts.
    monkeypatch.setattr(backends, "_ask_head", lambda address: None)


def test_a_ray_that_cannot_be_reached_leaves_no_store_and_an_old_one_unchanged(tmp_path, unreachable_ray):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as listening:  # answers TCP: check_ray_address passes
        address = f"127.0.0.1:{listening.getsockname()[1]}"
        new = tmp_path / "runs" / "s.sqlite"
        result = runner.invoke(app, ["sweep", EXAMPLE, "--store", str(new), "--backend", "ray", "--address", address])
        assert result.exit_code == 2 and result.stderr.splitlines() == [
            f"error: --address {address}: cannot start or reach Ray (ConnectionError: Failed to connect to Ray "
            f"cluster at {address})"]
        assert list(tmp_path.iterdir()) == []  # not even the folder runs/

        old = empty_store(tmp_path / "old.sqlite")
        before = old.read_bytes()
        with pytest.raises(ConfigError, match="cannot start or reach Ray"):
            sweeps.run(SPEC, store=old, backend="ray", address=address, progress=False)
        assert old.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["old.sqlite"]


def test_a_backend_that_breaks_before_any_chunk_removes_the_store_it_created_only(tmp_path, monkeypatch):
    from toylab.sweeps import runner as sweep_runner

    def broken(jobs, **_):
        raise ConfigError("the cluster went away")
        yield

    monkeypatch.setitem(sweep_runner.BACKENDS, "local", broken)
    new = tmp_path / "runs" / "new.sqlite"
    with pytest.raises(ConfigError, match="the cluster went away"):
        sweeps.run(SPEC, store=new, progress=False)
    assert list(tmp_path.iterdir()) == []

    old = empty_store(tmp_path / "old.sqlite")
    with pytest.raises(ConfigError, match="the cluster went away"):
        sweeps.run(SPEC, store=old, progress=False)
    assert len(toylab.load(old).runs) == 6  # a store this call did not create stays
