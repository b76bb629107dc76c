"""The import rules of ../shared/design.md, checked by parsing every module's imports with ``ast``.

    package     may import (ember packages)                         never imports (third party)
    leaves      other leaves                                         -
    store       leaves                                               fastapi, starlette
    engine      leaves, store                                        fastapi, starlette, httpx
    edge        leaves (the HTTP edge shared by api and gateway)     -
    api         leaves, store, engine, edge                          -
    db          leaves                                               fastapi, starlette
    gateway     leaves, db, edge                                     -
    web         leaves, db, edge, gateway                            -
    client      leaves                                               -
    ops         leaves, client, db, store (doctor reads it)              -
    cli         leaves, client, ops, db; the app factories only in cli/serve.py

Leaves are ember/__init__ (the version), config, errors, names, durations, options, gotemplate, modelfile
(the Modelfile parser: `ember create` parses on the client, the store on the server) and probes (the shape of
/healthz and /readyz, which the engine, the web role and `ember health` share).
Imports inside functions and under TYPE_CHECKING count too: a lazy import is still a dependency.
There are no import cycles between modules.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src"

LEAVES = frozenset({"ember", "config", "errors", "names", "durations", "options", "gotemplate", "modelfile",
                    "probes"})
MAY_IMPORT: dict[str, frozenset[str]] = {
    "leaves": LEAVES,
    "store": LEAVES | {"store"},
    "engine": LEAVES | {"store", "engine"},
    # The HTTP edge the two servers share (error bodies, bounded bodies, the 500 for a bug); leaves only.
    "edge": LEAVES | {"edge"},
    "api": LEAVES | {"store", "engine", "edge", "api"},
    "db": LEAVES | {"db"},
    "gateway": LEAVES | {"db", "edge", "gateway"},
    "web": LEAVES | {"db", "edge", "gateway", "web"},
    "client": LEAVES | {"client"},
    # ember doctor sizes the models in the store and a registry manifest: read-only use of the store.
    "ops": LEAVES | {"client", "db", "store", "ops"},
    "cli": LEAVES | {"client", "ops", "db", "cli"},
}
# Where the app factories are wired: the one place allowed to reach into the server layers.
EXTRA_FOR_MODULE = {"ember.cli.serve": frozenset({"api", "gateway", "web"})}
NEVER_THIRD_PARTY: dict[str, frozenset[str]] = {
    "store": frozenset({"fastapi", "starlette"}),
    "engine": frozenset({"fastapi", "starlette", "httpx"}),
    "db": frozenset({"fastapi", "starlette"}),
}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, e.g. ember.modelfile
    target: str  # what it imports, e.g. ember.engine.options
    path: Path
    line: int

    def where(self) -> str:
        return f"{self.path}:{self.line}"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, root: Path) -> Iterator[Import]:
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    rel = str(path.relative_to(root))
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield Import(module, alias.name, rel, node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                # "from ember.store import manifest" names a module; "from ember.store import X" a name in it.
                is_module = (root / candidate.replace(".", "/")).with_suffix(".py").exists() or (
                    root / candidate.replace(".", "/") / "__init__.py").exists()
                yield Import(module, candidate if is_module else base, rel, node.lineno)


def all_imports(root: Path) -> list[Import]:
    found = (imp for path in sorted((root / "ember").rglob("*.py")) for imp in imports_of(path, root))
    return list(dict.fromkeys(found))  # "from m import a, b" is one dependency


def layer_of(module: str) -> str:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "ember"
    return "leaves" if top in LEAVES else top


def violations(imports: list[Import]) -> list[str]:
    found = []
    for imp in imports:
        layer = layer_of(imp.module)
        top_target = imp.target.split(".")[0]
        if top_target == "ember":
            target = layer_of(imp.target)
            target_package = imp.target.split(".")[1] if "." in imp.target else "ember"
            allowed = MAY_IMPORT.get(layer, frozenset()) | EXTRA_FOR_MODULE.get(imp.module, frozenset())
            if target_package not in allowed and target not in allowed:
                found.append(f"{imp.where()}: {imp.module} imports {imp.target}: "
                             f"{layer} may import only {', '.join(sorted(allowed))}")
        elif top_target in NEVER_THIRD_PARTY.get(layer, frozenset()):
            found.append(f"{imp.where()}: {imp.module} imports {imp.target}: {layer} never imports {top_target}")
    return found


def cycles(imports: list[Import]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan's algorithm, iterative)."""
    graph: dict[str, set[str]] = {}
    modules = {imp.module for imp in imports}
    for imp in imports:
        target = imp.target
        while target and target not in modules:
            target = target.rpartition(".")[0]  # ember.store.X (a name) -> ember.store
        if target and target != imp.module:
            graph.setdefault(imp.module, set()).add(target)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.get(start, ()))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
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
    return found


def test_every_import_follows_the_layer_rules() -> None:
    problems = violations(all_imports(SRC))
    assert not problems, "\n".join(problems)


def test_there_are_no_import_cycles() -> None:
    found = cycles(all_imports(SRC))
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def test_the_checker_names_a_forbidden_import(tmp_path: Path) -> None:
    write(tmp_path, "ember/__init__.py", "")
    write(tmp_path, "ember/errors.py", "")
    write(tmp_path, "ember/engine/__init__.py", "")
    write(tmp_path, "ember/engine/options.py", "from ember.errors import x\n")
    write(tmp_path, "ember/store/__init__.py", "")
    write(tmp_path, "ember/store/create.py", "import json\n\nfrom ember.engine.options import coerce\n")
    write(tmp_path, "ember/gateway/proxy.py", "def f():\n    from ember.engine import scheduler\n")
    write(tmp_path, "ember/engine/runner.py", "import httpx\n")
    problems = violations(all_imports(tmp_path))
    assert problems == [
        "ember/engine/runner.py:1: ember.engine.runner imports httpx: engine never imports httpx",
        "ember/gateway/proxy.py:2: ember.gateway.proxy imports ember.engine: "
        "gateway may import only config, db, durations, edge, ember, errors, gateway, gotemplate, modelfile, names, "
        "options, probes",
        "ember/store/create.py:3: ember.store.create imports ember.engine.options: "
        "store may import only config, durations, ember, errors, gotemplate, modelfile, names, options, probes, store",
    ]


def test_the_checker_finds_a_cycle(tmp_path: Path) -> None:
    write(tmp_path, "ember/__init__.py", "")
    write(tmp_path, "ember/cli/__init__.py", "")
    write(tmp_path, "ember/cli/main.py", "from ember.cli.models import COMMANDS\n")
    write(tmp_path, "ember/cli/models.py", "def f():\n    from ember.cli.main import client\n")
    write(tmp_path, "ember/cli/format.py", "")
    assert cycles(all_imports(tmp_path)) == [["ember.cli.main", "ember.cli.models"]]
