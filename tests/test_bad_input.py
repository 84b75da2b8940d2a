"""Bad input, across every command and the Python API: one line that names the bad value.

Every case in the two tables below must be refused before anything trains or is written: the
CLI with exit status 2 and exactly one ``error: ...`` line on stderr (nothing on stdout, no
traceback), the API with a :class:`toylab.errors.ConfigError` (or a subclass) whose message
is one line. Each case runs in an empty working folder that must stay empty, and the input
files it reads must keep their bytes. Training is replaced by a failure, so a case that would
train fails loudly instead of training; the machine's memory reads as 8 GiB, so the memory
refusals give the same numbers everywhere (and never start a huge allocation on a large machine).
"""

from __future__ import annotations

import io
import math
import shlex
import signal
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from toylab.cli import app
from toylab.errors import ConfigError

runner = CliRunner()
GIB = 2**30
MACHINE_MEMORY = 8 * GIB
INF, NAN = float("inf"), float("nan")

# A superposition spec the sweep cases vary one line of.
SPEC = 'task = "superposition"\n[fixed]\nfeature_probability = 0.1\n'


def _npy_header_only(shape: tuple[int, ...]) -> bytes:
    """A .npy file whose header claims ``shape`` (float32) but which holds 64 bytes of data."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": shape})
    return header.getvalue() + bytes(64)


def _write_inputs(folder: Path) -> None:
    """Every file a case reads; none of them may change."""
    angles = 2 * np.pi * np.arange(5) / 5
    np.save(folder / "W.npy", np.stack([np.cos(angles), np.sin(angles)]))
    np.save(folder / "vec.npy", np.ones(5))
    np.save(folder / "nan.npy", np.array([[1.0, np.nan]]))
    np.save(folder / "acts.npy", np.random.default_rng(0).random((100, 3)).astype(np.float32))
    np.save(folder / "complex.npy", np.ones((2, 2), complex))
    np.save(folder / "stack.npy", np.ones((3, 2, 2)))
    np.save(folder / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    np.savez(folder / "two.npz", A=np.eye(2), B=np.eye(2))
    (folder / "text.npy").write_bytes(b"hello, not an array")
    (folder / "claims-8TiB.npy").write_bytes(_npy_header_only((2**20, 2**21)))
    (folder / "truncated.npy").write_bytes(_npy_header_only((100, 100)))
    with zipfile.ZipFile(folder / "not-npy-member.npz", "w") as archive:
        archive.writestr("W.npy", b"hello, not an array")
    with zipfile.ZipFile(folder / "claims-8TiB.npz", "w") as archive:
        archive.writestr("W.npy", _npy_header_only((2**20, 2**21)))
    (folder / "bad.safetensors").write_bytes(b"garbage")
    (folder / "weights.py").write_text("W = 1\n")
    (folder / "dir.npy").mkdir()
    specs = {
        "unknown-key": 'task = "superposition"\nbogus = 1\n',
        "seeds-string": 'task = "superposition"\nseeds = "three"\n',
        "seeds-negative": 'task = "superposition"\nseeds = -1\n',
        "lr-inf": SPEC + "[train]\nlr = inf\n",
        "compute-factor-inf": SPEC + "[train]\ncompute_factor = inf\n",
        "steps-true": SPEC + "[train]\nsteps = true\n",
        "steps-2e9": SPEC + "[train]\nsteps = 3000000000\n",
        "n-features-true": SPEC + "[task_params]\nn_features = true\n",
        "n-features-1e9": SPEC + "[task_params]\nn_features = 1000000000\n",
        "importance-inf": 'task = "superposition"\n[fixed]\nfeature_probability = 0.1\nimportance = inf\n',
        "lowrank-d-2e5": 'task = "lowrank"\n[task_params]\nd = 200000\n',
        "empty-axis": 'task = "superposition"\n[axes]\nfeature_probability = []\n',
        "unknown-task": 'task = "nonexistent_task"\n',
        "bad-metric": SPEC + '[select]\nmetric = "bogus"\n',
        "seed-2e40": 'task = "superposition"\nseed = 1099511627776\n[fixed]\nfeature_probability = 0.1\n',
        "seeds-1e8": 'task = "superposition"\nseeds = 100000000\n[fixed]\nfeature_probability = 0.1\n',
        "good": SPEC + "[train]\nsteps = 2\nbatch_size = 8\n",
    }
    for name, text in specs.items():
        (folder / f"{name}.toml").write_text(text)
    (folder / "invalid.toml").write_text("not toml [[[")
    (folder / "binary.toml").write_bytes(b"\xff\xfe\x00 binary")
    (folder / "dir.toml").mkdir()


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("inputs")
    _write_inputs(folder)
    return folder


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def guarded(tmp_path, monkeypatch, inputs):
    """An empty working folder that must stay empty, inputs that must not change, no training."""
    from toylab import memory
    from toylab.train import trainer

    def trained(*_, **__):
        raise AssertionError("a bad input reached training")

    monkeypatch.setattr(trainer, "_train", trained)
    monkeypatch.setattr(memory, "available_bytes", lambda: MACHINE_MEMORY)
    monkeypatch.setattr(trainer, "_device_memory", lambda: (MACHINE_MEMORY, "this machine"))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    before = _snapshot(inputs)
    yield work
    assert [p.name for p in work.iterdir()] == [], "a refused command left files behind"
    assert _snapshot(inputs) == before, "a refused command changed an input file"


# A sweep's base seed reaches the trainer only when a chunk trains: SweepSpec accepts any seed
# ≥ 0, the store is created, and every run fails on the trainer's 32-bit check (part B's layer).
# Not in the table: a grid or seed count too large to list (`phase --grid 100000`, a spec with
# seeds = 100000000) makes SweepSpec build every run in memory until the machine runs out; the
# sweep layer must count its runs before expanding them (part B).

# (command line, with {in} for the inputs folder; a fragment the one error line must hold)
CLI_CASES = [
    # tms: list flags
    ("tms --feature-probability 0.1,,0.2", "'0.1,,0.2': an empty item in the list"),
    ("tms --feature-probability 0.1,", "'0.1,': an empty item in the list"),
    ("tms --feature-probability ''", "'': an empty item in the list"),
    ("tms --feature-probability dense", "'dense': expected a number"),
    ("tms --feature-probability 1.5", "feature_probability=1.5 is outside (0, 1]"),
    ("tms --feature-probability nan", "feature_probability=nan is outside (0, 1]"),
    ("tms --importance inf", "importance=inf: the ratio r"),
    ("tms --importance 0", "importance=0.0: the ratio r"),
    ("tms --importance 2 -n 200", "importance=2.0: I_i = r^i reaches 2^199"),
    ("tms --importance 1,2,3,4,nan", "importance=[1.0, 2.0, 3.0, 4.0, nan]"),
    ("tms --importance 1,0.5", "importance has 2 values, expected n_features=5"),
    # tms: training settings
    ("tms --lr inf", "lr=inf: Input should be a finite number"),
    ("tms --lr nan", "lr=nan: Input should be a finite number"),
    ("tms --lr 1e400", "lr=inf"),
    ("tms --lr -0.1", "lr=-0.1"),
    ("tms --weight-decay inf", "weight_decay=inf"),
    ("tms --weight-decay -1", "weight_decay=-1.0"),
    ("tms --weight-decay 0.1 --optimizer adam", "weight_decay=0.1 needs --optimizer adamw"),
    ("tms --compute-factor inf", "compute_factor=inf: Input should be a finite number"),
    ("tms --compute-factor 1", "compute_factor=1.0"),
    ("tms --eval-every-seconds inf", "eval_every_seconds=inf"),
    ("tms --eval-every 0", "eval_every_steps=0"),
    ("tms --steps 0", "steps=0"),
    ("tms --steps 3000000000", "steps=3000000000"),
    ("tms --batch 0", "batch_size=0"),
    ("tms --batch 1000000000000", "batch_size=1000000000000"),
    ("tms --warmup 20 --steps 10", "warmup_steps=20 must be < steps=10"),
    ("tms --elicit-steps -1", "elicit_steps=-1"),
    ("tms --optimizer rmsprop", "'rmsprop' is not one of"),
    ("tms --init kaiming", "'kaiming' is not one of 'xavier', 'notebook'"),
    # tms: sizes, seeds, groups
    ("tms --seeds 0", "seeds=0: need at least 1 seed"),
    ("tms --seeds 100000000", "100000000 instances need about 1.9 TiB; this machine has 8.0 GiB available"),
    ("tms --batch 1000000000", "1 instance needs about 19 GiB; this machine has 8.0 GiB available"),
    ("tms -n 1000000000", "n_features=1000000000 × n_hidden=2"),
    ("tms -m 1000000000", "n_features=5 × n_hidden=1000000000"),
    ("tms -n 0", "n_features=0"),
    ("tms -n true", "'true': Input should be a valid integer"),
    ("tms -n abc", "'abc': Input should be a valid integer"),
    ("tms --seed 99999999999", "seed=99999999999: expected an integer"),
    ("tms --correlated-groups 3", "6 grouped features do not fit in n_features=5"),
    ("tms --group-size 1 --correlated-groups 1", "group_size=1"),
    ("tms --anticorrelated-groups 1 --feature-probability 0.9", "feature_probability=0.9 is too dense"),
    ("tms --out {in}/W.npy", "W.npy"),
    # scurve
    ("scurve --rank 1.5", "'1.5': expected an integer"),
    ("scurve --rank nan", "'nan': expected an integer"),
    ("scurve --rank 1,,2", "'1,,2': an empty item in the list"),
    ("scurve --rank 0", "rank=0"),
    ("scurve --d 3 --rank 4", "rank=4 exceeds d=3"),
    ("scurve --eval-every 0", "eval_every=0: expected at least 1 step"),
    ("scurve --eval-every -3", "eval_every=-3"),
    ("scurve --d 200000", "d=200000, width=200000, components=2"),
    ("scurve --d 0", "d=0"),
    ("scurve --d 3 --width 5 --init aligned", "width=5 > d=3: aligned init needs width ≤ d"),
    ("scurve --d 3 --loss ce --singular-values 1e308", "singular_values=[1e+308]: target entries reach 1e+308"),
    ("scurve --d 3 --singular-values 1e30", "singular_values=[1e+30]: the mse loss at Z = 0"),
    ("scurve --d 3 --singular-values 1,-1", "singular_values=[1.0, -1.0]"),
    ("scurve --d 3 --singular-values 1e-320", "singular_values=[1e-320]"),
    ("scurve --d 3 --singular-values 1,1e-12", "1e-12 is below 1e-09 × the largest"),
    ("scurve --d 3 --singular-values 1,,2", "'1,,2': an empty item in the list"),
    ("scurve --d 3 --init-scale inf", "init_scale=inf"),
    ("scurve --d 3 --init-scale 1e30", "init_scale=1e+30 with components=2"),
    ("scurve --d 3 --components 100", "init_scale=0.001 with components=100"),
    ("scurve --d 3 --lr inf", "lr=inf"),
    ("scurve --d 3 --weight-decay nan --optimizer sgd", "weight_decay=nan"),
    ("scurve --d 3 --batch 5", "optimizer='gd' is full-batch"),
    ("scurve --d 3 --seed 99999999999", "seed=99999999999"),
    ("scurve --d 3 --time-axis sqrt", "'sqrt' is not one of"),
    # myopia
    ("myopia --epochs 10 --horizon 10", "--horizon 10: need 0 ≤ E* < T = 10"),
    ("myopia --epochs 0 --horizon 0", "--epochs 0: a life needs at least 1 epoch"),
    ("myopia --learner ppo --gamma 1.5", "--gamma 1.5: a discount must lie in [0, 1]"),
    ("myopia --learner ppo --gamma -0.1", "--gamma -0.1"),
    ("myopia --learner sarsa", "'sarsa' is not one of 'reinforce', 'ppo', 'q'"),
    ("myopia --pbt-interval 10 --population 4", "--population 4: PBT needs at least 5 members"),
    ("myopia --gamma 0.9", "--gamma 0.9: reinforce learns each epoch's own reward"),
    ("myopia --pbt-interval 0", "--pbt-interval 0"),
    ("myopia --lr nan", "--lr nan"),
    # reproduce
    ("reproduce nonexistent", "'nonexistent' is not one of 'intro', 'scurves', 'capability', 'myopia'"),
    ("reproduce intro --seeds 0", "seeds=0"),
    ("reproduce intro --steps 0", "train.steps=0"),
    ("reproduce scurves --steps -5", "steps=-5"),
    ("reproduce scurves --seed 99999999999 --steps 1 --seeds 1", "seed=99999999999"),
    ("reproduce scurves --store x.sqlite",
     "only the intro, linear, phase-n2m1, phase-n3m2, importance and dimensionality studies"),
    ("reproduce all --only nope", "--only 'nope': unknown finding 'nope'; available: intro-pentagon"),
    ("reproduce all --only intro-pentagon,,", "an empty item in the list; expected finding ids"),
    ("reproduce intro --only intro-pentagon", "--only intro-pentagon: picks findings of `reproduce all`"),
    pytest.param("reproduce intro --seed 99999999999 --steps 1 --seeds 1", "seed=99999999999"),
    # phase
    ("phase --grid 1", "grid=1"),
    ("phase --seeds 0", "seeds=0"),
    ("phase --steps 0", "steps=0"),
    ("phase --seed -1", "seed=-1"),
    ("phase --preset n9", "'n9' is not one of"),
    pytest.param("phase --seed 99999999999 --grid 2 --seeds 1 --steps 1", "seed=99999999999"),
    pytest.param("phase --grid 100000 --seeds 1 --steps 1", "the sweep has 10000000000 runs"),
    # measure
    ("measure {in}/missing.npy", "missing.npy: no such file"),
    ("measure {in}/dir.npy", "dir.npy: not a file"),
    ("measure {in}/text.npy", "text.npy: not a .npy array file"),
    ("measure {in}/objects.npy", "objects.npy: holds Python objects"),
    ("measure {in}/vec.npy", "vec.npy: expected a 2-D weight matrix (d_hidden, n_features), got shape (5,)"),
    ("measure {in}/nan.npy", "nan.npy: weight matrix of shape (1, 2) contains nan at index (0, 1)"),
    ("measure {in}/complex.npy", "complex.npy: holds dtype complex128"),
    ("measure {in}/not-npy-member.npz", "not-npy-member.npz[W]: not a .npy array"),
    ("measure {in}/claims-8TiB.npy", "claims shape (1048576, 2097152) of float32 (8.0 TiB)"),
    ("measure {in}/claims-8TiB.npz", "claims-8TiB.npz[W]: its header claims shape (1048576, 2097152)"),
    ("measure {in}/truncated.npy", "truncated.npy: its header claims shape (100, 100)"),
    ("measure {in}/two.npz", "two.npz: holds 2 arrays (A, B)"),
    ("measure {in}/two.npz --array C", "no array named 'C'"),
    ("measure {in}/stack.npy", "pick one with --index I"),
    ("measure {in}/stack.npy --index 5", "--index 5: "),
    ("measure {in}/W.npy --feature-axis 2", "feature_axis=2"),
    ("measure {in}/W.npy --array X", "--array 'X' given"),
    ("measure {in}/weights.py", "unknown file type '.py'"),
    ("measure {in}/bad.safetensors", "bad.safetensors: not a readable .safetensors file"),
    # sae
    ("sae {in}/vec.npy", "vec.npy: activations have shape (5,): expected 2-D (rows, d_in)"),
    ("sae {in}/nan.npy", "nan.npy: activations contain nan at row 0, column 1"),
    ("sae {in}/acts.npy --d-sae 4 --k 5", "k=5: expected an integer from 1 to d_sae=4"),
    ("sae {in}/acts.npy --k 0", "k=0: expected an integer from 1 to d_sae=12"),
    ("sae {in}/acts.npy --l1 -1", "l1_coefficient=-1.0: the sparsity penalty"),
    ("sae {in}/acts.npy --l1 nan", "l1_coefficient=nan"),
    ("sae {in}/acts.npy --l1 0.1 --k 2", "give one, the L1 penalty or TopK's k"),
    ("sae {in}/acts.npy --features {in}/W.npy", "W.npy: features have dimension 2 (shape (2, 5)) but the "
     "activations have d_in=3"),
    ("sae {in}/acts.npy --features {in}/W.npy --feature-axis 0", "features have dimension 5"),
    ("sae {in}/acts.npy --feature-axis 2", "feature_axis=2"),
    ("sae {in}/acts.npy --d-sae 0", "d_sae=0"),
    ("sae {in}/acts.npy --steps 0", "steps=0"),
    ("sae {in}/missing.npy", "missing.npy: no such file"),
    ("sae {in}/objects.npy", "objects.npy: holds Python objects"),
    # rescale-check
    ("rescale-check --scales 0", "c=0.0 is not a finite number > 0"),
    ("rescale-check --scales nan", "c=nan"),
    ("rescale-check --scales 1,,2", "'1,,2': an empty item in the list"),
    ("rescale-check --n-hidden 0", "n_hidden=0"),
    ("rescale-check --tms-seeds 0", "tms_seeds=0"),
    ("rescale-check --seed 99999999999 --steps 1 --tms-steps 1 --tms-seeds 1", "seed=99999999999"),
    # sweep
    ("sweep {in}/missing.toml --store s.sqlite", "missing.toml: no such sweep spec"),
    ("sweep {in}/dir.toml --store s.sqlite", "dir.toml: cannot read it as text"),
    ("sweep {in}/invalid.toml --store s.sqlite", "invalid.toml: not valid TOML"),
    ("sweep {in}/binary.toml --store s.sqlite", "binary.toml: cannot read it as text"),
    ("sweep {in}/unknown-key.toml --store s.sqlite", "bogus=1: Extra inputs are not permitted"),
    ("sweep {in}/seeds-string.toml --store s.sqlite", "seeds='three'"),
    ("sweep {in}/seeds-negative.toml --store s.sqlite", "seeds=-1"),
    ("sweep {in}/lr-inf.toml --store s.sqlite", "train.lr=inf: Input should be a finite number"),
    ("sweep {in}/compute-factor-inf.toml --store s.sqlite", "train.compute_factor=inf"),
    ("sweep {in}/steps-true.toml --store s.sqlite", "train.steps=True: expected an integer, not a boolean"),
    ("sweep {in}/steps-2e9.toml --store s.sqlite", "train.steps=3000000000"),
    ("sweep {in}/n-features-true.toml --store s.sqlite", "n_features=True: expected an integer"),
    ("sweep {in}/n-features-1e9.toml --store s.sqlite", "n_features=1000000000 × n_hidden=2"),
    ("sweep {in}/importance-inf.toml --store s.sqlite", "importance=inf"),
    ("sweep {in}/lowrank-d-2e5.toml --store s.sqlite", "d=200000"),
    ("sweep {in}/empty-axis.toml --store s.sqlite", "axes.feature_probability is empty"),
    ("sweep {in}/unknown-task.toml --store s.sqlite", "unknown task 'nonexistent_task'"),
    ("sweep {in}/bad-metric.toml --store s.sqlite", "select.metric='bogus'"),
    ("sweep {in}/good.toml --store s.sqlite --chunk-size 0", "--chunk-size=0"),
    ("sweep {in}/good.toml", "Missing option '--store'"),
    pytest.param("sweep {in}/seed-2e40.toml --store s.sqlite", "seed=1099511627776"),
    # Counted before any run is planned: building 10^8 planned runs would exhaust memory.
    pytest.param("sweep {in}/seeds-1e8.toml --store s.sqlite", "the sweep has 100000000 runs"),
    ("sweep {in}/good.toml --store /proc/x.sqlite", "/proc/x.sqlite"),
    # Port 1 of this machine: refused at once, before Ray retries for ~20 s.
    ("sweep {in}/good.toml --store s.sqlite --backend ray --address 127.0.0.1:1",
     "--address 127.0.0.1:1: nothing answers there (Connection refused); is the Ray head running"),
    ("sweep {in}/good.toml --store s.sqlite --backend ray --address head-6379", "expected HOST:PORT"),
]


def _argv(line: str, inputs: Path) -> list[str]:
    return shlex.split(line.replace("{in}", str(inputs)))


@pytest.mark.parametrize("line, fragment", CLI_CASES)
def test_a_bad_command_line_is_one_error_line_naming_the_value(guarded, inputs, line, fragment):
    result = runner.invoke(app, _argv(line, inputs))
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output, result.output
    assert result.exit_code == 2 and result.stdout == "", (result.exit_code, result.stdout)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert fragment in lines[0], lines[0]


def _api_cases(inputs: Path):
    """(name, call, fragment): each call must raise a one-line ConfigError holding the fragment."""
    import toylab
    from toylab import TrainConfig, metrics, sweeps, train  # the README's import: `train` must train
    from toylab.arrays import measure_file
    from toylab.envs import EpochShutdownEnv
    from toylab.experiments import myopia, scurve
    from toylab.tasks import superposition
    from toylab.theory.myopia import oracle
    from toylab.tasks.lowrank import lowrank

    task = superposition(5, 2)
    quick = TrainConfig(steps=1, batch_size=4, elicit_steps=0)
    one = [{"feature_probability": 0.1}]
    eye = np.eye(2)
    return [
        ("TrainConfig lr inf", lambda: TrainConfig(lr=INF), "lr=inf: Input should be a finite number"),
        ("TrainConfig lr nan", lambda: TrainConfig(lr=NAN), "lr=nan: Input should be a finite number"),
        ("TrainConfig weight_decay inf", lambda: TrainConfig(weight_decay=INF), "weight_decay=inf"),
        ("TrainConfig compute_factor inf", lambda: TrainConfig(compute_factor=INF), "compute_factor=inf"),
        ("TrainConfig eval_every_seconds nan", lambda: TrainConfig(eval_every_seconds=NAN), "eval_every_seconds=nan"),
        ("TrainConfig efficiency inf", lambda: TrainConfig(efficiency=INF), "efficiency=inf"),
        ("TrainConfig elicit_lr nan", lambda: TrainConfig(elicit_lr=NAN), "elicit_lr=nan"),
        ("TrainConfig steps True", lambda: TrainConfig(steps=True), "steps=True: expected an integer"),
        ("TrainConfig steps 2**31", lambda: TrainConfig(steps=2**31), "steps=2147483648"),
        ("TrainConfig warmup", lambda: TrainConfig(steps=10, warmup_steps=20), "warmup_steps=20 must be < steps=10"),
        ("TrainConfig unknown field", lambda: TrainConfig(bogus=1), "bogus=1: Extra inputs"),
        ("TrainConfig.model_validate", lambda: TrainConfig.model_validate({"lr": -1}), "lr=-1"),
        ("train nothing", lambda: train(task, [], config=quick), "nothing to train: 0 configs"),
        ("train seeds 0", lambda: train(task, one, seeds=0, config=quick), "seeds=0"),
        ("train seeds 1.5", lambda: train(task, one, seeds=1.5, config=quick), "seeds=1.5"),
        ("train seed index -1", lambda: train(task, one, seeds=[-1], config=quick), "seed index -1"),
        ("train seed 2**40", lambda: train(task, one, seed=2**40, config=quick), "seed=1099511627776"),
        ("train seed 1.5", lambda: train(task, one, seed=1.5, config=quick), "seed=1.5"),
        ("train 1e8 seeds", lambda: train(task, one, seeds=10**8, config=quick), "100000000 instances need about"),
        ("train config key", lambda: train(task, [{"feature_probability": 0.1, "p": 1}], config=quick), "p=1"),
        ("superposition 1e12 features", lambda: superposition(10**12, 2), "n_features=1000000000000 × n_hidden=2"),
        ("superposition True features", lambda: superposition(True, 2), "n_features=True"),
        ("superposition importance inf", lambda: task.hyper({"feature_probability": 0.1, "importance": INF}),
         "importance=inf"),
        ("superposition importance 2, n=200", lambda: superposition(200, 2).hyper(
            {"feature_probability": 0.1, "importance": 2.0}), "importance=2.0"),
        ("lowrank d 1e6", lambda: lowrank(10**6), "d=1000000"),
        ("lowrank singular values 1e30", lambda: lowrank(3).hyper({"singular_values": [1e30]}),
         "singular_values=[1e+30]"),
        ("lowrank init_scale inf", lambda: lowrank(3).hyper({"rank": 1, "init_scale": INF}), "init_scale=inf"),
        ("lowrank zero target", lambda: lowrank(2).hyper({"target": [[0, 0], [0, 0]]}), "largest entry is 0"),
        ("lowrank ragged target", lambda: lowrank(2).hyper({"target": [[1, 2], [3]]}), "target of type list"),
        ("scurve rank 1.5", lambda: scurve.run(d=3, rank=1.5, steps=1), "rank=1.5"),
        ("scurve no singular values", lambda: scurve.run(d=3, singular_values=[], steps=1), "singular_values=[]"),
        ("scurve eval_every 0", lambda: scurve.run(d=3, eval_every=0, steps=1), "eval_every=0"),
        ("measure None", lambda: metrics.measure(None), "dtype object"),
        ("measure ragged", lambda: metrics.measure([[1.0, 2.0], [3.0]]), "could not convert list"),
        ("measure inf", lambda: metrics.measure([[INF, 1.0]]), "contains inf at index (0, 0)"),
        ("measure threshold nan", lambda: metrics.measure(eye, threshold=NAN), "threshold=nan"),
        ("measure a stack", lambda: metrics.measure(np.ones((3, 2, 2))), "a stack of 3"),
        ("float64 beyond float32", lambda: metrics.features_per_dimension(1e200 * eye), "max|W| = 1e+200"),
        ("float64 below float32", lambda: metrics.as_weight_matrix(1e-300 * eye), "max|W| = 1e-300"),
        ("geometry tol nan", lambda: metrics.geometry(eye, tol=NAN), "tol=nan"),
        ("measure_file npz member", lambda: measure_file(inputs / "not-npy-member.npz"), "[W]: not a .npy array"),
        ("measure_file 8 TiB header", lambda: measure_file(inputs / "claims-8TiB.npy"), "claims shape"),
        ("load a non-store", lambda: toylab.load(inputs / "W.npy"), "is not a toylab store"),
        ("load a folder", lambda: toylab.load(inputs), "is a directory"),
        ("SweepSpec train lr inf", lambda: sweeps.SweepSpec(task="superposition", fixed={"feature_probability": 0.1},
                                                            train={"lr": INF}), "train.lr=inf"),
        ("SweepSpec unknown axis", lambda: sweeps.SweepSpec(task="superposition", axes={"p": [0.1]}), "p=0.1"),
        ("sae.fit 1-D", lambda: toylab.sae.fit(np.ones(5)), "activations have shape (5,): expected 2-D"),
        ("sae.fit NaN", lambda: toylab.sae.fit([[1.0, 2.0], [NAN, 0.0]]), "activations contain nan at row 1, column 0"),
        ("sae.fit k > d_sae", lambda: toylab.sae.fit(np.ones((9, 3)), d_sae=4, k=5), "k=5: expected an integer from 1"),
        ("sae.fit λ < 0", lambda: toylab.sae.fit(np.ones((9, 3)), l1_coefficient=-0.5), "l1_coefficient=-0.5"),
        ("sae.fit features", lambda: toylab.sae.fit(np.ones((9, 3)), features=np.eye(2)), "features have dimension 2"),
        ("load_spec missing", lambda: sweeps.load_spec(inputs / "missing.toml"), "no such sweep spec"),
        ("myopia horizon ≥ epochs", lambda: myopia.run_arm(myopia.Arm(epochs=5, horizon=7)), "--horizon 7"),
        ("myopia epochs 0", lambda: myopia.run_arm(myopia.Arm(epochs=0, horizon=0)), "--epochs 0"),
        ("myopia gamma 2", lambda: myopia.run_arm(myopia.Arm(learner="ppo", gamma=2.0)), "--gamma 2.0"),
        ("myopia unknown learner", lambda: myopia.run_arm(myopia.Arm(learner="sarsa")), "--learner 'sarsa'"),
        ("myopia PBT population 3", lambda: myopia.run_arm(myopia.Arm(pbt_interval=1, population=3)), "--population 3"),
        ("EpochShutdown horizon", lambda: EpochShutdownEnv(epochs=3, horizon=3), "horizon E*=3"),
        ("myopia oracle gamma", lambda: oracle(gamma=-1.0), "gamma=-1.0"),
    ]


API_NAMES = [name for name, _, _ in _api_cases(Path("."))]


@pytest.mark.parametrize("name", API_NAMES)
def test_a_bad_api_call_raises_one_config_error_line_naming_the_value(guarded, inputs, name):
    call, fragment = next((call, fragment) for n, call, fragment in _api_cases(inputs) if n == name)
    with pytest.raises(ConfigError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and fragment in message, message


def test_the_tables_cover_every_command_and_sixty_cases():
    commands = {(case.values if hasattr(case, "marks") else case)[0].split()[0] for case in CLI_CASES}
    assert commands == {"tms", "scurve", "reproduce", "phase", "measure", "rescale-check", "sweep", "sae", "myopia"}
    assert len(CLI_CASES) + len(API_NAMES) >= 60


def test_a_ce_prob_target_does_not_depend_on_the_scale_of_its_singular_values():
    # Was a LinAlgError: the unnormalised target overflowed. The target is normalised to sum 1,
    # so s and c·s describe the same distribution, 1e308 included.
    from toylab.tasks.lowrank import target_matrix

    small = target_matrix(4, "ce-prob", {"singular_values": [1.5, 1.0]})
    huge = target_matrix(4, "ce-prob", {"singular_values": [1.5e308, 1e308]})
    np.testing.assert_allclose(huge, small, rtol=1e-12)
    assert math.isclose(huge.sum(), 1.0)


# -- Ctrl-C during start-up, in a real process ------------------------------------------------


def _mapped(pid: int, library: str) -> bool:
    try:
        return library in Path(f"/proc/{pid}/maps").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not Path("/proc/self/maps").exists(), reason="reads /proc/<pid>/maps to time the signal")
@pytest.mark.parametrize("library", ["pydantic_core", "jaxlib"])
def test_ctrl_c_during_start_up_is_one_line_and_status_130(tmp_path, library):
    """SIGINT once the process has loaded ``library``: pydantic's while the CLI itself is being
    imported, JAX's while a command imports it (where Python used to drop the interrupt inside
    JAX's garbage-collector callback and carry on). Wherever it lands, the answer is the same."""
    from test_cli import _from_a_terminal

    out = tmp_path / "run"
    process = _from_a_terminal([sys.executable, "-m", "toylab", "tms", "--steps", "1000000", "--out", str(out)])
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None and not _mapped(process.pid, library):
        time.sleep(0.005)
    process.send_signal(signal.SIGINT)
    process.wait(timeout=60)
    assert process.stderr.read().splitlines() == ["interrupted"] and process.returncode == 130
    assert not out.exists()
