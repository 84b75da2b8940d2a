"""Weight files: .npy, .npz and .safetensors read as data only, and one-line refusals.

Also ``toylab measure`` end to end: the JSON contract, and exit status 2 with a single
``error: ...`` line for every refused file.
"""

from __future__ import annotations

import pickle
import re
import subprocess
import sys
from pathlib import Path

from cli_json import result_of
import numpy as np
import pytest
from safetensors.numpy import save_file
from typer.testing import CliRunner

from toylab import metrics
from toylab.arrays import load_array, load_weight_matrix, measure_file, pick_matrix
from toylab.cli import app
from toylab.errors import ConfigError

runner = CliRunner()


def weights() -> np.ndarray:
    angles = 2 * np.pi * np.arange(5) / 5
    W = 1.5 * np.stack([np.cos(angles), np.sin(angles)])  # (2, 5): a pentagon at norm 1.5
    return (W + 0.01 * np.random.default_rng(0).standard_normal(W.shape)).astype(np.float32)


def write(tmp_path: Path, kind: str) -> tuple[Path, str | None]:
    """The same matrix in each accepted container; returns the file and the --array to pass."""
    W = weights()
    if kind == "npy":
        np.save(path := tmp_path / "W.npy", W)
        return path, None
    if kind == "npz-one":
        np.savez(path := tmp_path / "one.npz", W=W)
        return path, None
    if kind == "npz-named":
        np.savez_compressed(path := tmp_path / "many.npz", b=np.zeros(5, np.float32), W=W)
        return path, "W"
    if kind == "safetensors":
        save_file({"W": W}, str(path := tmp_path / "W.safetensors"))
        return path, None
    if kind == "safetensors-named":
        save_file({"decoder.weight": W.T.copy(), "W": W}, str(path := tmp_path / "model.safetensors"))
        return path, "W"
    raise AssertionError(kind)


FORMATS = ["npy", "npz-one", "npz-named", "safetensors", "safetensors-named"]


@pytest.mark.parametrize("kind", FORMATS)
def test_every_format_gives_the_numbers_of_the_array_itself(tmp_path, kind):
    path, name = write(tmp_path, kind)
    np.testing.assert_array_equal(load_array(path, array=name), weights())
    assert metrics.measure(load_weight_matrix(path, array=name)) == metrics.measure(weights())


def test_feature_axis_reads_rows_as_features(tmp_path):
    save_file({"decoder.weight": weights().T.copy()}, str(path := tmp_path / "d.safetensors"))
    assert metrics.measure(load_weight_matrix(path, feature_axis=0)) == metrics.measure(weights())


def test_bfloat16_safetensors_from_pytorch_are_read(tmp_path):
    import torch  # the test extra installs it: a missing torch must fail, not skip
    from safetensors.torch import save_file as save_torch

    save_torch({"W": torch.tensor(weights(), dtype=torch.bfloat16)}, str(tmp_path / "bf16.safetensors"))
    W = load_weight_matrix(tmp_path / "bf16.safetensors")
    np.testing.assert_allclose(W, weights(), rtol=1e-2)


class _Payload:
    """Unpickling this runs code: it creates the file named in ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def refused_files(tmp_path: Path) -> dict[str, tuple[Path, str | None, str]]:
    """name -> (file, --array, text the one-line error must contain)."""
    marker = tmp_path / "code-ran"
    files = {}

    def add(name, path, expected, array=None):
        files[name] = (path, array, expected)

    np.save(p := tmp_path / "vector.npy", np.ones(5))
    add("1-D array", p, "got shape (5,)")
    np.save(p := tmp_path / "empty.npy", np.ones((2, 0)))
    add("empty matrix", p, "got shape (2, 0)")
    np.save(p := tmp_path / "nan.npy", np.array([[0.0, 1.0], [np.nan, 2.0]]))
    add("NaN entry", p, "nan at index (1, 0)")
    np.savez(p := tmp_path / "inf.npz", W=np.array([[0.0, np.inf]]))
    add("inf entry", p, "inf at index (0, 1)")
    np.save(p := tmp_path / "objects.npy", np.array([_Payload(marker)], dtype=object), allow_pickle=True)
    add("pickle-bearing .npy", p, "holds Python objects")
    np.savez(p := tmp_path / "objects.npz", W=np.array([_Payload(marker)], dtype=object))
    add("pickle-bearing .npz member", p, "objects.npz[W]: holds Python objects")
    (p := tmp_path / "pickled.npy").write_bytes(pickle.dumps(_Payload(marker)))
    add("a pickle renamed .npy", p, "is a Python pickle, not a .npy array")
    (p := tmp_path / "notes.npy").write_text("these are not weights\n")
    add("text as .npy", p, "not a .npy array file")
    (p := tmp_path / "notes.npz").write_text("these are not weights\n")
    add("text as .npz", p, "not a .npz archive")
    (p := tmp_path / "notes.safetensors").write_text("these are not weights\n")
    add("text as .safetensors", p, "not a readable .safetensors file")
    np.save(p := tmp_path / "strings.npy", np.array([["a", "b"], ["c", "d"]]))
    add("strings", p, "holds dtype <U1")
    np.save(p := tmp_path / "complex.npy", np.ones((2, 2), dtype=complex))
    add("complex", p, "holds dtype complex128")
    np.savez(p := tmp_path / "two.npz", W=weights(), b=np.zeros(5))
    add("several arrays, no name", p, "holds 2 arrays (W, b); choose one with --array NAME")
    add("unknown array name", p, "no array named 'W_in'; it holds W, b", array="W_in")
    add("name for a .npy", tmp_path / "nan.npy", "a .npy file holds one unnamed array", array="W")
    (p := tmp_path / "weights.pt").write_bytes(b"\x80\x02")
    add("unknown extension", p, "unknown file type '.pt'")
    add("missing file", tmp_path / "absent.npy", "absent.npy: no such file")
    add("a folder", tmp_path, "not a file")
    return files


REFUSALS = ["1-D array", "empty matrix", "NaN entry", "inf entry", "pickle-bearing .npy", "pickle-bearing .npz member",
            "a pickle renamed .npy", "text as .npy", "text as .npz", "text as .safetensors", "strings",
            "complex", "several arrays, no name", "unknown array name", "name for a .npy",
            "unknown extension", "missing file", "a folder"]


@pytest.mark.parametrize("case", REFUSALS)
def test_bad_files_are_refused_in_one_line_without_running_code(tmp_path, case):
    path, array, expected = refused_files(tmp_path)[case]
    with pytest.raises(ConfigError) as info:
        load_weight_matrix(path, array=array)
    message = str(info.value)
    assert expected in message and "\n" not in message, message
    assert str(path) in message or path.name in message  # the message names the file
    assert not (tmp_path / "code-ran").exists()  # nothing in the file was executed


def test_a_pytorch_checkpoint_renamed_npz_is_refused(tmp_path):
    import torch  # the test extra installs it: a missing torch must fail, not skip
    torch.save({"W": torch.ones(2, 2)}, tmp_path / "model.npz")  # a zip holding a pickle
    with pytest.raises(ConfigError, match="a zip archive with no .npy arrays in it"):
        load_weight_matrix(tmp_path / "model.npz")


# ---------------------------------------------------------------------------------------------
# toylab measure


def test_measure_json_contract(tmp_path):
    path, name = write(tmp_path, "npz-named")
    result = runner.invoke(app, ["measure", str(path), "--array", name, "--json"])
    payload = result_of(result, "measure")  # exactly one JSON object
    for key in ("features_per_dimension", "features_per_dimension_invariant", "feature_dimensionality",
                "feature_norms", "geometry", "dimensions_per_feature", "interference", "scaling"):
        assert key in payload
    assert len(payload["feature_dimensionality"]) == 5 and len(payload["feature_norms"]) == 5
    W = weights().astype(np.float64)
    assert payload["features_per_dimension"] == pytest.approx(np.sum(W**2) / 2, rel=1e-5)  # ≈ 2.5 · 1.5²
    q = np.sum(W**2, axis=0)
    assert payload["features_per_dimension_invariant"] == pytest.approx(q.sum() ** 2 / (q**2).sum() / 2, rel=1e-5)
    assert payload["features_per_dimension_invariant"] == pytest.approx(2.5, rel=1e-2)  # a pentagon
    assert payload["geometry"][0]["name"] == "pentagon"


def test_measure_feature_axis_and_table(tmp_path):
    save_file({"decoder.weight": weights().T.copy()}, str(path := tmp_path / "d.safetensors"))
    as_rows = runner.invoke(app, ["measure", str(path), "--feature-axis", "0", "--json"])
    assert result_of(as_rows, "measure")["n_features"] == 5
    table = runner.invoke(app, ["measure", str(path), "--feature-axis", "0"])
    assert table.exit_code == 0 and "features_per_dimension_invariant" in table.stdout
    assert "pentagon" in table.stdout


@pytest.mark.parametrize("case", ["1-D array", "NaN entry", "pickle-bearing .npy", "text as .npy",
                                  "several arrays, no name", "missing file"])
def test_measure_cli_refuses_with_one_error_line(tmp_path, case):
    path, array, expected = refused_files(tmp_path)[case]
    result = runner.invoke(app, ["measure", str(path), *(["--array", array] if array else []), "--json"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert result.stdout == "" and "Traceback" not in result.output


def test_measure_cli_refuses_a_stack_and_a_bad_axis(tmp_path):
    np.save(path := tmp_path / "stack.npy", np.ones((3, 2, 5)))
    result = runner.invoke(app, ["measure", str(path)])
    assert result.exit_code == 2 and "a stack of 3" in result.stderr and str(path) in result.stderr
    result = runner.invoke(app, ["measure", str(tmp_path / "stack.npy"), "--feature-axis", "2"])
    assert result.exit_code == 2 and "feature_axis=2" in result.stderr


def test_measure_real_entry_point_prints_no_traceback(tmp_path):
    np.save(path := tmp_path / "objects.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    process = subprocess.run([sys.executable, "-m", "toylab", "measure", str(path)],
                             capture_output=True, text=True, timeout=120)
    assert process.returncode == 2
    assert process.stderr.strip().splitlines() == [process.stderr.strip()]
    assert process.stderr.startswith("error: ") and "holds Python objects" in process.stderr


# ---------------------------------------------------------------------------------------------
# One matrix of a stack (toylab measure --index)


def test_pick_matrix_indexes_a_stack_by_its_flattened_leading_axes():
    stack = np.arange(2 * 3 * 2 * 5, dtype=np.float32).reshape(2, 3, 2, 5)  # e.g. configs × seeds
    assert np.array_equal(pick_matrix(stack, 4), stack[1, 1])
    assert np.array_equal(pick_matrix(stack, -1), stack[1, 2])
    single = stack[0, 0]
    assert pick_matrix(single) is single  # a single matrix needs no index
    for W, index, message in ((stack, None, "holds a stack of 6 matrices of shape (2, 5) (array shape (2, 3, 2, 5)): "
                                            "pick one with --index I"),
                              (stack, 6, "--index 6: W holds 6 matrices of shape (2, 5)"),
                              (stack, -7, "--index -7: W holds 6 matrices"),
                              (stack[0, 0], 0, "--index 0: W holds a single matrix of shape (2, 5)")):
        with pytest.raises(ConfigError, match=re.escape(message)):
            pick_matrix(W, index, label="W")


def test_measure_file_names_the_file_array_and_index(tmp_path):
    path, name = write(tmp_path, "npz-named")
    np.savez(stacked := tmp_path / "stack.npz", W=np.stack([np.eye(2, 5), weights()]))
    alone = measure_file(path, array=name)
    picked = measure_file(stacked, index=1)
    assert (picked["file"], picked["array"], picked["index"], picked["label"]) == (str(stacked), None, 1, f"{stacked} #1")
    assert picked["features_per_dimension"] == pytest.approx(alone["features_per_dimension"])
    np.save(zero := tmp_path / "zero.npy", np.zeros((2, 5)))
    assert measure_file(zero)["dimensions_per_feature"] is None  # infinite, as JSON can hold it
