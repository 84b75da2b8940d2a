"""Where chunks train: in this process (``local``) or on Ray workers (``ray``).

A backend takes chunk jobs and yields ``(job, outcomes)`` as chunks finish, or
``(job, ChunkFailure)`` for a chunk that could not be trained. It never touches the store: the
coordinator that iterates over it is the only writer. :func:`connected` makes a backend ready
(Ray: connects) before the coordinator writes anything, so that a cluster that cannot be
reached leaves no store behind.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import os
import re
import socket
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from toylab.errors import ConfigError
from toylab.store.db import RunOutcome
from toylab.sweeps.worker import ChunkJob, train_chunk
from toylab.train.config import TrainConfig

__all__ = ["ChunkFailure", "BACKENDS", "local", "ray", "connected", "check_ray_address",
           "connection_problem"]

Started = Callable[[ChunkJob], None]
Training = Callable[[ChunkJob, float], None]
Results = Iterator[tuple[ChunkJob, "list[RunOutcome] | ChunkFailure"]]


@dataclasses.dataclass(frozen=True)
class ChunkFailure:
    """A chunk that did not train, with why (one line)."""

    message: str


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


def local(jobs: Iterable[ChunkJob], *, started: Started, training: Training | None = None,
          **_: object) -> Results:
    """Train the chunks one after the other in this process (JAX uses every core for each).

    ``training(job, fraction)`` hears how far the chunk in training has come, in [0, 1].
    """
    for job in jobs:
        started(job)
        steps = TrainConfig(**job.train).steps
        on_steps = (lambda done, job=job: training(job, done / steps)) if training else None
        try:
            outcomes = train_chunk(job, on_steps)
        except Exception as exc:  # one bad chunk (e.g. out of memory) must not stop the sweep
            yield job, ChunkFailure(f"chunk {job.chunk}: {_one_line(exc)}")
            continue
        yield job, outcomes


def ray(jobs: Iterable[ChunkJob], *, started: Started, address: str | None = None,
        max_attempts: int = 3, **_: object) -> Results:
    """Send each chunk to a Ray worker as a remote task; retry a failed one up to ``max_attempts``.

    Connects with ``ray.init()`` (a local Ray instance) or ``ray.init(address=...)``, unless
    this process is already connected (then that connection is used and left open). Workers
    are Ray's own processes, started fresh, never forked from this one.
    """
    ray_module = _import_ray()
    owns_connection = not ray_module.is_initialized()
    if owns_connection:
        _init_ray(ray_module, address)
    try:
        # Ray's own retries are off: this loop counts every attempt, a crashed worker (a
        # system error) and an exception in the chunk alike, and gives up after max_attempts.
        remote = ray_module.remote(max_retries=0, num_cpus=1)(train_chunk)
        waiting = collections.deque((job, 1) for job in jobs)
        window = 2 * max(1, int(ray_module.cluster_resources().get("CPU", 1)))
        in_flight: dict = {}
        while waiting or in_flight:
            while waiting and len(in_flight) < window:
                job, attempt = waiting.popleft()
                started(job)
                in_flight[remote.remote(job)] = (job, attempt)
            [ref], _ = ray_module.wait(list(in_flight), num_returns=1)
            job, attempt = in_flight.pop(ref)
            try:
                outcomes = ray_module.get(ref)
            except ray_module.exceptions.RayError as exc:
                cause = getattr(exc, "cause", None) or exc
                if attempt < max_attempts:
                    waiting.appendleft((job, attempt + 1))
                    continue
                yield job, ChunkFailure(f"chunk {job.chunk} failed {attempt} times on Ray; "
                                        f"last: {_one_line(cause)}")
                continue
            yield job, outcomes
    finally:
        if owns_connection:
            ray_module.shutdown()


@contextlib.contextmanager
def connected(backend: str, address: str | None = None) -> Iterator[None]:
    """``backend`` ready to train: for Ray, connected (``ray.init``) on entry, unless this
    process is connected already, and disconnected on exit if connected here.

    Raises:
      ConfigError: Ray is not installed, or cannot be started or reached at ``address``; the
        message names the likely cause (see :func:`connection_problem`).
    """
    if backend != "ray":
        yield
        return
    ray_module = _import_ray()
    if ray_module.is_initialized():
        yield
        return
    _init_ray(ray_module, address)
    try:
        yield
    finally:
        ray_module.shutdown()


def _init_ray(ray_module: Any, address: str | None) -> None:
    """``ray.init`` with this process's stderr held back: Ray's C++ client logs every failed
    attempt to reach the head there (one line a second, for ~20 s), so on failure those lines
    are read for the cause and folded into one :class:`ConfigError` line instead."""
    token_sent = _use_token_if_available() if address not in (None, "auto") else False
    with tempfile.TemporaryFile(mode="w+b") as held, warnings.catch_warnings():
        # A local Ray starts its node processes (GCS, raylet) with subprocess's fork +
        # exec, whose preexec_fn only masks SIGINT and sets the parent-death signal before
        # exec: no Python of this process runs on in a child, so JAX's warning about
        # os.fork in a multithreaded process does not apply. The workers that run JAX are
        # fresh processes that the raylet starts.
        warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called", category=RuntimeWarning)
        try:
            # Only while joining a cluster: a local Ray's node processes, started in ray.init,
            # would keep the held file as their stderr for as long as they run.
            with _stderr_to(held) if address else contextlib.nullcontext():
                if address not in (None, "auto") and not address.startswith("ray://"):
                    _ask_head(address)
                ray_module.init(address=address, include_dashboard=False, logging_level="ERROR",
                                log_to_driver=False)
        except Exception as exc:
            held.seek(0)
            log = held.read().decode(errors="replace")
            raise ConfigError(connection_problem(address, exc, log, token_sent=token_sent)) from None


def _ask_head(address: str) -> None:
    """One request to the head's GCS, as ``ray start --address`` makes first: a head that
    refuses this machine's token answers at once (measured: 11 ms), where ``ray.init`` retries
    for ~20 s first; something that is not a Ray head never answers (Ray waits ~40 s)."""
    try:
        from ray._raylet import GcsClient
    except ImportError:  # a Ray without it: ray.init alone tells
        return
    GcsClient(address=address)


@contextlib.contextmanager
def _stderr_to(file) -> Iterator[None]:
    """File descriptor 2 (where C++ writes, below Python's sys.stderr) goes to ``file``."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        os.dup2(file.fileno(), 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)


def _use_token_if_available() -> bool:
    """Send Ray's authentication token to the head when this machine has one; True if sent.

    Ray (2.52+) authenticates with a shared token once ``RAY_AUTH_MODE=token``; since Ray 2.59
    ``ray start --head`` turns that mode on by itself whenever a token exists (in
    ``RAY_AUTH_TOKEN``, the file ``RAY_AUTH_TOKEN_PATH`` or ``~/.ray/auth_token``), but
    ``ray.init(address=HOST:PORT)`` does not, so a driver with the very token the head uses
    is refused. This applies Ray's own rule for ``ray.init(address="auto")``: with
    ``RAY_AUTH_MODE`` unset and a token present, token mode is on for this process. A head
    without authentication ignores the token (tried: Ray 2.60, ``RAY_AUTH_MODE=disabled``);
    ``RAY_AUTH_MODE`` set by the user is left as it is. Ray before 2.52 has no tokens.
    """
    try:
        from ray._private.authentication import authentication_token_setup as setup
    except ImportError:
        return False
    rule = getattr(setup, "maybe_enable_token_auth_if_token_available", None)
    if rule is None:
        return os.environ.get("RAY_AUTH_MODE", "").lower() == "token"
    logger = logging.getLogger(setup.__name__)
    level = logger.level
    logger.setLevel(logging.ERROR)  # its warning speaks of starting a cluster, not joining one
    try:
        return bool(rule(warn_if_disabled=False))
    finally:
        logger.setLevel(level)


_TOKEN_HELP = ("copy the head's token (run `ray get-auth-token` there) to ~/.ray/auth_token on this "
               "machine or into RAY_AUTH_TOKEN")


def connection_problem(address: str | None, exc: BaseException, log: str, *, token_sent: bool) -> str:
    """One line saying why ``ray.init(address)`` failed, from its exception and the C++ log
    lines it wrote meanwhile: authentication refused, a Ray or Python version other than the
    head's, or, failing those, Ray's own first line."""
    where = f"--address {address or '(local)'}"
    text = f"{exc}\n{log}"
    if type(exc).__name__ == "AuthenticationError" or "Unauthenticated" in text or "InvalidAuthToken" in text:
        if token_sent:
            return (f"{where}: the Ray head refused this machine's authentication token (not the "
                    f"head's token); {_TOKEN_HELP}")
        return (f"{where}: the Ray head requires token authentication and this machine has no token; "
                f"{_TOKEN_HELP}")
    if "Version mismatch" in text:
        versions = re.findall(r"Ray: (\S+)\s+Python: (\S+)", text)
        if len(versions) == 2:
            (head_ray, head_python), (here_ray, here_python) = versions
            return (f"{where}: the Ray head runs Ray {head_ray} on Python {head_python}, this machine "
                    f"Ray {here_ray} on Python {here_python}; install the same versions everywhere")
        return f"{where}: the Ray head runs another Ray or Python version; install the same versions everywhere"
    if "Timed out while waiting for GCS" in text:
        return (f"{where}: something answers there but not as a Ray head (no reply from Ray's GCS); "
                "give the port of `ray start --head --port` (6379 unless set)")
    return f"{where}: cannot start or reach Ray ({_one_line(exc)})"


def check_ray_address(address: str | None) -> None:
    """Fail in one line when ``address`` is not ``HOST:PORT`` or nothing listens there.

    ``ray.init(address=...)`` retries an unreachable head for minutes, logging from C++ to
    stderr; a plain TCP connection answers in milliseconds (refused) or a few seconds.
    """
    if address is None or address == "auto":
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
    except ValueError:
        raise ConfigError(f"--address {address}: expected HOST:PORT of a Ray head, e.g. 10.0.0.1:6379") from None
    except OSError as exc:
        raise ConfigError(f"--address {address}: nothing answers there ({exc.strerror or exc}); "
                          "is the Ray head running (ray start --head)?") from None


def _import_ray():
    try:
        import ray as ray_module
    except ImportError:
        raise ConfigError("--backend ray needs Ray, an optional extra: pip install 'toylab[ray]'") from None
    return ray_module


BACKENDS: dict[str, Callable[..., Results]] = {"local": local, "ray": ray}
