"""Reading ``--json`` output in tests: check the envelope every command shares, return its result."""

import json
from typing import Any

ENVELOPE = {"command", "ok", "result", "outputs"}


def result_of(invoked: Any, command: str, *, ok: bool = True) -> dict[str, Any]:
    """The ``result`` of one command's ``--json`` stdout, after checking that stdout holds
    exactly one object of the envelope's shape. ``invoked``: a CliRunner result or a
    ``subprocess.CompletedProcess``."""
    code = getattr(invoked, "exit_code", getattr(invoked, "returncode", None))
    assert code == (0 if ok else 1), invoked.stderr
    lines = invoked.stdout.splitlines()
    assert len(lines) == 1, invoked.stdout
    envelope = json.loads(lines[0])
    assert set(envelope) == ENVELOPE, envelope.keys()
    assert envelope["command"] == command and envelope["ok"] is ok
    assert isinstance(envelope["result"], dict)
    assert set(envelope["outputs"]) <= {"folder", "store"}
    assert all(isinstance(path, str) for path in envelope["outputs"].values())
    return envelope["result"]


def outputs_of(invoked: Any) -> dict[str, str]:
    return json.loads(invoked.stdout)["outputs"]
