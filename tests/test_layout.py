"""The layout's rules, read from the source: no import circles among the project's modules,
no import of another module's underscore names, and each part imports only the parts
below it (the README's "Layout" lists the same rules)."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("space", "cse_nets", "search")
SCRIPTS = ("benchmarks", "scripts")

# Which project parts each part may import (its own modules always). The command-line
# modules at the top of ``search`` (run, train, report, export, predict, cli) may import
# anything: they are where the flow ends.
MAY_IMPORT: dict[str, frozenset[str]] = {
    "space": frozenset(),
    "cse_nets": frozenset({"space"}),
    "search.data": frozenset({"space"}),
    "search.study": frozenset({"space", "cse_nets"}),
    "search.training": frozenset({"space", "cse_nets", "search.data", "search.study"}),
    "search.trials": frozenset({"space", "cse_nets", "search.data", "search.study",
                                "search.training"}),
    "search.driver": frozenset({"space", "cse_nets", "search.data", "search.study",
                                "search.training", "search.trials"}),
    "search.reporting": frozenset({"space", "cse_nets", "search.study"}),
}


@dataclass(frozen=True)
class Import:
    importer: str  # dotted module name
    module: str  # the project module imported
    names: tuple[str, ...]  # names taken from it (empty for ``import x``)
    line: int


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(path): path for package in PACKAGES
            for path in sorted((ROOT / package).rglob("*.py"))}


def imports_of(path: Path, name: str, modules: dict[str, Path]) -> Iterator[Import]:
    """Every project import in ``path``, at any depth (a lazy import is still an edge)."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    yield Import(name, alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module not in modules:
                continue
            plain = []
            for alias in node.names:  # ``from pkg import submodule`` imports the submodule
                sub = f"{node.module}.{alias.name}"
                if sub in modules:
                    yield Import(name, sub, (), node.lineno)
                else:
                    plain.append(alias.name)
            if plain:
                yield Import(name, node.module, tuple(plain), node.lineno)


def import_graph() -> dict[str, list[Import]]:
    modules = project_modules()
    return {name: list(imports_of(path, name, modules)) for name, path in modules.items()}


def cycles(graph: dict[str, list[Import]]) -> list[list[str]]:
    """Strongly connected components with more than one module, or a self-import
    (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for edge in graph.get(node, ()):
            if edge.module not in index:
                visit(edge.module)
                low[node] = min(low[node], low[edge.module])
            elif edge.module in on_stack:
                low[node] = min(low[node], index[edge.module])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or any(e.module == node for e in graph.get(node, ())):
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def part_of(module: str) -> str | None:
    """The layout part a module belongs to; None for the command lines atop ``search``."""
    for part in sorted(MAY_IMPORT, key=len, reverse=True):
        if module == part or module.startswith(f"{part}."):
            return part
    return None


def underscore_imports(graph: dict[str, list[Import]]) -> list[str]:
    return [f"{edge.importer}:{edge.line} imports {edge.module}.{name}"
            for edges in graph.values() for edge in edges for name in edge.names
            if name.startswith("_") and edge.module != edge.importer]


def layer_violations(graph: dict[str, list[Import]]) -> list[str]:
    found = []
    for edges in graph.values():
        for edge in edges:
            mine, theirs = part_of(edge.importer), part_of(edge.module)
            if mine is None or theirs in (None, mine):
                if mine is not None and theirs is None:  # a part importing a command line
                    found.append(f"{edge.importer}:{edge.line} imports the command line "
                                 f"{edge.module}")
                continue
            if theirs not in MAY_IMPORT[mine]:
                found.append(f"{edge.importer}:{edge.line} ({mine}) imports {edge.module} "
                             f"({theirs})")
    return found


def test_the_project_has_no_import_circle() -> None:
    assert cycles(import_graph()) == []


def test_no_module_imports_another_modules_underscore_names() -> None:
    assert underscore_imports(import_graph()) == []


def test_scripts_import_no_underscore_names_of_the_project() -> None:
    modules = project_modules()
    found = [f"{path.relative_to(ROOT)}:{edge.line} imports {edge.module}.{name}"
             for folder in SCRIPTS for path in sorted((ROOT / folder).glob("*.py"))
             for edge in imports_of(path, path.stem, modules) for name in edge.names
             if name.startswith("_")]
    assert found == []


def test_each_part_imports_only_the_parts_below_it() -> None:
    assert layer_violations(import_graph()) == []


def test_every_module_belongs_to_a_part_or_is_a_command_line() -> None:
    loose = [name for name in project_modules()
             if part_of(name) is None and name.count(".") != 1 and name != "search"]
    assert loose == []


# The checks themselves, on a made-up graph: each must be able to fail.

def _graph(edges: dict[str, list[tuple[str, tuple[str, ...]]]]) -> dict[str, list[Import]]:
    return {a: [Import(a, b, names, 1) for b, names in targets] for a, targets in edges.items()}


def test_a_circle_of_three_is_found_and_a_chain_is_not() -> None:
    circle = _graph({"a": [("b", ())], "b": [("c", ())], "c": [("a", ())], "d": [("a", ())]})
    assert cycles(circle) == [["a", "b", "c"]]
    assert cycles(_graph({"a": [("b", ())], "b": [("c", ())], "c": []})) == []


def test_an_underscore_name_from_another_module_is_found() -> None:
    graph = _graph({"search.x": [("search.y", ("_private", "public"))]})
    assert underscore_imports(graph) == ["search.x:1 imports search.y._private"]


@pytest.mark.parametrize(("importer", "module", "allowed"), [
    ("search.study.results", "search.driver.progress", False),
    ("search.data.folder", "search.training.loop", False),
    ("search.trials.trainable", "search.driver.searcher", False),
    ("search.reporting.figures", "search.trials.memory", False),
    ("cse_nets.network", "search.data.names", False),
    ("space.arch", "cse_nets.blocks", False),
    ("search.study.results", "search.report", False),
    ("search.driver.tune", "search.trials.trainable", True),
    ("search.reporting.figures", "search.study.results", True),
    ("search.export", "search.driver.config", True),
])
def test_the_layer_rule(importer: str, module: str, allowed: bool) -> None:
    assert (layer_violations(_graph({importer: [(module, ())]})) == []) == allowed
