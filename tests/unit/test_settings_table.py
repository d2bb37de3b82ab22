"""The settings table is the one place a setting is declared: CLI options, stage
parameters and the view a stage runs with all come from it."""

import dataclasses

import pytest
from click.testing import CliRunner

from postermap.cli import main
from postermap.config import Settings, StageSettings, cli_settings, option_name, stage_settings
from postermap.errors import SettingsError
from postermap.pipeline import STAGE_NAMES, stages


def test_every_setting_names_real_stages_and_has_help():
    for field in dataclasses.fields(Settings):
        assert field.metadata["help"], field.name
        assert set(field.metadata["stages"]) <= set(STAGE_NAMES), field.name


def test_every_cli_setting_is_an_option_of_run_and_map_ones_of_every_stage_command():
    run_options = {o for p in main.commands["run"].params for o in getattr(p, "opts", [])}
    for field in cli_settings():
        assert option_name(field.name) in run_options, field.name
    for name in STAGE_NAMES[1:]:
        options = {o for p in main.commands[name].params for o in getattr(p, "opts", [])}
        for field in cli_settings():
            expected = field.metadata["group"] == "map"
            assert (option_name(field.name) in options) == expected, (name, field.name)


def test_stage_parameters_come_from_the_table():
    assert stage_settings("clean") == ("near_cosine", "near_layout", "keep_near_duplicates")
    assert "workers" not in stage_settings("ingest")  # how, not what: no re-run
    assert "workers" in stage_settings("ingest", affecting_only=False)
    for stage in stages():
        assert set(stage_settings(stage.name)) <= {f.name for f in dataclasses.fields(Settings)}


def test_a_stage_cannot_read_a_setting_it_does_not_declare():
    view = StageSettings(Settings(), "grid")
    assert view.grid_exact_max == 2000
    with pytest.raises(AttributeError, match="stage 'grid' read setting 'perplexity'"):
        _ = view.perplexity


def test_cli_option_sets_the_setting(tmp_path):
    (tmp_path / "ws").mkdir()
    result = CliRunner().invoke(main, ["grid", str(tmp_path / "ws"), "--grid-exact-max", "0"])
    assert result.exit_code == 1 and "grid_exact_max must be positive" in result.output


def test_toml_values_of_the_wrong_type_are_named(tmp_path):
    toml = tmp_path / "s.toml"
    toml.write_text('workers = "two"\n')
    with pytest.raises(SettingsError, match="workers must be int"):
        Settings.load(toml)


def test_choices_are_checked():
    with pytest.raises(
        SettingsError, match="cluster_method must be one of louvain, hdbscan, dbscan"
    ):
        Settings(cluster_method="kmeans")


def test_per_invocation_settings_are_not_remembered():
    assert '"ray"' not in Settings(ray="local").to_json()
    assert '"workers"' in Settings().to_json()
