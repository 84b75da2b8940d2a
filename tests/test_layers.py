"""The layers of toylab point one way: every import, at module or function level, goes down.

The declared order lives here, in :data:`LAYERS`, and only here: it is a rule about the
source, which this test is the one reader of, so keeping it beside its checker means that a
change to the architecture is one reviewed edit in one file, and the package carries no
module that nothing imports at runtime.
"""

from __future__ import annotations

import ast
import dataclasses
import textwrap
from collections.abc import Sequence
from pathlib import Path

import pytest

import toylab

# Bottom to top. A module may import from its own unit and from units in lower layers; units
# that share a layer may import each other, but not in a cycle. A unit is a subpackage
# (toylab/tasks/) or a top-level module (toylab/io.py); "toylab" is the package's __init__.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "io", "memory", "_xla"),  # one-line errors; atomic writes, JSON-safe values; memory checks; XLA flags set before JAX starts: stdlib only
    ("rng",),  # the counter-hash uniform generator tasks draw their data with
    ("theory",),  # closed forms (Saxe, phase boundaries): numbers in, numbers out
    ("metrics",),  # measurements on weights; metrics.phases names theory's phases
    ("arrays",),  # weight files read as data, checked with metrics' as_weight_matrix
    ("envs",),  # environments as pure JAX reset/step (vmapped inside tasks) and their Gymnasium classes
    ("tasks",),  # one file per task; a task may measure itself with metrics
    ("train",),  # the trainer: tasks in, a TrainResult out
    ("sae",),  # toylab.sae.fit: SAEs trained on a user's activations, measured on held-out rows
    ("store",),  # SQLite rows and weight files; knows nothing of tasks or training
    ("sweeps",),  # grids of train() calls into a store, and a store back into a TrainResult
    ("figures",),  # pure functions: results (metrics' and theory's) -> matplotlib Figure
    ("experiments",),  # one file per reproduced study, built from everything below
    ("report",),  # reproduce all: studies run, findings checked, one HTML page
    ("cli",),  # thin commands over the API
    ("toylab", "__main__"),  # the public API's re-exports; `python -m toylab`
)

# Units whose functions may import toylab modules (lazily, for start-up time): the CLI and the
# package root. Anywhere else an import inside a function is what hides a cycle, and it fails.
LAZY_ALLOWED = frozenset({"cli", "toylab", "__main__"})


@dataclasses.dataclass(frozen=True)
class Arrow:
    """One import of a package module by another: ``file:line: source -> target``."""

    file: str
    line: int
    source: str  # importing unit
    target: str  # imported unit
    module: str  # imported module, as written
    in_function: bool

    def __str__(self) -> str:
        where = " (inside a function)" if self.in_function else ""
        return f"{self.file}:{self.line}: {self.source} -> {self.target} (import {self.module}){where}"


def package_arrows(root: Path, package: str) -> list[Arrow]:
    """Every import from one module of ``package`` (folder ``root``) to another, with its unit."""
    arrows = []
    for path in sorted(root.rglob("*.py")):
        relative = path.relative_to(root)
        source = _unit(relative.parts, package)
        dotted = [package, *relative.with_suffix("").parts]
        if dotted[-1] == "__init__":
            dotted.pop()
        here = dotted if path.name == "__init__.py" else dotted[:-1]  # the module's package
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, in_function in _imports(tree):
            for module in _imported_modules(node, here, root, package):
                arrows.append(Arrow(f"{root.name}/{relative}", node.lineno, source,
                                    _unit(module.split(".")[1:], package, dotted_name=True), module, in_function))
    return arrows


def violations(arrows: Sequence[Arrow], layers: Sequence[Sequence[str]],
               lazy_allowed: frozenset[str] = frozenset()) -> list[str]:
    """Why ``arrows`` break ``layers``: one line per bad arrow or cycle; empty when none do."""
    level = {unit: i for i, units in enumerate(layers) for unit in units}
    problems = []
    for unit in sorted({a.source for a in arrows} - level.keys()):
        problems.append(f"unit {unit!r} is in no layer: add it to LAYERS in tests/test_layers.py")
    same_layer: dict[str, set[str]] = {}
    for arrow in arrows:
        if arrow.source not in level or arrow.target not in level or arrow.source == arrow.target:
            continue
        if level[arrow.target] > level[arrow.source]:
            problems.append(f"{arrow}: points up, against LAYERS in tests/test_layers.py")
        elif arrow.in_function and arrow.source not in lazy_allowed:
            problems.append(f"{arrow}: a toylab import inside a function; move it to the top of "
                            "the file (if it dodged a cycle, fix the arrow that made the cycle)")
        if level[arrow.target] == level[arrow.source]:
            same_layer.setdefault(arrow.source, set()).add(arrow.target)
    problems += [f"cycle between subpackages: {' -> '.join(cycle)}" for cycle in _cycles(same_layer)]
    return problems


def _unit(parts: Sequence[str], package: str, dotted_name: bool = False) -> str:
    # toylab/__init__.py and `import toylab` are the package root; toylab/x.py and
    # toylab/x/... are unit x.
    parts = list(parts)
    if not dotted_name and parts:
        parts[-1] = parts[-1].removesuffix(".py")
    if not parts or parts[0] == "__init__":
        return package
    return parts[0]


def _imports(tree: ast.AST):
    """(import node, inside a function?) for every import anywhere in ``tree``."""
    def walk(node: ast.AST, in_function: bool):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, in_function
            inside = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda)
            yield from walk(child, inside)
    yield from walk(tree, False)


def _imported_modules(node: ast.Import | ast.ImportFrom, here: list[str], root: Path, package: str) -> list[str]:
    """The package modules ``node`` imports, dotted; ``from toylab import x`` counts x when
    x is a submodule, else the package root."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == package]
    if node.level:  # relative: from . import x, from ..store import y
        base = here[: len(here) - node.level + 1]
        module = ".".join([*base, node.module] if node.module else base)
    else:
        module = node.module or ""
    if module.split(".")[0] != package:
        return []
    found = []
    for alias in node.names:
        candidate = root.joinpath(*module.split(".")[1:], alias.name)
        is_module = candidate.is_dir() or candidate.with_suffix(".py").is_file()
        found.append(f"{module}.{alias.name}" if is_module else module)
    return list(dict.fromkeys(found))  # `from toylab.train import a, b`: one arrow


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each cycle of ``graph`` once, as the list of its units from the smallest name back to it."""
    cycles, seen = [], set()

    def visit(path: list[str]) -> None:
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt == path[0]:
                cycle = [*path, nxt]
                if frozenset(path) not in seen:
                    seen.add(frozenset(path))
                    cycles.append(cycle)
            elif nxt not in path and nxt > path[0]:
                visit([*path, nxt])

    for start in sorted(graph):
        visit([start])
    return cycles


# -- the package -------------------------------------------------------------------------------

ROOT = Path(toylab.__file__).parent


def test_every_import_in_toylab_points_down_the_declared_layers():
    arrows = package_arrows(ROOT, "toylab")
    assert len(arrows) > 50  # the walk found the package's imports (not an empty folder)
    assert any(a.in_function for a in arrows)  # and looked inside functions (the CLI's lazy imports)
    problems = violations(arrows, LAYERS, LAZY_ALLOWED)
    assert not problems, "\n".join(problems)


def test_every_unit_of_the_package_is_declared_once():
    declared = [unit for units in LAYERS for unit in units]
    assert len(declared) == len(set(declared))
    present = {_unit(p.relative_to(ROOT).parts, "toylab") for p in ROOT.rglob("*.py")}
    assert present == set(declared), f"in the package, not LAYERS: {present - set(declared)}; " \
                                     f"in LAYERS, not the package: {set(declared) - present}"


# -- the checker catches what it is for ------------------------------------------------------


def make_package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "pkg"
    for name, text in {"__init__.py": "", **files}.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


SMALL_LAYERS = (("io",), ("store",), ("sweeps", "figures"), ("cli",))


def test_a_planted_upward_import_is_reported_with_file_line_and_arrow(tmp_path):
    root = make_package(tmp_path, {
        "io.py": "import os\n",
        "store/__init__.py": "from pkg.io import x\n",
        "store/files.py": "import json\n\n\ndef load():\n    from pkg.sweeps import registry\n",
        "sweeps/__init__.py": "from pkg.store import files\n",
        "sweeps/registry.py": "from . import load\n",
        "sweeps/load.py": "from ..store import files\n",
        "cli.py": "def main():\n    from pkg import sweeps\n",
    })
    problems = violations(package_arrows(root, "pkg"), SMALL_LAYERS, frozenset({"cli"}))
    assert problems == ["pkg/store/files.py:5: store -> sweeps (import pkg.sweeps.registry) (inside a "
                        "function): points up, against LAYERS in tests/test_layers.py"]


def test_a_planted_cycle_inside_one_layer_and_a_function_import_are_reported(tmp_path):
    root = make_package(tmp_path, {
        "io.py": "",
        "store.py": "def f():\n    import pkg.io\n",
        "sweeps/__init__.py": "from pkg import figures\n",
        "figures.py": "from pkg.sweeps import run\n",
        "extra.py": "from pkg.io import x\n",  # a unit no layer names
    })
    problems = violations(package_arrows(root, "pkg"), SMALL_LAYERS)
    assert problems == [
        "unit 'extra' is in no layer: add it to LAYERS in tests/test_layers.py",
        "pkg/store.py:2: store -> io (import pkg.io) (inside a function): a toylab import inside a "
        "function; move it to the top of the file (if it dodged a cycle, fix the arrow that made the cycle)",
        "cycle between subpackages: figures -> sweeps -> figures",
    ]


@pytest.mark.parametrize("text, target", [
    ("from pkg import store\n", "store"),  # a submodule named in `from package import`
    ("from pkg import VERSION\n", "pkg"),  # a name of the package root
    ("import pkg.store.files as f\n", "store"),
    ("from .store import files\n", "store"),
])
def test_each_spelling_of_an_import_finds_its_unit(tmp_path, text, target):
    root = make_package(tmp_path, {"io.py": text, "store/__init__.py": "", "store/files.py": ""})
    [arrow] = [a for a in package_arrows(root, "pkg") if a.source == "io"]
    assert (arrow.target, arrow.line) == (target, 1)
