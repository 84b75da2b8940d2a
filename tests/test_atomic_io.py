"""toylab.io: a failed write keeps the previous file, and NaN never reaches JSON."""

import json
from pathlib import Path

import numpy as np
import pytest

from toylab.io import atomic_write, json_safe, nearest_creatable_folder


def test_a_write_that_fails_midway_leaves_the_previous_file_and_no_temporary(tmp_path):
    path = atomic_write(tmp_path / "summary.json", lambda f: f.write(b'{"v": 1}'))

    def half_then_crash(file):
        file.write(b'{"v": 2, "trunc')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_crash)
    assert json.loads(path.read_text()) == {"v": 1}
    atomic_write(path, lambda f: np.save(f, np.arange(3)))  # any writer of a binary file
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]  # no .summary.json.* left


def test_json_safe_turns_every_non_finite_float_into_null_at_any_depth():
    value = {"a": float("nan"), "b": [1.0, float("-inf"), (float("inf"), 2)], "c": "nan"}
    assert json.dumps(json_safe(value), allow_nan=False) == '{"a": null, "b": [1.0, null, [null, 2]], "c": "nan"}'


def test_the_nearest_creatable_folder_is_probed_and_left_as_it_was(tmp_path):
    assert nearest_creatable_folder(tmp_path / "a" / "b" / "store.sqlite") == tmp_path
    assert nearest_creatable_folder(Path("no-such-folder/store.sqlite")) == Path(".")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError) as refused:
        nearest_creatable_folder(tmp_path / "file" / "sub")
    assert refused.value.filename == str(tmp_path / "file")
    with pytest.raises(OSError) as refused:
        nearest_creatable_folder(Path("/proc/toylab-x"))
    assert refused.value.filename == "/proc"
