"""core/ has no import circles: every `from core.x import ...` / `import core.x` written at a
module's top level (TYPE_CHECKING blocks included: a circle there is still a circle of
meaning) forms a graph that must be acyclic. Imports inside functions are the deliberate
way to defer a heavy or upward dependency and are not counted."""
from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"


def _name(path: Path) -> str:
    rel = path.relative_to(CORE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _top_level_imports(tree: ast.Module) -> set[str]:
    found: set[str] = set()

    def visit(nodes):
        for node in nodes:
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("core"))
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("core") and not node.level:
                found.add(node.module)
            elif isinstance(node, (ast.If, ast.Try)):  # TYPE_CHECKING blocks, guarded imports
                visit(node.body)
                visit(getattr(node, "orelse", []))
                for h in getattr(node, "handlers", []):
                    visit(h.body)
    visit(tree.body)
    return found


def _graph() -> dict[str, set[str]]:
    files = {_name(p): p for p in CORE.rglob("*.py")}
    graph = {}
    for name, path in files.items():
        deps = set()
        for target in _top_level_imports(ast.parse(path.read_text(encoding="utf-8"))):
            # `from core.sdxl import x` points at the package; `core.sdxl.base` at a file
            while target and target not in files:
                target = target.rpartition(".")[0]
            if target and target != name and not name.startswith(target + "."):
                deps.add(target)  # a package's submodule importing its own __init__ is not a circle
        graph[name] = deps
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state and (c := dfs(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (c := dfs(n)):
            return c
    return None


def test_core_has_no_import_circle():
    graph = _graph()
    assert len(graph) > 20 and graph["core.jobs"]  # the scan saw core and its edges
    assert _cycle(graph) is None, " -> ".join(_cycle(graph))


def test_the_checker_finds_a_circle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
