"""Read weight matrices from files without executing anything in them, and measure them.

Three formats, all read as data only:

* ``.npy``: one array, read with ``numpy.load(allow_pickle=False)``; a file holding Python
  objects (which only a pickle can restore) is refused, never unpickled.
* ``.npz``: several named arrays in a zip; ``array=`` picks one (optional when there is one).
* ``.safetensors``: named tensors behind a JSON header, read with
  ``safetensors.numpy.load_file`` (the format cannot hold code).

Every refusal is a :class:`~toylab.errors.ConfigError` on one line that names the file (and
the array), e.g. ``weights.npz: holds 2 arrays (W_in, W_out); choose one with --array NAME``.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "W.npy"
    >>> np.save(path, np.eye(2, 3))
    >>> load_weight_matrix(path).shape
    (2, 3)
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float
from rich.table import Table

from toylab.errors import ConfigError
from toylab.memory import describe_bytes, require_memory
from toylab.metrics.summary import measure
from toylab.metrics.superposition import checked_weight_matrix

__all__ = ["SUFFIXES", "load_array", "load_weight_matrix", "pick_matrix", "measure_file", "measure_tables"]

SUFFIXES = (".npy", ".npz", ".safetensors")

# The first bytes of each format: checked before a reader sees the file, so that a file of
# another kind (a pickle renamed to .npy, a text file) is named for what it is.
_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members; an empty zip
_PICKLE_MAGIC = b"\x80"  # pickle protocols 2 and later (torch.save, pickle.dump)
_NEVER_UNPICKLE = ("toylab never unpickles (it would run code from the file); save a numeric array, "
                   "e.g. np.save(path, np.asarray(W, dtype=np.float32))")


def load_array(path: str | Path, *, array: str | None = None) -> np.ndarray:
    """Read one numeric array from a ``.npy``, ``.npz`` or ``.safetensors`` file.

    Args:
      path: the file; its suffix says the format.
      array: the array's name inside an ``.npz`` or ``.safetensors`` file; may be left out
        when the file holds exactly one array. Not allowed for ``.npy`` (one unnamed array).

    Returns:
      The array as stored (any shape, a real numeric dtype).

    Raises:
      ConfigError: a missing file or one that is not a file, an unknown suffix, a file that
        is not of its suffix's format, a pickle-bearing (object) array, an unknown ``array``
        name, several arrays and no name, or a non-numeric array.
    """
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: no such file")
    if not path.is_file():
        raise ConfigError(f"{path}: not a file; expected a {', '.join(SUFFIXES)} file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ConfigError(f"{path}: unknown file type {path.suffix or '(no suffix)'!r}; expected {', '.join(SUFFIXES)}")
    with path.open("rb") as file:
        head = file.read(8)
    if suffix == ".npy":
        if array is not None:
            raise ConfigError(f"{path}: --array {array!r} given, but a .npy file holds one unnamed array")
        values = _read_npy(path, head)
        label = str(path)
    else:
        arrays = _read_npz(path, head) if suffix == ".npz" else _read_safetensors(path)
        name = _choose(path, sorted(arrays), array)
        values, label = arrays[name](), f"{path}[{name}]"
    if values.dtype.kind in "biuf":  # bool, signed, unsigned, float; not complex, strings
        return values
    if jnp.issubdtype(values.dtype, jnp.floating):  # bfloat16 and float8 (ml_dtypes), as saved from PyTorch
        return values.astype(np.float32)
    raise ConfigError(f"{label}: holds dtype {values.dtype}, expected real numbers")


def load_weight_matrix(
    path: str | Path, *, array: str | None = None, feature_axis: int = 1
) -> np.ndarray:
    """:func:`load_array`, then the checks of :func:`~toylab.metrics.checked_weight_matrix`.

    Args:
      path: a ``.npy``, ``.npz`` or ``.safetensors`` file.
      array: the array's name in an ``.npz``/``.safetensors`` file (see :func:`load_array`).
      feature_axis: 1 when the stored matrix has features as columns, 0 as rows.

    Returns:
      A float numpy array with features on the last axis, in the file's precision (float64
      stays float64: JAX with x64 off would make ``1e200`` infinite), ready for
      :func:`toylab.metrics.measure` and, within float32's range, every other metric.

    Raises:
      ConfigError: anything :func:`load_array` refuses, and arrays with fewer than 2 axes or
        a NaN or infinite entry; the message names the file and array.
    """
    values = load_array(path, array=array)
    label = f"{path}[{array}]" if array is not None else str(path)
    try:
        return checked_weight_matrix(values, feature_axis=feature_axis)
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None


def pick_matrix(
    W: Float[Array, "... d_hidden n_features"], index: int | None = None, *, label: str = "array"
) -> Float[Array, "d_hidden n_features"]:
    """One matrix out of ``W``: ``W`` itself when it is one, else the stack's ``index``-th.

    A stack's leading axes are flattened in row-major order, so a run's ``weights.npz``
    (one matrix per instance) is indexed by instance; negative indices count from the end.

    Args:
      W: a matrix, or a stack of them (e.g. from :func:`load_weight_matrix`).
      index: which matrix of a stack; must be ``None`` for a single matrix.
      label: names the array in error messages (e.g. the file and array name).

    Raises:
      ConfigError: an index for a single matrix or outside the stack, or a stack and no index.

    Example:
      >>> import numpy as np
      >>> pick_matrix(np.arange(12.0).reshape(3, 2, 2), -1).tolist()
      [[8.0, 9.0], [10.0, 11.0]]
    """
    shape = tuple(W.shape)
    count = math.prod(shape[:-2])
    if index is None:
        if len(shape) > 2:
            raise ConfigError(f"{label} holds a stack of {count} matrices of shape {shape[-2:]} "
                              f"(array shape {shape}): pick one with --index I")
        return W
    if len(shape) < 3 or not -count <= index < count:
        held = f"{count} matrices" if len(shape) > 2 else "a single matrix"
        raise ConfigError(f"--index {index}: {label} holds {held} of shape {shape[-2:]} (array shape {shape})")
    return W.reshape(-1, *shape[-2:])[index]


def measure_file(
    path: str | Path, *, array: str | None = None, feature_axis: int = 1, index: int | None = None
) -> dict[str, Any]:
    """:func:`toylab.metrics.measure` of one matrix stored in a file (what ``toylab measure`` prints).

    Args:
      path, array, feature_axis: as for :func:`load_weight_matrix`.
      index: which matrix of a stored stack (see :func:`pick_matrix`).

    Returns:
      ``file``, ``array``, ``feature_axis``, ``index``, ``label`` (``file[array] #index``, for
      titles) and every key of :func:`toylab.metrics.measure`'s result.

    Raises:
      ConfigError: the file refused (:func:`load_weight_matrix`), a bad ``index``, or a matrix
        :func:`toylab.metrics.measure` refuses; the message names the file.
    """
    W = load_weight_matrix(path, array=array, feature_axis=feature_axis)
    label = f"{path}[{array}]" if array else str(path)
    W = pick_matrix(W, index, label=label)
    if index is not None:
        label += f" #{index}"
    try:
        measured = measure(W)
    except ConfigError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    return {"file": str(path), "array": array, "feature_axis": feature_axis, "index": index,
            "label": label, **measured}


# ---------------------------------------------------------------------------------------------
# One reader per format. .npz and .safetensors readers return {name: thunk} so that only the
# chosen array is decompressed and checked.


def measure_tables(result: dict[str, Any]) -> list[Table]:
    """What ``toylab measure`` prints for a :func:`measure_file` result: each measure beside its
    scale-invariant counterpart and how both move under ``W → cW``, then one row per feature."""
    power = {0: "unchanged", 1: "× c", 2: "× c²", -2: "× c⁻²"}
    scaling = result["scaling"]
    beyond = result.get("out_of_float64_range", {})

    def number(name: str, value: float | None = None, *, scalar: bool = True) -> str:
        value = result[name] if scalar else value
        if value is None:
            return "beyond float64" if name in beyond else "∞"
        return f"{value:.4g}"

    # A value float64 cannot hold is shown as such, and explained under the table.
    notes = "; ".join(f"{name}: {why}" for name, why in beyond.items())
    table = Table(title=f"{result['label']}: {result['n_features']} features in {result['d_hidden']} dimensions "
                        "(under W → cW)", caption=notes or None)
    measures = (("features_per_dimension", "features_per_dimension_invariant"),
                ("dimensions_per_feature", "dimensions_per_feature_invariant"),
                ("feature_scale", None), ("mean_feature_dimensionality", None), ("sum_feature_dimensionality", None))
    # The measures' names are what a reader looks up: never cut short, whatever the terminal's width.
    names = {"measure": max(len(name) for name, _ in measures),
             "scale-invariant counterpart": max(len(invariant or "") for _, invariant in measures)}
    for column in ("measure", "value", "W → cW", "scale-invariant counterpart", "value ", "W → cW "):
        table.add_column(column, justify="right" if "value" in column else "left", min_width=names.get(column),
                         no_wrap=column in names)
    for name, invariant in measures:
        table.add_row(name, number(name), power[scaling[name]], invariant or "",
                      number(invariant) if invariant else "", power[scaling[invariant]] if invariant else "")
    table.add_row("n_represented", f"{result['n_represented']} of {result['n_features']}", "unchanged", "", "", "")
    table.add_row("geometry", result["geometry_description"], "unchanged", "", "", "")
    features = Table(title="per feature (s = feature_scale)")
    for column in ("i", "‖W_i‖", "‖W_i‖/s", "D_i", "interference", "interference/s²", "represented"):
        features.add_column(column, justify="right")
    for i in range(result["n_features"]):
        features.add_row(
            str(i), *(number(name, result[name][i], scalar=False) for name in (
                "feature_norms", "feature_norms_relative", "feature_dimensionality", "interference",
                "interference_relative")),
            "yes" if result["represented"][i] else "no")
    return [table, features]


def _check_npy_header(file: BinaryIO, label: str, size: int) -> None:
    """Read a .npy header (at ``file``'s position) and refuse, before any data is read, an
    array that the ``size`` bytes after it cannot hold or that cannot fit in memory."""
    start = file.tell()
    try:
        version = np.lib.format.read_magic(file)
        # Version 3.0 differs from 2.0 only in the header's text encoding (utf-8, not latin-1).
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, _, dtype = read_header(file)
    except (ValueError, SyntaxError, EOFError, OSError) as exc:
        raise ConfigError(f"{label}: not a .npy array (unreadable header: {_one_line(exc)})") from None
    if dtype.hasobject:
        raise ConfigError(_pickle_refusal(label))
    claimed = math.prod(shape) * dtype.itemsize
    held = size - (file.tell() - start)
    if claimed > held:
        raise ConfigError(f"{label}: its header claims shape {shape} of {dtype} ({describe_bytes(claimed)}), "
                          f"but the file holds {describe_bytes(max(held, 0))} of data: truncated or damaged")
    require_memory(claimed, what=f"{label}: an array of shape {shape} of {dtype}",
                   fix="measure a smaller array, or one matrix of the stack saved on its own")


def _read_npy(path: Path, head: bytes) -> np.ndarray:
    if head.startswith(_PICKLE_MAGIC):
        raise ConfigError(f"{path}: is a Python pickle, not a .npy array; {_NEVER_UNPICKLE}")
    if not head.startswith(_NPY_MAGIC):
        raise ConfigError(f"{path}: not a .npy array file (it starts with {head[:6]!r}, not {_NPY_MAGIC!r})")
    with path.open("rb") as file:
        _check_npy_header(file, str(path), path.stat().st_size)
    try:
        return np.load(path, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise ConfigError(_pickle_refusal(str(path))) from None
        raise ConfigError(f"{path}: unreadable .npy file: {_one_line(exc)}") from None


def _read_npz(path: Path, head: bytes) -> dict[str, Any]:
    if not head.startswith(_ZIP_MAGIC):
        raise ConfigError(f"{path}: not a .npz archive (it starts with {head[:4]!r}, not a zip header)")
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.namelist()
    except (OSError, zipfile.BadZipFile) as exc:
        raise ConfigError(f"{path}: unreadable .npz archive: {_one_line(exc)}") from None
    # np.savez stores array NAME as member NAME.npy; other members are not arrays.
    names = [member.removesuffix(".npy") for member in members if member.endswith(".npy")]
    if members and not names:
        shown = ", ".join(members[:3]) + (", ..." if len(members) > 3 else "")
        raise ConfigError(f"{path}: a zip archive with no .npy arrays in it ({shown}); "
                          "a PyTorch checkpoint? save the weights with np.savez or safetensors")

    def reader(name: str):
        def read() -> np.ndarray:
            label = f"{path}[{name}]"
            try:
                with zipfile.ZipFile(path) as archive, archive.open(f"{name}.npy") as member:
                    _check_npy_header(member, label, archive.getinfo(f"{name}.npy").file_size)
            except (OSError, zipfile.BadZipFile, RuntimeError) as exc:  # RuntimeError: encrypted
                raise ConfigError(f"{label}: unreadable: {_one_line(exc)}") from None
            try:
                with np.load(path, allow_pickle=False) as archive:
                    values = archive[name]
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise ConfigError(_pickle_refusal(f"{path}[{name}]")) from None
                raise ConfigError(f"{path}[{name}]: not a .npy array: {_one_line(exc)}") from None
            except (OSError, zipfile.BadZipFile) as exc:
                raise ConfigError(f"{path}[{name}]: unreadable: {_one_line(exc)}") from None
            return values

        return read

    return {name: reader(name) for name in names}


def _read_safetensors(path: Path) -> dict[str, Any]:
    from safetensors.numpy import load_file  # imported here: only this format needs it

    try:
        tensors = load_file(path)
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own SafetensorError and others
        raise ConfigError(f"{path}: not a readable .safetensors file: {_one_line(exc)}") from None
    return {name: (lambda value=value: value) for name, value in tensors.items()}


def _choose(path: Path, names: list[str], array: str | None) -> str:
    listed = ", ".join(names)
    if array is not None:
        if array not in names:
            raise ConfigError(f"{path}: no array named {array!r}; it holds {listed or 'no arrays'}")
        return array
    if not names:
        raise ConfigError(f"{path}: holds no arrays")
    if len(names) > 1:
        raise ConfigError(f"{path}: holds {len(names)} arrays ({listed}); choose one with --array NAME")
    return names[0]


def _pickle_refusal(label: str) -> str:
    return f"{label}: holds Python objects (an object array), which only a pickle can store; {_NEVER_UNPICKLE}"


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__

