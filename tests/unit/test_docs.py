"""Documentation checked by tests: every CLI command and option appears in README.md."""

from pathlib import Path

import click

from postermap.cli import main

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


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
