"""docs/architecture.md's rules, read from the source: who may import what, no import circles,
and no module over 400 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from .conftest import ROOT

PACKAGES = {"mxconv": ROOT / "client" / "mxconv", "mxconv_server": ROOT / "server" / "mxconv_server"}
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for package, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            parts = path.relative_to(root).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def top_level_imports(name: str, path: Path) -> set[str]:
    """Modules imported at module level (imports inside functions are deliberate late ones)."""
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module or ""
            out.add(target)
            out |= {f"{target}.{alias.name}" for alias in node.names}
    return out


MODULES = modules()
IMPORTS = {name: top_level_imports(name, path) for name, path in MODULES.items()}


def imports_of(prefix: str) -> dict[str, set[str]]:
    return {n: i for n, i in IMPORTS.items() if n == prefix or n.startswith(prefix + ".")}


def _uses(imported: set[str], forbidden: str) -> bool:
    return any(i == forbidden or i.startswith(forbidden + ".") for i in imported)


@pytest.mark.parametrize(
    ("prefix", "forbidden"),
    [
        ("mxconv", "mxconv_server"),
        ("mxconv", "mxnet"),
        ("mxconv", "flask"),
        ("mxconv_server.api", "mxnet"),
        ("mxconv_server.api", "mxconv_server.compute.mx"),
        ("mxconv_server.oip", "mxnet"),
        ("mxconv_server.oip", "mxconv_server.compute.mx"),
        ("mxconv_server.compute.plan", "mxconv_server.compute.mx"),
        ("mxconv_server.compute.cost", "mxconv_server.compute.mx"),
        ("mxconv_server.compute.phases", "mxconv_server.compute.mx"),
        ("mxconv_server.compute.padding", "mxconv_server.compute.mx"),
        ("mxconv_server.compute", "flask"),
        ("mxconv_server.ops", "flask"),
        ("mxconv_server.ops", "mxconv_server.api"),
        ("mxconv_server.transport", "mxconv_server.compute"),
        ("mxconv_server.transport", "mxconv_server.ops"),
    ],
)
def test_who_may_import_what(prefix: str, forbidden: str) -> None:
    offenders = [n for n, i in imports_of(prefix).items() if _uses(i, forbidden)]
    assert not offenders, f"{offenders} import {forbidden}"


def test_only_compute_mx_imports_mxnet() -> None:
    offenders = [n for n, i in IMPORTS.items() if _uses(i, "mxnet") and n != "mxconv_server.compute.mx"]
    assert not offenders


def test_library_internals_stay_in_the_compat_modules() -> None:
    allowed = {"mxconv_server.transport.compat", "mxconv_server.gunicorn_conf", "mxconv_server.serve"}
    for name, imported in IMPORTS.items():
        if name not in allowed:
            assert not _uses(imported, "gunicorn"), name
    for name, path in MODULES.items():
        text = path.read_text()
        if name.endswith("compat"):
            continue
        assert "_prepare_response_obj" not in text and "_cached_json" not in text, name
        assert "take_buffered" not in text and "_content_consumed" not in text, name


def test_no_import_circles() -> None:
    graph = {n: {i for i in imps if i in IMPORTS and i != n} for n, imps in IMPORTS.items()}
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in graph[node]:
            # a package importing its own submodule (or the reverse through __init__) is the
            # package's structure, not a circle
            if nxt.startswith(node + ".") or node.startswith(nxt + "."):
                continue
            if state.get(nxt) == 1:
                raise AssertionError("import circle: " + " -> ".join([*path[path.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_module_over_400_lines() -> None:
    long = {n: len(p.read_text().splitlines()) for n, p in MODULES.items()}
    assert not {n: k for n, k in long.items() if k > MAX_LINES}
