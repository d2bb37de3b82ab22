"""The import graph of ``src/postermap``, read from the source (lazy imports included).

``python scripts/import_graph.py`` rewrites the diagram in ARCHITECTURE.md between its
markers; ``tests/unit/test_imports.py`` uses :func:`import_graph` and :func:`layer` to
keep the rules the architecture states (no cycle, no stage importing a stage, no library
module importing a stage, the pipeline or the CLI).

Imports inside ``if TYPE_CHECKING:`` blocks are left out: they exist for type checkers
only and create no dependency at run time.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "postermap"
ARCHITECTURE = ROOT / "ARCHITECTURE.md"
START, END = "<!-- import-graph:start -->", "<!-- import-graph:end -->"

#: Bottom modules: every layer may import them; they import only each other.
CORE = {"errors", "stage", "config", "workspace", "progress"}
#: The layers from the top down; a module may import only from its own layer or below.
LAYERS = ("entry", "pipeline", "stages", "library", "core")


def module_names() -> dict[str, Path]:
    """Dotted name (without ``postermap.``) -> file, for every module of the package."""
    out = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts) or "__init__"] = path
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the package modules it imports (at any depth, TYPE_CHECKING excluded)."""
    modules = module_names()
    graph: dict[str, set[str]] = defaultdict(set)
    for name, path in modules.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in _runtime_nodes(tree):
            for target in _targets(node, name, path):
                if target in modules and target != name:
                    graph[name].add(target)
        graph.setdefault(name, set())
    return dict(graph)


def layer(module: str) -> str:
    """Which layer a module belongs to (see :data:`LAYERS`)."""
    top = module.split(".")[0]
    if module in ("cli", "__main__", "api", "__init__"):
        return "entry"
    if module == "pipeline":
        return "pipeline"
    if top == "stages":
        return "stages"
    if module in CORE:
        return "core"
    return "library"


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle (as a path that returns to its start), or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def mermaid(graph: dict[str, set[str]]) -> str:
    """The graph as a Mermaid flowchart, one subgraph per layer (top to bottom)."""
    lines = ["```mermaid", "flowchart TB"]
    by_layer: dict[str, list[str]] = defaultdict(list)
    for module in sorted(graph):
        if module != "__init__":
            by_layer[layer(module)].append(module)
    for name in LAYERS:
        lines.append(f"  subgraph {name}")
        for module in by_layer[name]:
            lines.append(f"    {_node(module)}[{module}]")
        lines.append("  end")
    for module in sorted(graph):
        for target in sorted(graph[module]):
            if "__init__" not in (module, target):
                lines.append(f"  {_node(module)} --> {_node(target)}")
    lines.append("```")
    return "\n".join(lines)


def with_diagram(text: str, graph: dict[str, set[str]]) -> str:
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{mermaid(graph)}\n{END}{tail}"


def _node(module: str) -> str:
    return module.replace(".", "_")


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Import nodes outside ``if TYPE_CHECKING:`` blocks."""
    found: list[ast.AST] = []

    def walk(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child.test):
                for orelse in child.orelse:
                    walk(orelse)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                found.append(child)
            walk(child)

    walk(tree)
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _targets(node: ast.AST, module: str, path: Path) -> list[str]:
    """Package modules named by one import statement (without ``postermap.``)."""
    out = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            if alias.name.startswith("postermap."):
                out.append(alias.name.removeprefix("postermap."))
    elif isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            package = module.split(".")
            if path.name != "__init__.py":
                package = package[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, base] if base else package)
        elif base == "postermap" or base.startswith("postermap."):
            base = base.removeprefix("postermap").removeprefix(".")
        else:
            return []
        for alias in node.names:
            # "from postermap.stages import clean" imports the submodule stages.clean
            out.append(f"{base}.{alias.name}" if base else alias.name)
        out.append(base or "__init__")
    return out


if __name__ == "__main__":
    graph = import_graph()
    cycle = find_cycle(graph)
    if cycle:
        sys.exit(f"import cycle: {' -> '.join(cycle)}")
    new = with_diagram(ARCHITECTURE.read_text(), graph)
    changed = new != ARCHITECTURE.read_text()
    ARCHITECTURE.write_text(new)
    sys.stdout.write("ARCHITECTURE.md updated\n" if changed else "ARCHITECTURE.md up to date\n")
