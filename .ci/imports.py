"""Check keyed_storage's import graph: no cycle, no private name taken from another module.

Run by tox's `lint` environment (`python .ci/imports.py`); exits 1 naming every problem.
It reads the source with `ast` and imports nothing, so it needs neither Django nor the package
installed.

What counts as an edge A -> B (A's source names B):
- every `import` and `from ... import` of a module of the package, wherever it stands: at
  module level, under `if TYPE_CHECKING:`, in a class body, and inside functions. A lazy import
  in a function still means A needs B; it only postpones the failure a cycle causes to the first
  call, so moving an import into a function does not break a cycle here (the issue's
  "direct <-> multipart" and "backends <-> s3/local" were such cycles). Each edge is printed with
  where it stands ("lazy", "TYPE_CHECKING") so the reader sees which imports made the cycle.
- `from P import x` is an edge to P.x when P.x is a module, otherwise to P.
- importing P.Q does not add an edge to the package P itself, although Python runs P/__init__.py
  first: every module would otherwise sit in a cycle with the package's __init__.

Private names: `from M import _x` and `M._x` (M a module of the package bound by an import) are
refused when M is another module of the package; a private module `P._m` may be imported only
from inside P. Dunder names (`__version__`) are not private.
"""

from __future__ import annotations

import argparse
import ast
import itertools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_CYCLES_SHOWN = 200


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    path: str
    line: int
    kind: str  # "", "lazy", "TYPE_CHECKING"

    def where(self) -> str:
        return f"{self.path}:{self.line}" + (f", {self.kind}" if self.kind else "")


@dataclass(frozen=True)
class PrivateUse:
    module: str
    name: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: private name {self.name} taken from {self.module}"


def module_names(package_dir: Path) -> dict[str, Path]:
    """Every module of the package under package_dir, by dotted name."""
    found = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


class ImportVisitor(ast.NodeVisitor):
    """Collects one module's imports of the package, and its private names taken from others."""

    def __init__(self, module: str, is_package: bool, modules: dict[str, Path], path: str) -> None:
        self.module = module
        self.package = module if is_package else module.rpartition(".")[0]
        self.modules = modules
        self.root = next(iter(sorted(modules, key=len)))
        self.path = path
        self.edges: list[Edge] = []
        self.private: list[PrivateUse] = []
        self.bound: dict[str, str] = {}  # local name -> module of the package it is bound to
        self.function_depth = 0
        self.type_checking_depth = 0

    def kind(self) -> str:
        if self.function_depth:
            return "lazy"
        return "TYPE_CHECKING" if self.type_checking_depth else ""

    def add(self, target: str, node: ast.stmt) -> None:
        if target in self.modules and target != self.module:
            self.edges.append(Edge(self.module, target, self.path, node.lineno, self.kind()))
            self.check_private_module(target, node)

    def check_private_module(self, target: str, node: ast.stmt) -> None:
        parent, _, last = target.rpartition(".")
        if is_private(last) and not (self.module == parent or self.module.startswith(parent + ".")):
            self.private.append(PrivateUse(parent, last, self.path, node.lineno))

    def visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        self.function_depth += 1
        self.generic_visit(node)
        self.function_depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = visit_function

    def visit_If(self, node: ast.If) -> None:
        test = node.test
        name = test.id if isinstance(test, ast.Name) else test.attr if isinstance(test, ast.Attribute) else ""
        if name != "TYPE_CHECKING":
            self.generic_visit(node)
            return
        self.type_checking_depth += 1
        for child in node.body:
            self.visit(child)
        self.type_checking_depth -= 1
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if alias.name in self.modules:
                self.add(alias.name, node)
                if alias.asname:
                    self.bound[alias.asname] = alias.name

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        source = self.resolve(node)
        if source not in self.modules:
            return
        for alias in node.names:
            submodule = f"{source}.{alias.name}"
            if submodule in self.modules:
                self.add(submodule, node)
                self.bound[alias.asname or alias.name] = submodule
                continue
            self.add(source, node)
            if is_private(alias.name) and source != self.module:
                self.private.append(PrivateUse(source, alias.name, self.path, node.lineno))

    def visit_Attribute(self, node: ast.Attribute) -> None:
        value = node.value
        if isinstance(value, ast.Name) and value.id in self.bound and is_private(node.attr):
            module = self.bound[value.id]
            if f"{module}.{node.attr}" not in self.modules and module != self.module:
                self.private.append(PrivateUse(module, node.attr, self.path, node.lineno))
        self.generic_visit(node)

    def resolve(self, node: ast.ImportFrom) -> str:
        if not node.level:
            return node.module or ""
        base = self.package.split(".")
        if node.level > 1:
            base = base[: -(node.level - 1)]
        return ".".join([*base, *([node.module] if node.module else [])])


def read_graph(package_dir: Path) -> tuple[list[Edge], list[PrivateUse]]:
    modules = module_names(package_dir)
    edges: list[Edge] = []
    private: list[PrivateUse] = []
    for module, path in modules.items():
        shown = str(path.relative_to(package_dir.parent))
        visitor = ImportVisitor(module, path.name == "__init__.py", modules, shown)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8"), filename=shown))
        edges += visitor.edges
        private += visitor.private
    return edges, private


def cycles(edges: list[Edge]) -> Iterator[list[str]]:
    """Every elementary cycle, each once: it starts at its smallest module and returns to it."""
    after: dict[str, set[str]] = {}
    for edge in edges:
        after.setdefault(edge.source, set()).add(edge.target)
    for start in sorted(after):
        stack = [iter(sorted(after[start]))]
        on_path = [start]
        while stack:
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                on_path.pop()
            elif step == start:
                yield [*on_path, start]
            elif step > start and step not in on_path:
                stack.append(iter(sorted(after.get(step, ()))))
                on_path.append(step)


def describe(cycle: list[str], edges: list[Edge]) -> str:
    lines = [" -> ".join(cycle)]
    for source, target in itertools.pairwise(cycle):
        where = "; ".join(
            dict.fromkeys(e.where() for e in edges if e.source == source and e.target == target)
        )
        lines.append(f"    {source} -> {target} ({where})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "package", nargs="?", default=str(ROOT / "keyed_storage"), help="the package's directory"
    )
    package_dir = Path(parser.parse_args(argv).package).resolve()
    edges, private = read_graph(package_dir)
    found = list(cycles(edges))
    for number, cycle in enumerate(found[:MAX_CYCLES_SHOWN], 1):
        print(f"cycle {number}: {describe(cycle, edges)}")
    if len(found) > MAX_CYCLES_SHOWN:
        print(f"... and {len(found) - MAX_CYCLES_SHOWN} more cycles")
    for use in private:
        print(use)
    modules = len(module_names(package_dir))
    if found or private:
        print(
            f"{package_dir.name}: {len(found)} import cycle(s), {len(private)} private name(s) taken "
            f"across modules ({modules} modules, {len(edges)} imports)"
        )
        return 1
    print(f"{package_dir.name}: no import cycle, no private name taken across modules ({modules} modules)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
