"""The architecture, checked: imports flow one way, no cycles, short functions, lazy imports only where they pay.

``docs/ARCHITECTURE.md`` describes the layers; :data:`LAYERS` is the same list in code. A module
may import only from its own layer or a lower one, and the import graph has no cycles. A
function-local import is allowed only for an optional heavy dependency (:data:`HEAVY`) or in a
module that declares its lazy imports in its docstring (the command line, whose ``--help`` must
not load JAX). Module and function lengths have a budget, with the exceptions named here.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import FILE_ORDER

PACKAGE = Path(__file__).resolve().parents[1] / "bayescale"

#: Layer of each module (dotted name below ``bayescale``; a package's prefix covers its modules).
#: Lower layers never import higher ones.
LAYERS: dict[str, int] = {
    "errors": 0,
    "_io": 0,
    "_stages": 0,
    "_words": 0,
    "priors": 1,
    "laws": 2,
    "_laws_nd": 2,
    "likelihoods": 2,
    "spec": 3,
    "_spec_tables": 3,
    "data": 4,
    "_runs_input": 1,
    "datasets": 4,
    "_arviz": 5,
    "model": 5,
    "_slots": 5,
    "_importance": 6,
    "_engine": 6,
    "misfit": 6,
    "_neighbours": 2,
    "_direction": 2,
    "_outlier": 2,
    "_misfit_words": 2,
    "_misfit_finding": 2,
    "_exported": 2,
    "discrepancy": 6,
    "_identified": 6,
    "_idata": 6,
    "_optimise": 6,
    "averaging": 8,
    "sensitivity": 6,
    "scaled_priors": 4,
    "modes": 6,
    "inference": 7,
    "pymc_backend": 8,
    "testing": 8,
    "frontier": 8,
    "decisions": 8,
    "checks": 9,
    "_check_patterns": 9,
    "_compare_model": 5,
    "_compare_fit": 9,
    "_compare_average": 9,
    "_compare_quantities": 9,
    "_compare_verdict": 9,
    "comparison": 9,
    "curves": 10,
    "_curve_fit": 10,
    "_curve_scoring": 10,
    "_curve_baselines": 10,
    "_curve_stacking": 10,
    "design": 10,
    "loop": 11,
    "_loop_config": 11,
    "active": 12,
    "plots": 12,
    "report": 13,
    "runner": 5,
    "cli": 20,
    "__main__": 21,
    "__init__": 30,
}

#: Optional heavy dependencies a function may import when it runs (the reason: importing
#: ``bayescale`` or a light command must not pay for them, or they may not be installed).
HEAVY = (
    "torch",
    "transformers",
    "tokenizers",
    "accelerate",
    "pymc",
    "pytensor",
    "nutpie",
    "ray",
    "submitit",
    "datasets",
)
#: bayescale's own gateway to torch: the pilot runner loads torch and transformers when it trains.
HEAVY_OWN = (".runner", "bayescale.runner")

#: Module-length budget, and the modules that genuinely need more (one family each).
MODULE_LINES = 650
LONG_MODULES: dict[str, str] = {}
#: Function-length budget (lines of code: the docstring does not count), and the exceptions.
FUNCTION_LINES = 80
LONG_FUNCTIONS: dict[str, str] = {}


def _modules() -> Iterator[tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        yield ".".join(parts), path


def _layer(module: str) -> int:
    for prefix in (module, module.split(".")[0]):
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise AssertionError(
        f"module bayescale.{module} has no layer in tests/test_structure.py LAYERS (and docs/ARCHITECTURE.md)"
    )


def _resolve(module: str, node: ast.ImportFrom | ast.Import, is_package: bool) -> list[str]:
    """The bayescale modules an import statement names (dotted, below ``bayescale``)."""
    if isinstance(node, ast.Import):
        return [a.name.removeprefix("bayescale.") for a in node.names if a.name.startswith("bayescale.")]
    if node.level == 0:
        if node.module == "bayescale":
            return [a.name for a in node.names]
        return [node.module.removeprefix("bayescale.")] if node.module and node.module.startswith("bayescale.") else []
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
    if node.module:
        return [".".join([*base, node.module])]
    return [".".join([*base, a.name]) for a in node.names]


def _known(name: str, modules: set[str]) -> str | None:
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _graph() -> dict[str, set[str]]:
    paths = dict(_modules())
    names = set(paths) - {"__init__"}
    graph: dict[str, set[str]] = {}
    for module, path in paths.items():
        tree = ast.parse(path.read_text())
        is_package = path.name == "__init__.py"
        targets = set()
        # Module-level imports, `if TYPE_CHECKING:` ones included (an annotation that needs a higher
        # module is a layering problem too); function-local ones are checked separately.
        top = [n for node in tree.body for n in (node.body if isinstance(node, ast.If) else [node])]
        for node in top:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for name in _resolve(module, node, is_package):
                    known = _known(name, names)
                    if known and known != module:
                        targets.add(known)
        graph[module] = targets
    return graph


def test_every_module_has_a_layer() -> None:
    for module, _ in _modules():
        _layer(module)


def test_imports_flow_down_the_layers() -> None:
    wrong = [
        f"bayescale.{m} (layer {_layer(m)}) imports bayescale.{t} (layer {_layer(t)})"
        for m, targets in _graph().items()
        for t in sorted(targets)
        if _layer(t) > _layer(m)
    ]
    assert not wrong, "imports must flow one way (docs/ARCHITECTURE.md):\n" + "\n".join(wrong)


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    cycles: list[str] = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join([*stack[stack.index(t) :], t]))
            elif t not in state:
                visit(t, [*stack, t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def _declares_lazy_imports(tree: ast.Module) -> bool:
    doc = ast.get_docstring(tree) or ""
    return "imports the heavy stack lazily" in doc


def test_function_local_imports_only_for_heavy_dependencies() -> None:
    bad = []
    for module, path in _modules():
        tree = ast.parse(path.read_text())
        if _declares_lazy_imports(tree):
            continue
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [("." * node.level) + (node.module or "")]
                else:
                    continue
                if not all(n.split(".")[0] in HEAVY or n in HEAVY_OWN for n in names):
                    bad.append(
                        f"bayescale/{path.relative_to(PACKAGE)}:{node.lineno} in {fn.name}(): import {', '.join(names)}"
                    )
    assert not bad, "function-local imports of light modules (move them to the top):\n" + "\n".join(bad)


@pytest.mark.parametrize("limit", [MODULE_LINES])
def test_module_lengths(limit: int) -> None:
    long = [
        f"bayescale.{m}: {n} lines"
        for m, path in _modules()
        if (n := len(path.read_text().splitlines())) > limit and m not in LONG_MODULES
    ]
    assert not long, f"modules over {limit} lines (split them, or name the reason in LONG_MODULES):\n" + "\n".join(long)


def test_function_lengths() -> None:
    long = []
    for module, path in _modules():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                first = node.body[0]
                if (
                    isinstance(first, ast.Expr)
                    and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)
                ):
                    n -= first.end_lineno - first.lineno + 1
                if n > FUNCTION_LINES and f"{module}.{node.name}" not in LONG_FUNCTIONS:
                    long.append(f"bayescale.{module}.{node.name}: {n} lines")
    assert not long, f"functions over {FUNCTION_LINES} lines:\n" + "\n".join(long)


def test_the_file_order_names_test_files_that_exist() -> None:
    # A renamed file would silently fall to the end of the workers' order (tests/conftest.py).
    tests = Path(__file__).resolve().parent
    assert len(set(FILE_ORDER)) == len(FILE_ORDER)
    assert [name for name in FILE_ORDER if not (tests / name).is_file()] == []
