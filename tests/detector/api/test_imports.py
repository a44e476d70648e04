"""The web tier's imports run one way: the assembly (``detector.api.app``) imports the
handler modules, they import the kit and the shared queries, and nothing imports back."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("detector/api", "detector/console")


def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for f in (ROOT / package).glob("*.py"):
            name = ".".join(f.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = f
    return out


def _graph() -> dict[str, set[str]]:
    """Module -> the modules of the web tier it imports, at module level or inside a function
    (a deferred import still closes a circle); a submodule named in ``from package import
    name`` counts as that submodule, not as the package."""
    mods = _modules()
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                edges[m] |= {a.name for a in node.names if a.name in mods}
            elif isinstance(node, ast.ImportFrom) and node.module:
                subs = {f"{node.module}.{a.name}" for a in node.names} & set(mods)
                edges[m] |= subs or ({node.module} & set(mods))
        edges[m].discard(m)
    return edges


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_web_tier_has_no_import_cycle():
    assert _cycles(_graph()) == []


def test_the_finder_sees_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_handler_imports_the_assembly_and_the_console_reads_no_handler_module():
    edges = _graph()
    handlers = set(edges) - {"detector.api.app", "detector.api", "detector.api.reports"}
    assert not [m for m in handlers if "detector.api.app" in edges[m]]
    assert "detector.api.analyst" not in edges["detector.console.pages"]
    assert "detector.api.queries" in edges["detector.console.pages"]
    assert "detector.api.queries" in edges["detector.api.analyst"]
    assert edges["detector.api.kit"].isdisjoint(
        {"detector.api.app", "detector.api.analyst", "detector.api.token", "detector.console"})


def test_importing_the_kit_does_not_assemble_the_application():
    code = ("import sys, detector.api.kit, detector.api.queries; "
            "print('detector.api.app' in sys.modules, 'detector.console' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT)}, check=True).stdout
    assert out.split() == ["False", "False"]
