"""Rewrite README.md's options table from the settings table in postermap.config.

Run after adding or changing a setting: ``python scripts/sync_readme.py``. The test
``tests/unit/test_docs.py`` fails while the README and the table disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path

from postermap.config import settings_markdown

START, END = "<!-- settings-table:start -->", "<!-- settings-table:end -->"
README = Path(__file__).resolve().parents[1] / "README.md"


def with_table(text: str) -> str:
    """``text`` with the generated table between the markers."""
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{settings_markdown()}\n{END}{tail}"


if __name__ == "__main__":
    new = with_table(README.read_text())
    changed = new != README.read_text()
    README.write_text(new)
    sys.stdout.write("README.md updated\n" if changed else "README.md already up to date\n")
