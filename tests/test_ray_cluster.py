"""Sweeps on a Ray head started apart, as on a cluster: ``ray start --head``, then ``--address``.

The head runs in its own session (``start_new_session``), in its own temporary folder, with
its own authentication token, and is stopped by killing that session's processes by id:
``ray stop`` would end every Ray process on the machine, other people's included.
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import ray  # the ray extra, which `make test` installs: missing, these tests fail
from ray._private.utils import check_version_info

from test_sweep import store_rows

import toylab
from toylab import sweeps
from toylab.sweeps.backends import connection_problem

ROOT = Path(__file__).parent.parent
RAY = Path(sys.executable).parent / "ray"
# 4 grid points × 2 seeds in 2 chunks of 4: one chunk per CPU of the head.
SPEC = """
task = "superposition"
seeds = 2
[task_params]
n_features = 5
n_hidden = 2
[axes]
feature_probability = [0.05, 0.2, 0.5, 1.0]
[train]
steps = 200
batch_size = 64
elicit_steps = 5
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def session_processes(session: int) -> list[int]:
    """Every process of a session: the head's node processes and the workers its raylet starts
    (each worker in a process group of its own, but all in the head's session)."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            # /proc/PID/stat: "pid (comm) state ppid pgrp session ..."; comm may hold spaces
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
            if entry.name.isdigit() and int(fields[3]) == session:
                found.append(int(entry.name))
    return found


def command_line(pid: int) -> str:
    with contextlib.suppress(OSError):
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    return ""


@pytest.fixture(scope="module")
def auth_env():
    """The environment of every process here: Ray's token in a file of this module's own, and
    RAY_AUTH_MODE unset, as after a plain install (the head turns token mode on itself)."""
    folder = Path(tempfile.mkdtemp(prefix="tlray-"))  # short: Ray's socket paths must fit 107 bytes
    token = folder / "auth_token"
    token.write_text(os.urandom(16).hex())
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_TOKEN_PATH=str(token), JAX_PLATFORMS="cpu",
               PYTHONPATH=os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]))
    yield folder, env
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def head(auth_env):
    """``ray start --head --block`` on a free port; yields its ``HOST:PORT`` and session id."""
    folder, env = auth_env
    port = free_port()
    log = open(folder / "head.log", "w+")
    process = subprocess.Popen(
        [str(RAY), "start", "--head", "--block", f"--port={port}", "--num-cpus=2", "--include-dashboard=false",
         "--dashboard-port=0", "--dashboard-agent-listen-port=0", "--disable-usage-stats",
         f"--temp-dir={folder / 'ray'}"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90  # a busy 2-core machine: usually ~5 s
        while "Ray runtime started" not in (folder / "head.log").read_text():
            assert process.poll() is None and time.monotonic() < deadline, (folder / "head.log").read_text()
            time.sleep(0.2)
        yield f"127.0.0.1:{port}", process.pid
    finally:
        process.send_signal(signal.SIGTERM)  # `ray start --block` stops its node processes
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        for pid in session_processes(process.pid):  # and whatever outlived it, by id
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.wait()
        log.close()


@pytest.fixture(scope="module")
def local_store(tmp_path_factory):
    """The same sweep trained by the local backend, in this process: the expected store."""
    folder = tmp_path_factory.mktemp("local")
    (folder / "spec.toml").write_text(SPEC)
    sweeps.run(folder / "spec.toml", store=folder / "local.sqlite", chunk_size=4, progress=False)
    return folder / "local.sqlite"


def sweep_on(address: str, env: dict, folder: Path) -> subprocess.Popen:
    (folder / "spec.toml").write_text(SPEC)
    return subprocess.Popen(
        [sys.executable, "-m", "toylab", "sweep", str(folder / "spec.toml"), "--store", str(folder / "s.sqlite"),
         "--backend", "ray", "--address", address, "--chunk-size", "4", "--json"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow  # a Ray head and a toylab process of its own
def test_a_sweep_through_address_fills_the_store_the_local_backend_does(head, auth_env, local_store, tmp_path):
    address, _ = head
    sweep = sweep_on(address, auth_env[1], tmp_path)
    out, err = sweep.communicate(timeout=240)
    assert sweep.returncode == 0, err
    assert '"done": 8' in out and '"chunks": 2' in out
    assert store_rows(tmp_path / "s.sqlite") == store_rows(local_store)
    assert ".cc:" not in err  # no C++ log lines from Ray on the terminal


@pytest.mark.slow
def test_a_worker_killed_mid_chunk_is_retried_and_nothing_is_lost(head, auth_env, local_store, tmp_path):
    address, session = head
    sweep = sweep_on(address, auth_env[1], tmp_path)
    killed = None
    deadline = time.monotonic() + 180
    while killed is None and sweep.poll() is None and time.monotonic() < deadline:
        for pid in session_processes(session):
            if command_line(pid).startswith("ray::train_chunk"):  # a worker in the middle of a chunk
                os.kill(pid, signal.SIGKILL)
                killed = pid
                break
        time.sleep(0.02)
    out, err = sweep.communicate(timeout=240)
    assert killed is not None, "no worker was seen training a chunk"
    assert sweep.returncode == 0, err
    assert store_rows(tmp_path / "s.sqlite") == store_rows(local_store)
    attempts = sorted(toylab.load(tmp_path / "s.sqlite").runs["attempts"])
    assert attempts == [1] * 4 + [2] * 4  # the killed chunk's 4 runs took a second try


def test_a_version_mismatch_is_named_with_both_versions():
    here_ray, here_python = ray.__version__, ".".join(map(str, sys.version_info[:3]))
    with pytest.raises(RuntimeError) as raised:  # Ray's own check, as ray.init runs it on joining
        check_version_info({"ray_version": "2.9.3", "python_version": "3.10.4"}, "this machine")
    line = connection_problem("10.0.0.1:6379", raised.value, "", token_sent=False)
    assert line == (f"--address 10.0.0.1:6379: the Ray head runs Ray 2.9.3 on Python 3.10.4, this machine "
                    f"Ray {here_ray} on Python {here_python}; install the same versions everywhere")


@pytest.mark.slow
def test_a_head_refusing_the_token_is_named_in_one_line_and_nothing_is_written(head, auth_env, tmp_path):
    address, _ = head
    (tmp_path / "wrong").write_text("not the head's token")
    (tmp_path / "home").mkdir()
    advice = "copy the head's token (run `ray get-auth-token` there) to ~/.ray/auth_token on this machine or into RAY_AUTH_TOKEN"
    cases = [({"RAY_AUTH_TOKEN_PATH": str(tmp_path / "wrong")},
              "the Ray head refused this machine's authentication token (not the head's token)"),
             ({"RAY_AUTH_TOKEN_PATH": None, "HOME": str(tmp_path / "home")},  # no token anywhere
              "the Ray head requires token authentication and this machine has no token")]
    running = []  # side by side: each is mostly toylab's start-up
    for index, (change, cause) in enumerate(cases):
        env = {k: v for k, v in {**auth_env[1], **change}.items() if v is not None}
        (tmp_path / str(index)).mkdir()
        running.append((sweep_on(address, env, tmp_path / str(index)), cause))
    for index, (sweep, cause) in enumerate(running):
        out, err = sweep.communicate(timeout=120)
        assert (sweep.returncode, out, err) == (2, "", f"error: --address {address}: {cause}; {advice}\n")
        assert not list((tmp_path / str(index)).glob("s.sqlite*"))
