"""The project's module import graph, imports inside functions (and TYPE_CHECKING blocks) included.

    python scripts/import_graph.py        # prints every import circle and every product -> benchmarks import

A circle makes a module's meaning depend on import order and hides which module is the lower layer;
tests/test_architecture.py asserts there is none, and that no product module imports the benchmarks.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PRODUCT = ("cft", "models", "trainers", "evaluators", "orchestrator")
PACKAGES = (*PRODUCT, "benchmarks")


def module_files(root: Path = ROOT, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the given top-level packages."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def imported_names(tree: ast.AST, module: str, is_package: bool) -> set[str]:
    """Every module name an import statement anywhere in the tree names (`from a import b` names both
    a and a.b: b may be a submodule)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".") if is_package else module.split(".")[:-1]
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}
    return names


def import_graph(root: Path = ROOT, packages=PACKAGES) -> dict[str, set[str]]:
    """Module -> the project modules it imports (the nearest project module for `a.b.c` names)."""
    files = module_files(root, packages)
    graph = {}
    for module, path in files.items():
        tree = ast.parse(path.read_text(), str(path))
        targets = set()
        for name in imported_names(tree, module, path.name == "__init__.py"):
            while name and name not in files:
                name = name.rpartition(".")[0]
            if name and name != module:
                targets.add(name)
        graph[module] = targets
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def product_imports_of_benchmarks(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((m, t) for m, ts in graph.items() if m.split(".")[0] in PRODUCT
                  for t in ts if t.split(".")[0] == "benchmarks")


def main() -> int:
    graph = import_graph()
    found = circles(graph)
    for c in found:
        print("circle:", " <-> ".join(c))
    upward = product_imports_of_benchmarks(graph)
    for m, t in upward:
        print(f"product module {m} imports {t}")
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} imports, {len(found)} circle(s), "
          f"{len(upward)} product -> benchmarks import(s)")
    return 1 if found or upward else 0


if __name__ == "__main__":
    sys.exit(main())
