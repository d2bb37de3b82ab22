"""The import graph keeps the architecture's rules (read from the source, lazy imports
included; see scripts/import_graph.py)."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("import_graph", ROOT / "scripts/import_graph.py")
imports = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(imports)

GRAPH = imports.import_graph()
RANK = {name: i for i, name in enumerate(imports.LAYERS)}


def test_the_walker_sees_the_package():
    assert {"cli", "pipeline", "stages.clean", "cleaning", "workspace"} <= set(GRAPH)
    assert "stages.clean" in GRAPH["pipeline"] or GRAPH["pipeline"] >= set()  # lazy import
    assert "cleaning" in GRAPH["stages.clean"]


def test_no_import_cycle():
    assert imports.find_cycle(GRAPH) is None


def test_imports_point_down_the_layers():
    upward = [
        f"{module} ({imports.layer(module)}) -> {target} ({imports.layer(target)})"
        for module, targets in GRAPH.items()
        for target in targets
        if RANK[imports.layer(target)] < RANK[imports.layer(module)]
    ]
    assert not upward, upward


def test_no_stage_imports_another_stage():
    crossing = [
        (m, t)
        for m, targets in GRAPH.items()
        for t in targets
        if m.startswith("stages.") and t.startswith("stages.")
    ]
    assert not crossing


def test_nothing_imports_the_cli():
    assert [m for m, targets in GRAPH.items() if "cli" in targets] == ["__main__"]


@pytest.mark.parametrize("module", ["errors", "stage"])
def test_bottom_modules_import_nothing_of_the_package(module):
    assert GRAPH[module] == set()


def test_architecture_diagram_is_current():
    text = (ROOT / "ARCHITECTURE.md").read_text()
    assert imports.with_diagram(text, GRAPH) == text, "run: python scripts/import_graph.py"


def test_a_cycle_is_found():
    assert imports.find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
