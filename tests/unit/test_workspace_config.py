import pytest

from postermap.config import Settings
from postermap.errors import SettingsError
from postermap.workspace import Workspace, atomic_path, atomic_write_text


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.txt"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_whole_file(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    assert [p.name for p in tmp_path.iterdir()] == ["out.txt"]


def test_markers_round_trip(tmp_path):
    ws = Workspace(tmp_path / "ws").create()
    assert not ws.is_done("embed", "abc")
    ws.write_marker("embed", {"fingerprint": "abc", "counts": {"in": 3}})
    assert ws.is_done("embed", "abc")
    assert not ws.is_done("embed", "other")
    assert ws.read_marker("embed")["counts"] == {"in": 3}


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"cell_size": 4}, "cell_size"),
        ({"dbscan_eps": -1.0}, "dbscan_eps"),
        ({"workers": 0}, "workers"),
        ({"background": "red"}, "background"),
    ],
)
def test_bad_settings_say_which(changes, message):
    with pytest.raises(SettingsError, match=message):
        Settings(**changes)


def test_settings_from_toml_and_overrides(tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text("perplexity = 12.0\ncell_size = 64\n")
    settings = Settings.load(toml, cell_size=96, seed=None)
    assert settings.perplexity == 12.0
    assert settings.cell_size == 96
    assert settings.seed == Settings().seed


def test_unknown_setting_is_named(tmp_path):
    toml = tmp_path / "p.toml"
    toml.write_text("perplexty = 12.0\n")
    with pytest.raises(SettingsError, match="perplexty"):
        Settings.load(toml)


def test_written_files_are_readable_by_others_as_the_umask_allows(tmp_path):
    import os
    import stat

    target = tmp_path / "site" / "index.json"
    atomic_write_text(target, "{}")
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
