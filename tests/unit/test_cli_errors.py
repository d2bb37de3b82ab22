"""User errors end in one clear line (exit 1), never a traceback."""

import shutil

from click.testing import CliRunner

from postermap.cli import main
from tests.conftest import DATA, draw_image


def test_only_broken_files_is_a_clear_error(tmp_path):
    source = tmp_path / "images"
    source.mkdir()
    for name in ("truncated.jpg", "not_an_image.png", "empty.jpg"):
        shutil.copy(DATA / name, source / name)
    result = CliRunner().invoke(main, ["run", str(source), "-o", str(tmp_path / "ws")])
    assert result.exit_code == 1
    assert "none of the 3 input files is a readable image" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_stage_before_its_inputs_is_a_clear_error(tmp_path):
    ws = tmp_path / "ws"
    ws.mkdir()
    result = CliRunner().invoke(main, ["grid", str(ws)])
    assert result.exit_code == 1
    assert "needs 'reduce' to have run first" in result.output


def test_bad_setting_names_the_setting(tmp_path):
    draw_image(tmp_path / "images" / "a.png", seed=1)
    result = CliRunner().invoke(
        main, ["ingest", str(tmp_path / "images"), "-o", str(tmp_path / "ws"), "--workers", "0"]
    )
    assert result.exit_code == 1
    assert "workers must be positive" in result.output
