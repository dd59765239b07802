"""How far the whole sweep spec travels: follow `spec` from orchestrator.sweep.run through every call
that passes it on (statically, by walking the AST), and count the functions that take a whole SweepSpec.

    python scripts/spec_flow.py [--json] [--trace]

- stops: the functions the spec reaches, each counted once, in depth-first call order;
- returns: steps into a file the reader had already left, walking the calls depth first (into each
  callee and back to its caller), e.g. sweep.py -> plan.py -> cluster.py -> plan.py is one;
- whole_spec_functions: product functions with a parameter named `spec` or annotated SweepSpec.
A part that receives its slice of the spec (its settings, not the spec) ends the trace there, so fewer
returns mean the spec is cut into slices near the top and each module reads only its own.
Only calls the AST names are followed (`f(spec)`, `module.f(spec)`, `Class(spec)`, `self.f(self.spec)`).
"""

from __future__ import annotations

import argparse
import ast
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from import_graph import PRODUCT, module_files  # noqa: E402


class Index:
    """Functions, classes and imports of every product module."""

    def __init__(self):
        self.files = module_files(ROOT, PRODUCT)
        self.trees = {m: ast.parse(p.read_text()) for m, p in self.files.items()}

    def imports(self, module: str, scope: ast.AST) -> dict[str, str]:
        """Local name -> dotted target (module, or module.attr), from the module's and the scope's imports."""
        out = {}
        for tree in (self.trees[module], scope):
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom) and node.module:
                    out |= {a.asname or a.name: f"{node.module}.{a.name}" for a in node.names}
                elif isinstance(node, ast.Import):
                    out |= {(a.asname or a.name).split(".")[0]: a.name if a.asname else a.name.split(".")[0]
                            for a in node.names}
        return out

    def lookup(self, dotted: str):
        """(module, class or None, FunctionDef or ClassDef) for a dotted name, or None."""
        module, _, name = dotted.rpartition(".")
        if module in self.files:
            return self.top(module, name)
        if dotted in self.files:
            return None
        return None

    def top(self, module: str, name: str):
        for node in self.trees[module].body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
                return module, None, node
        return None


def method(cls: ast.ClassDef, name: str):
    return next((n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name == name), None)


def params(fn: ast.FunctionDef, bound: bool) -> list[str]:
    names = [a.arg for a in fn.args.posonlyargs + fn.args.args]
    return names[1:] if bound else names


class Trace:
    def __init__(self, index: Index):
        self.index, self.stops, self.seen = index, [], set()
        self.walk: list[str] = []   # the file the reader is in, step by step, returns to callers included

    def visit(self, module: str, cls: ast.ClassDef | None, fn: ast.FunctionDef, names: set[str]) -> None:
        key = (module, cls.name if cls else None, fn.name)
        if key in self.seen:
            return
        self.seen.add(key)
        path = str(self.index.files[module].relative_to(ROOT))
        self.stops.append((path, ".".join(x for x in key[1:] if x)))
        self.walk.append(path)
        names = names | aliases(fn, names)
        imports = self.index.imports(module, fn)
        for call in (n for n in ast.walk(fn) if isinstance(n, ast.Call)):
            passed = [i for i, a in enumerate(call.args) if self.carries(a, names)]
            keywords = [k.arg for k in call.keywords if k.arg and self.carries(k.value, names)]
            if passed or keywords:
                self.follow(module, cls, call.func, imports, passed, keywords)
                self.walk.append(path)   # back in this function

    @staticmethod
    def carries(node: ast.AST, names: set[str]) -> bool:
        return carries(node, names)

    def follow(self, module, cls, func, imports, passed, keywords) -> None:
        target = self.resolve(module, cls, func, imports)
        if target is None:
            return
        mod, owner, node = target
        if isinstance(node, ast.ClassDef):
            init = method(node, "__init__")
            if init is None:   # a dataclass or pydantic model holding it: followed to its readers
                self.stops.append((str(self.index.files[mod].relative_to(ROOT)), node.name))
                self.walk.append(self.stops[-1][0])
                self.follow_holder(node.name, set(keywords))
                return
            owner, node = node, init
        names = params(node, bound=owner is not None)
        received = {names[i] for i in passed if i < len(names)} | set(keywords)
        self.visit(mod, owner, node, received)
        if node.name == "__init__":
            self.follow_attributes(mod, owner, node, received)

    def follow_attributes(self, module, cls, init, received) -> None:
        """A class that keeps the spec (`self.spec = spec`): its methods reading it are stops too."""
        kept = {f"self.{target.attr}" for target, value in assignments(init)
                if isinstance(target, ast.Attribute) and carries(value, received)}
        for fn in (n for n in cls.body if isinstance(n, ast.FunctionDef) and n.name != "__init__"):
            if any(self.carries(n, kept) for n in ast.walk(fn)):
                self.visit(module, cls, fn, kept)

    def follow_holder(self, holder: str, fields: set[str]) -> None:
        """Functions taking a `holder` (a parameter annotated with its class) that read the spec from it."""
        for module, tree in self.index.trees.items():
            for fn in (n for n in tree.body if isinstance(n, ast.FunctionDef)):
                for a in fn.args.args:
                    if a.annotation is not None and ast.unparse(a.annotation) == holder:
                        self.visit(module, None, fn, {f"{a.arg}.{f}" for f in fields})

    def resolve(self, module, cls, func, imports):
        if isinstance(func, ast.Name):
            if func.id in imports:
                return self.index.lookup(imports[func.id])
            return self.index.top(module, func.id)
        if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
            base = func.value.id
            if base == "self" and cls is not None:
                fn = method(cls, func.attr)
                return (module, cls, fn) if fn else None
            if base in imports and imports[base] in self.index.files:
                return self.index.lookup(f"{imports[base]}.{func.attr}")
        return None


def carries(node: ast.AST, names: set[str]) -> bool:
    """Whether the expression is the spec: a tracked name, or `x.attr` where x.attr is tracked."""
    if isinstance(node, ast.Name):
        return node.id in names
    return isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and \
        f"{node.value.id}.{node.attr}" in names


def assignments(fn: ast.AST):
    """(target, value) of every assignment in the function, tuple assignments taken apart."""
    for n in ast.walk(fn):
        if isinstance(n, ast.Assign):
            for target in n.targets:
                if isinstance(target, ast.Tuple) and isinstance(n.value, ast.Tuple):
                    yield from zip(target.elts, n.value.elts)
                else:
                    yield target, n.value


def aliases(fn: ast.AST, names: set[str]) -> set[str]:
    """Local names the spec is assigned to (`spec = context.spec`)."""
    return {t.id for t, v in assignments(fn) if isinstance(t, ast.Name) and carries(v, names)}


def returns(walk: list[str]) -> int:
    """Steps of the walk into a file it had been in before and left."""
    seen, previous, count = set(), None, 0
    for path in walk:
        if path != previous and path in seen:
            count += 1
        seen.add(path)
        previous = path
    return count


def whole_spec_functions(index: Index) -> dict[str, list[str]]:
    out = {}
    for module, tree in index.trees.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
                if any(a.arg == "spec" or (a.annotation is not None and "SweepSpec" in ast.unparse(a.annotation))
                       for a in args):
                    out.setdefault(str(index.files[module].relative_to(ROOT)), []).append(node.name)
    return out


def measure() -> dict:
    index = Index()
    trace = Trace(index)
    module, _, run = index.top("orchestrator.sweep", "run")
    trace.visit(module, None, run, {"spec"})
    whole = whole_spec_functions(index)
    return {"stops": len(trace.stops), "files": len({p for p, _ in trace.stops}), "returns": returns(trace.walk),
            "whole_spec_functions": sum(map(len, whole.values())), "whole_spec_files": len(whole),
            "trace": [f"{p}:{f}" for p, f in trace.stops], "whole_spec": whole}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--json", action="store_true")
    p.add_argument("--trace", action="store_true", help="also list the stops and the whole-spec functions")
    args = p.parse_args(argv)
    result = measure()
    if not args.trace:
        result = {k: v for k, v in result.items() if k not in ("trace", "whole_spec")}
    print(json.dumps(result, indent=1) if args.json else "\n".join(f"{k}: {v}" for k, v in result.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
