"""The package's layers, read from its imports (ast): a lower layer never imports a higher one,
and no module imports itself back through others (no import circle, type-checking imports
included).

    policy (policy, routes)  <  settings (config, environment)  <  check/  <  store/  <
    observe/, runtime  <  http/, tools/  <  cli — and `authsvc` itself is a face: its version,
    nothing else. store/ is the I/O the pure check/ never does: keys read from files and fetched
    from a JWKS URL, the replay store shared across replicas.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "authsvc"

# Each layer, and the layers it may import from (besides itself and the package's face).
ALLOWED: dict[str, set[str]] = {
    "policy": set(),
    "settings": {"policy"},
    "check": {"policy", "settings"},
    "store": {"policy", "settings", "check"},
    "observe": {"policy", "settings", "check", "store"},
    "runtime": {"policy", "settings", "check", "store"},
    "http": {"policy", "settings", "check", "store", "observe", "runtime"},
    "tools": {"policy", "settings", "check", "observe", "runtime"},
    "cli": {"policy", "settings", "check", "store", "observe", "runtime", "http", "tools"},
}
TOP_LEVEL = {
    "authsvc.policy": "policy",
    "authsvc.routes": "policy",
    "authsvc.config": "settings",
    "authsvc.environment": "settings",
    "authsvc.runtime": "runtime",
    "authsvc.cli": "cli",
    "authsvc.__main__": "cli",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str | None:
    """None for the package's face (`authsvc`)."""
    if module == "authsvc":
        return None
    if module in TOP_LEVEL:
        return TOP_LEVEL[module]
    return module.split(".")[1]  # authsvc.<layer>.<module> or the package authsvc.<layer>


def imports(module: str) -> set[str]:
    """The authsvc modules `module` imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from authsvc import __version__` names the package; `from authsvc.x import y`
            # the module x (or, if y is a module of the package x, that one).
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                found.add(candidate if candidate in MODULES else node.module)
    return {name for name in found if name == "authsvc" or name.startswith("authsvc.")}


def test_every_module_is_in_a_known_layer() -> None:
    unknown = [m for m in MODULES if m != "authsvc" and layer(m) not in ALLOWED]
    assert unknown == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_its_own_layer_and_the_layers_below(module: str) -> None:
    own = layer(module)
    allowed = {own, None} | (ALLOWED[own] if own else set())
    wrong = sorted(name for name in imports(module) if layer(name) not in allowed)
    assert wrong == [], f"{module} ({own}) imports {wrong}"


def test_no_import_circle() -> None:
    graph = {module: imports(module) - {"authsvc", module} for module in MODULES}
    finished: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        if module in path:
            raise AssertionError(" -> ".join((*path[path.index(module) :], module)))
        if module in finished:
            return
        for imported in graph.get(module, ()):
            visit(imported, (*path, module))
        finished.add(module)

    for module in graph:
        visit(module, ())


def test_the_package_itself_is_a_face_its_version_and_nothing_else() -> None:
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    assigned = [
        target.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    ]
    others = [node for node in tree.body if not isinstance(node, ast.Assign | ast.Expr)]
    assert (assigned, others) == (["__version__"], [])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_module_says_what_lives_there(module: str) -> None:
    assert ast.get_docstring(ast.parse(MODULES[module].read_text())), module
