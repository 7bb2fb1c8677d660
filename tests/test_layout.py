"""The package's seams: one home for the errors, no module reading another's private names, light imports."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import siq_schemas
from siq_schemas import exceptions

PACKAGE = Path(siq_schemas.__file__).parent


def modules() -> dict[str, ast.Module]:
    """Every module of the package, by dotted name, parsed."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return found


def imported(name: str, node: ast.ImportFrom) -> str:
    """The module an import in module ``name`` names, its leading dots resolved."""
    if not node.level:
        return node.module or ""
    is_package = (PACKAGE.parent / Path(*name.split(".")) / "__init__.py").exists()
    base = (name if is_package else name.rpartition(".")[0]).split(".")
    base = base[: len(base) - node.level + 1]
    return ".".join([*base, node.module] if node.module else base)


def test_every_error_lives_in_exceptions_and_is_exported():
    """Every error class of the package is defined in siq_schemas.exceptions and exported by the package."""
    errors = [
        node.name
        for tree in modules().values()
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(isinstance(base, ast.Name) and base.id.endswith(("Error", "SiqSchemasError")) for base in node.bases)
    ]
    defined = {name for name, value in vars(exceptions).items() if inspect.isclass(value)}
    assert set(errors) <= defined, f"errors defined outside exceptions.py: {set(errors) - defined}"
    raised = {
        name
        for name, value in vars(exceptions).items()
        if inspect.isclass(value) and issubclass(value, siq_schemas.SiqSchemasError | siq_schemas.Terminated)
    }
    assert raised <= set(siq_schemas.__all__), f"errors not exported: {raised - set(siq_schemas.__all__)}"
    assert {"OutputError", "StorageError", "ClusterError", "AccountingError", "RunFailed"} <= raised


def test_reject_reasons_are_the_error_codes():
    """The reject reasons are the codes of the errors a record is rejected for, in the contract's order."""
    assert (
        siq_schemas.Unreadable.code,
        siq_schemas.SignatureMissing.code,
        siq_schemas.SignatureInvalid.code,
        siq_schemas.UnknownEvent.code,
        siq_schemas.PayloadInvalid.code,
    ) == exceptions.REASONS
    assert exceptions.REASONS == (
        "unreadable",
        "signature-missing",
        "signature-invalid",
        "unknown-event",
        "schema-invalid",
    )


def test_no_module_reads_another_modules_private_names():
    """No module imports a private name from a sibling, or reads one through a sibling module it imported."""
    trees = modules()
    names = set(trees)
    faults = []
    for name, tree in trees.items():
        siblings: set[str] = set()  # names bound to package modules in this module
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("siq_schemas")):
                target = imported(name, node)
                for alias in node.names:
                    if f"{target}.{alias.name}" in names:  # a module: private modules are the package's own
                        siblings.add(alias.asname or alias.name)
                    elif alias.name.startswith("_") and not alias.name.startswith("__") and target != name:
                        faults.append(f"{name}: from {target} import {alias.name}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and isinstance(node.value, ast.Name)
                and node.value.id in siblings
            ):
                faults.append(f"{name}: {node.value.id}.{node.attr}")
    assert not faults, faults


def test_metrics_import_neither_duckdb_nor_the_converter():
    """`import siq_schemas.metrics` loads neither DuckDB nor the converter, its workers or the readers."""
    code = (
        "import sys, siq_schemas.metrics\n"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith(('duckdb', 'siq_schemas', 'pyarrow')))))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "siq_schemas.metrics" in loaded
    assert not [module for module in loaded if module.startswith("duckdb")]
    assert not {"siq_schemas.converter", "siq_schemas.read", "siq_schemas.converter._workers"} & set(loaded)


def test_delivery_facts_are_the_deliveries_columns():
    """The typed delivery facts a stage hands to flatten are the staged `_deliveries` columns after `event_key`."""
    from siq_schemas.converter.flatten import DELIVERIES, Delivery

    assert ("event_key", *Delivery._fields) == tuple(column.name for column in DELIVERIES.columns)


def import_graph() -> dict[str, set[str]]:
    """Which package modules each module imports: at the top, inside functions, or for type checking alike."""
    trees = modules()
    graph: dict[str, set[str]] = {name: set() for name in trees}
    for name, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("siq_schemas")):
                target = imported(name, node)
                for alias in node.names:  # `from . import x` names a module; `from .x import y` the module x
                    graph[name].add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in trees else target)
            elif isinstance(node, ast.Import):
                graph[name] |= {alias.name for alias in node.names if alias.name in trees}
        graph[name] -= {name, "siq_schemas"}  # the package's lazy names are no import of a module
    return graph


def cycle(graph: dict[str, set[str]]) -> list[str]:
    """One cycle of ``graph`` (empty when it has none), found by a depth-first walk."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str]:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := walk(target)):
                return found
        state[node] = 2
        path.pop()
        return []

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return []


def test_the_package_has_no_import_cycle():
    """No module of the package imports itself through others, lazy and type-only imports included."""
    graph = import_graph()
    assert "siq_schemas.converter.stage" in graph["siq_schemas.converter.engines"], "the walk sees the imports"
    assert "siq_schemas.sample._portal" in graph["siq_schemas.sample._chats"], "the walk sees the subpackages"
    assert cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"], "the walk finds a cycle"
    assert cycle(graph) == []


#: Lines a module holds at most, so that each reads as one job.
MAX_LINES = 400
#: Modules allowed to be longer, by path in the package, and why.
LONGER = {
    "tables.py": "declarative data: every table's columns, one line each, read as a list rather than as code",
}


def test_package_modules_stay_small():
    """Every module of the package holds at most 400 lines, but for the declarative and in-progress ones named here."""
    sizes = {
        path.relative_to(PACKAGE).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
        for path in PACKAGE.rglob("*.py")
    }
    assert set(LONGER) <= set(sizes), "every module allowed to be longer exists"
    assert {"converter/run.py", "sample/_portal.py", "serve/receiver.py"} <= set(sizes), "every subpackage is counted"
    over = {name: lines for name, lines in sizes.items() if lines > MAX_LINES and name not in LONGER}
    assert not over, over
