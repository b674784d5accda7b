"""The shape of the kit's imports, read with `ast` (nothing is imported): each module's imports
of the kit's own modules, every import counted, at the top or inside a function, since a
deferred import is still a dependency. Two rules keep the house as the README draws it:

- no import cycle between modules;
- a package imports only its own modules and those of the floors below: the shared layer
  (`kserve_kit`) nothing of the kit, the servers (`predictor`, `transformer`) the shared layer
  and not each other, the offline commands the servers' runtime, the demo builder the offline
  commands, the benchmark any of them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

# Package -> floor. A package may import a package of a lower floor, never of its own floor
# (two rooms side by side stay apart) nor above.
FLOORS: Mapping[str, int] = {
    "kserve_kit": 0,
    "predictor": 1,
    "transformer": 1,
    "offline": 2,
    "demo": 3,
    "bench": 4,
}


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def kit_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Module name -> file, for every .py file under the given packages."""
    found = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            found[module_name(root, path)] = path
    return found


def imports_of(name: str, path: Path, modules: Mapping[str, Path]) -> set[str]:
    """The kit modules that module `name` imports (a `from package import module` names the
    module; a `from module import name` the module)."""
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            targets = [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            # the longest prefix that is a module of the kit
            parts = target.split(".")
            for end in range(len(parts), 0, -1):
                candidate = ".".join(parts[:end])
                if candidate in modules:
                    if candidate != name:
                        found.add(candidate)
                    break
    return found


def import_graph(root: Path, packages: Iterable[str]) -> dict[str, set[str]]:
    modules = kit_modules(root, packages)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def cycles(graph: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted: every
    import cycle lies inside one."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


def upward_imports(graph: Mapping[str, set[str]], floors: Mapping[str, int] = FLOORS) -> list[str]:
    """'importer -> imported' for each import that reaches across or up a floor."""
    wrong = []
    for importer, imported in sorted(graph.items()):
        home = importer.split(".")[0]
        for target in sorted(imported):
            room = target.split(".")[0]
            if room != home and floors[room] >= floors[home]:
                wrong.append(f"{importer} -> {target}")
    return wrong
