from postermap.cli import main
from postermap.pipeline import stages


def test_every_stage_has_its_own_command_and_no_name_is_shadowed():
    for stage in stages():
        if stage.name == "ingest":
            continue
        command = main.commands[stage.name]
        params = [p.name for p in command.params]
        assert params[0] == "workspace" and "force" in params, stage.name
    assert [p.name for p in main.commands["similar"].params][:2] == ["image", "workspace"]
