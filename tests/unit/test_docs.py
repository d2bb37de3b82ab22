"""Documentation checked by tests: every CLI command and option appears in README.md, and
the README's options table is the one the settings table generates."""

import importlib.util
from pathlib import Path

import click

from postermap.cli import main

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()


def _options(command: click.Command) -> list[str]:
    names = []
    for param in command.params:
        if isinstance(param, click.Option):
            names += [o for o in param.opts if o.startswith("--") and o != "--help"]
    return names


def test_every_command_and_option_is_documented():
    missing = []
    for name, command in main.commands.items():
        if name not in README:
            missing.append(name)
        missing += [f"{name} {o}" for o in _options(command) if o not in README]
    assert not missing, f"not in README.md: {missing}"


def test_readme_options_table_is_generated_from_the_settings():
    spec = importlib.util.spec_from_file_location("sync_readme", ROOT / "scripts/sync_readme.py")
    sync = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sync)
    assert sync.with_table(README) == README, "run: python scripts/sync_readme.py"
