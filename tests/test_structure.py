"""The package's import structure, read from the source with ``ast`` (nothing
is imported or executed).

Two rules keep the layers readable for whoever carries the code on:

* no import cycle between eventlib's modules, imports inside functions
  included (a function-level import only postpones a cycle, it does not
  remove it);
* a private name (a module or object whose name starts with ``_``) defined in
  package P is imported or reached through an attribute only by modules
  inside P, subpackages included. ``eventlib/_checks.py`` and
  ``eventlib/_units.py`` are eventlib-level, so every module may use them.
"""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

PACKAGE_ROOT = Path(__file__).resolve().parent.parent / "eventlib"


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


class _Package:
    """The modules of one package directory, by dotted name."""

    def __init__(self, root: Path):
        self.name = root.name
        self.files: dict[str, Path] = {}
        self.packages: set[str] = set()
        for path in sorted(root.rglob("*.py")):
            parts = list(path.relative_to(root.parent).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
                self.packages.add(".".join(parts))
            self.files[".".join(parts)] = path

    def package_of(self, module: str) -> str:
        """The package a module's own code lives in (itself, for a package)."""
        return module if module in self.packages else module.rpartition(".")[0]

    def resolve(self, module: str, level: int, target: str | None) -> str:
        """The absolute name of ``from <level dots><target> import ...``."""
        if level == 0:
            return target or ""
        base = self.package_of(module).split(".")
        base = base[: len(base) - (level - 1)]
        return ".".join(base + ([target] if target else []))

    def owner(self, chain: list[str], i: int) -> str:
        """The package that defines ``chain[i]``: the one that holds it."""
        prefix = ".".join(chain[:i])
        return prefix if prefix in self.packages else prefix.rpartition(".")[0]


def _imports(pkg: _Package, module: str, tree: ast.AST):
    """Every ``(chain, lineno)`` the module imports or reaches: ``chain`` is
    the dotted name split into parts, inside the package only. Attribute
    access through an imported module (``alias._name``) counts as reaching
    ``_name``."""
    aliases: dict[str, list[str]] = {}
    found: list[tuple[list[str], int]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                chain = alias.name.split(".")
                if chain[0] == pkg.name:
                    found.append((chain, node.lineno))
                    if alias.asname:
                        aliases[alias.asname] = chain
                    else:
                        aliases[chain[0]] = chain[:1]
        elif isinstance(node, ast.ImportFrom):
            base = pkg.resolve(module, node.level, node.module)
            if base.split(".")[0] != pkg.name:
                continue
            for alias in node.names:
                if alias.name == "*":
                    found.append((base.split("."), node.lineno))
                    continue
                chain = [*base.split("."), alias.name]
                found.append((chain, node.lineno))
                if ".".join(chain) in pkg.files:  # a module: its attributes may be reached
                    aliases[alias.asname or alias.name] = chain
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            attrs = []
            value: ast.AST = node
            while isinstance(value, ast.Attribute):
                attrs.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name) and value.id in aliases:
                found.append(([*aliases[value.id], *reversed(attrs)], node.lineno))
    return found


def find_problems(root: Path) -> tuple[list[list[str]], list[str]]:
    """The import cycles (each a list of modules, the first repeated at the
    end) and the private-name violations (one line each) of the package at
    ``root``."""
    pkg = _Package(root)
    graph: dict[str, set[str]] = {m: set() for m in pkg.files}
    private: list[str] = []
    for module, path in pkg.files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        for chain, lineno in _imports(pkg, module, tree):
            # The longest prefix of the chain that is a module is what runs.
            for n in range(len(chain), 0, -1):
                target = ".".join(chain[:n])
                if target in pkg.files:
                    if target != module:
                        graph[module].add(target)
                    break
            for i in range(1, len(chain)):
                if _is_private(chain[i]):
                    owner = pkg.owner(chain, i)
                    if module != owner and not module.startswith(owner + "."):
                        private.append(f"{module}:{lineno} uses {'.'.join(chain[: i + 1])} (private to {owner})")
                    break
    return _cycles(graph), sorted(set(private))


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle through each strongly connected component of more than one
    module (Tarjan's algorithm, then a shortest path back to the start)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
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
                components.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)

    cycles = []
    for component in components:
        start, members = component[0], set(component)
        paths = {start: [start]}
        frontier = [start]
        while frontier:  # breadth first, inside the component
            nxt = []
            for v in frontier:
                for w in sorted(graph[v] & members):
                    if w == start:
                        cycles.append([*paths[v], start])
                        nxt = []
                        break
                    if w not in paths:
                        paths[w] = [*paths[v], w]
                        nxt.append(w)
                else:
                    continue
                break
            frontier = nxt
    return sorted(cycles)


def test_no_import_cycles():
    cycles, _ = find_problems(PACKAGE_ROOT)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_no_private_name_across_packages():
    _, private = find_problems(PACKAGE_ROOT)
    assert not private, "private names used outside their package:\n" + "\n".join(private)


def _plant(root: Path, files: dict[str, str]) -> Path:
    """A synthetic package ``pkg`` under ``root`` with the given modules."""
    for name, source in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    return root / "pkg"


# A clean layout: a shared private helper at the top level, a private module
# used inside its own package, a lazy import that creates no cycle.
CLEAN = {
    "__init__.py": "from .low import public\n",
    "_helpers.py": "X = 1\n",
    "low/__init__.py": "from .rules import public\n",
    "low/rules.py": "from .._helpers import X\nfrom ._impl import _inner\npublic = X\n",
    "low/_impl.py": "def _inner():\n    return 1\n",
    "high/__init__.py": "",
    "high/layer.py": """\
        from .. import _helpers
        from ..low import rules

        def f():
            from ..low import public
            return rules.public, _helpers.X, public
        """,
}


def test_planted_clean_package_passes(tmp_path):
    assert find_problems(_plant(tmp_path, CLEAN)) == ([], [])


def test_planted_cycle_is_found(tmp_path):
    """A cycle closed by an import inside a function is still a cycle."""
    files = dict(CLEAN)
    files["low/_impl.py"] = "def _inner():\n    from ..high import layer\n    return layer\n"
    cycles, private = find_problems(_plant(tmp_path, files))
    assert cycles == [["pkg.high.layer", "pkg.low.rules", "pkg.low._impl", "pkg.high.layer"]]
    assert private == []


@pytest.mark.parametrize(
    "source",
    [
        "from ..low._impl import _inner\n",  # a private module of another package
        "from ..low import _impl\n",
        "import pkg.low._impl\n",
        "from ..low.rules import _inner\n",  # a private object of another package
        "from ..low import rules\ny = rules._inner\n",  # reached through an attribute
    ],
)
def test_planted_private_import_is_found(tmp_path, source):
    files = dict(CLEAN)
    files["high/bad.py"] = source
    cycles, private = find_problems(_plant(tmp_path, files))
    assert cycles == []
    assert len(private) == 1 and private[0].startswith("pkg.high.bad:")
    assert private[0].endswith("(private to pkg.low)")
