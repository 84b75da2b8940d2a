"""Sweeps of the user's own tasks: from a file beside the spec, a module, or an entry point.

The file task is ``examples/tasks/regression.py``, copied into a project folder with its sweep
spec, so the example the README shows is the one tested.
"""

import json
import pickle
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from cli_json import result_of
from test_sweep import store_rows
from typer.testing import CliRunner

import toylab
from toylab import sweeps
from toylab.cli import app
from toylab.errors import TaskError
from toylab.sweeps import registry

runner = CliRunner()
EXAMPLE = Path(__file__).parent.parent / "examples" / "tasks"
QUICK = {"steps": 60, "batch_size": 32, "elicit_steps": 0}


@pytest.fixture
def project(tmp_path):
    """A folder as a user has it: the example's task file and spec, and a runs/ folder."""
    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(EXAMPLE / "regression.py", folder / "my_task.py")
    text = (EXAMPLE / "regression_sweep.toml").read_text().replace("steps = 300", "steps = 60")
    text = text.replace("regression.py:", "my_task.py:")
    (folder / "sweep.toml").write_text(text)
    return folder


def sweep_cli(spec: Path, store: Path, *flags: str):
    return result_of(runner.invoke(app, ["sweep", str(spec), "--store", str(store), "--json", *flags]), "sweep")


@pytest.mark.slow
def test_a_task_file_beside_a_toml_spec_sweeps_alike_on_local_and_ray(project, local_ray):
    local = sweep_cli(project / "sweep.toml", project / "runs" / "local.sqlite")
    on_ray = sweep_cli(project / "sweep.toml", project / "runs" / "ray.sqlite", "--backend", "ray")
    assert (local["done"], on_ray["done"], on_ray["backend"]) == (6, 6, "ray")
    assert store_rows(project / "runs" / "ray.sqlite") == store_rows(project / "runs" / "local.sqlite")
    best = {row["noise"]: row["weight_error"] for row in local["best"]}
    assert best[0.0] < best[0.5] < 0.1  # every noise level learns the teacher, the clean one best

    result = toylab.load(project / "runs" / "local.sqlite").train_result()
    assert result.task.name == "regression" and result.params["w"].shape == (6, 8)
    assert [(i.config["noise"], i.seed) for i in result.instances] == [(0.0, 0), (0.0, 1), (0.1, 0), (0.1, 1),
                                                                       (0.5, 0), (0.5, 1)]


def test_a_task_file_travels_as_its_source_to_a_process_without_the_file(tmp_path):
    (tmp_path / "gone.py").write_text((EXAMPLE / "regression.py").read_text())
    factory = registry.task_factory("gone.py:regression", root=tmp_path)
    shipped = pickle.dumps(factory)
    (tmp_path / "gone.py").unlink()  # a Ray worker on another machine has no copy
    code = ("import pickle, sys; task = pickle.loads(sys.stdin.buffer.read())(d=3); "
            "print(task.name, dict(task.spec))")
    out = subprocess.run([sys.executable, "-c", code], input=shipped, capture_output=True, check=True,
                         cwd="/", env={"PYTHONPATH": str(Path(toylab.__file__).parent.parent)})
    assert out.stdout.decode().strip() == "regression {'d': 3, 'teacher_seed': 0}"


def test_a_store_finds_its_task_file_after_moving_with_it_or_alone(project, tmp_path):
    spec = sweeps.load_spec(project / "sweep.toml")
    sweeps.run(spec, store=project / "runs" / "s.sqlite", chunk_size=6, progress=False)
    trained = toylab.load(project / "runs" / "s.sqlite").train_result().params["w"]

    moved = shutil.move(project, tmp_path / "elsewhere")  # the whole project: found beside the store
    (Path(moved) / "my_task.py").rename(Path(moved) / "renamed.py")  # ... not where it was, either
    with pytest.raises(TaskError, match=r"task file \.\./my_task\.py is neither beside the store .* put it back"):
        toylab.load(Path(moved) / "runs" / "s.sqlite").task()
    (Path(moved) / "renamed.py").rename(Path(moved) / "my_task.py")
    np.testing.assert_array_equal(toylab.load(Path(moved) / "runs" / "s.sqlite").train_result().params["w"], trained)

    alone = tmp_path / "archive"  # the store alone, the project back where it was: found where it was
    alone.mkdir()
    shutil.move(Path(moved) / "runs", alone)
    shutil.move(moved, project)
    assert toylab.load(alone / "runs" / "s.sqlite").task().name == "regression"

    with (project / "my_task.py").open("a") as file:
        file.write("\n# edited after the sweep\n")
    with pytest.warns(UserWarning, match="my_task.py changed since the sweep"):
        toylab.load(alone / "runs" / "s.sqlite").task()


def test_a_module_factory_sweeps_and_reads_back(tmp_path, monkeypatch):
    (tmp_path / "lab_tasks.py").write_text((EXAMPLE / "regression.py").read_text())
    monkeypatch.syspath_prepend(str(tmp_path))
    spec = sweeps.SweepSpec(task="lab_tasks:regression", task_params={"d": 4}, axes={"noise": [0.0, 0.2]},
                            train=QUICK, select={"metric": "weight_error"})
    summary = sweeps.run(spec, store=tmp_path / "s.sqlite", progress=False)
    assert summary.done == 2
    result = toylab.load(tmp_path / "s.sqlite").train_result()
    assert result.task.spec == {"d": 4, "teacher_seed": 0} and result.params["w"].shape == (2, 4)


def fake_distribution(folder: Path, name: str, entries: dict[str, str]) -> None:
    """An installed package, as importlib.metadata sees one: NAME.dist-info with entry points."""
    info = folder / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[toylab.tasks]\n" + "".join(f"{key} = {value}\n" for key, value in entries.items()))


def test_an_entry_point_of_an_installed_package_is_a_task_name(tmp_path, monkeypatch):
    (tmp_path / "lab_tasks.py").write_text((EXAMPLE / "regression.py").read_text())
    fake_distribution(tmp_path, "lab_tasks", {"regression": "lab_tasks:regression"})
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "regression" in sweeps.registered_tasks()
    spec = sweeps.SweepSpec(task="regression", task_params={"d": 5}, fixed={"noise": 0.1}, train=QUICK,
                            select={"metric": "weight_error"})
    assert spec.build_task({"d": 5}).spec == {"d": 5, "teacher_seed": 0}
    assert spec.canonical()["task"] == "regression"  # the store records the name, as written


@pytest.mark.parametrize("entries, needle", [
    ({"other": {"regression": "other_tasks:regression"}},
     "task 'regression' is claimed by package 'lab_tasks' (lab_tasks:regression) and package 'other' "
     "(other_tasks:regression); name the one you mean as 'package.module:factory'"),
    ({}, None),  # the same package found twice on sys.path is one source, not a clash
])
def test_two_sources_of_one_task_name_are_refused(tmp_path, monkeypatch, entries, needle):
    fake_distribution(tmp_path / "a", "lab_tasks", {"regression": "lab_tasks:regression"})
    fake_distribution(tmp_path / "b", "lab_tasks", {"regression": "lab_tasks:regression"})
    for name, points in entries.items():
        fake_distribution(tmp_path / "c", name, points)
    for folder in ("a", "b", "c"):
        monkeypatch.syspath_prepend(str(tmp_path / folder))
    (tmp_path / "a" / "lab_tasks.py").write_text((EXAMPLE / "regression.py").read_text())
    if needle is None:
        assert registry.task_factory("regression").__module__ == "lab_tasks"
    else:
        with pytest.raises(TaskError) as error:
            registry.task_factory("regression")
        assert str(error.value) == needle


def test_an_entry_point_named_like_a_toylab_task_is_a_clash(tmp_path, monkeypatch):
    fake_distribution(tmp_path, "rogue", {"superposition": "rogue:superposition"})
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(TaskError, match=r"task 'superposition' is claimed by toylab's registry "
                                        r"\(toylab.tasks.superposition:superposition\) and package 'rogue'"):
        sweeps.SweepSpec(task="superposition")


FILES = {
    "tasks.py": """\
        from my_task import regression  # noqa: F401  (unused: only tested for the import error)
    """,
    "broken.py": "def regression(:\n",
    "shapes.py": """\
        NOT_A_FACTORY = 3

        def not_a_task(d=8):
            return {"d": d}
    """,
}


@pytest.mark.parametrize("task, needle", [
    ("missing.py:regression", "task 'missing.py:regression': no such file {root}/missing.py"),
    ("my_task.py:regresion", "task 'my_task.py:regresion': {root}/my_task.py has no attribute 'regresion'"),
    ("shapes.py:NOT_A_FACTORY",
     "NOT_A_FACTORY is not callable (a int); name a function that returns a toylab.tasks.Task"),
    ("shapes.py:not_a_task", "task 'shapes.py:not_a_task': the factory returned a dict, not a toylab.tasks.Task"),
    ("broken.py:regression", "task file {root}/broken.py line 1 failed to import: SyntaxError"),
    ("tasks.py:regression", "failed to import: ModuleNotFoundError: No module named 'my_task'"),
    ("my_task.py:", "task 'my_task.py:': name the factory after the file, e.g. 'my_task.py:my_task'"),
    ("no_such_package.tasks:regression", "task 'no_such_package.tasks:regression': cannot import "
                                         "'no_such_package.tasks' (No module named 'no_such_package')"),
    ("regresion", "unknown task 'regresion'; registered: lowrank, superposition; or name a factory as "
                  "'package.module:factory' or 'file.py:factory'"),
])
def test_a_task_that_cannot_be_had_is_one_line_naming_it(project, task, needle):
    for name, text in FILES.items():
        (project / name).write_text(textwrap.dedent(text))
    spec = project / "sweep.toml"
    spec.write_text(spec.read_text().replace('"my_task.py:regression"', json.dumps(task)))
    with pytest.raises(TaskError) as error:
        sweeps.load_spec(spec)
    message = str(error.value)
    assert message.startswith(f"{spec}: ") and "\n" not in message
    assert needle.format(root=project) in message


def test_the_cli_refuses_a_missing_task_file_in_one_line_and_creates_no_store(project):
    spec = project / "sweep.toml"
    spec.write_text(spec.read_text().replace("my_task.py", "tasks/missing.py"))
    result = runner.invoke(app, ["sweep", str(spec), "--store", str(project / "s.sqlite")])
    assert result.exit_code == 2
    assert result.stderr == (f"error: {spec}: task 'tasks/missing.py:regression': no such file "
                             f"{project}/tasks/missing.py\n")
    assert not (project / "s.sqlite").exists()
