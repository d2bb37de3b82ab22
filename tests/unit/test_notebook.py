"""docs/notebook.ipynb, the README's notebook example, stays valid Python against the API."""

import ast
import json
from pathlib import Path

import postermap.api

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "notebook.ipynb"


def test_notebook_cells_compile_and_use_only_the_api():
    cells = json.loads(NOTEBOOK.read_text())["cells"]
    code = ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]
    assert code
    used = set()
    for source in code:
        tree = ast.parse(source)
        used |= {
            node.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "postermap"
        }
    assert used and used <= set(postermap.api.__all__)
    members = {"catalog", "embeddings", "clusters", "similar", "serve", "to_pandas"}
    assert members <= set(dir(postermap.api.Map))
