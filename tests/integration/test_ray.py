"""Scale-out: the same run on a local Ray instance gives the same outputs as local processes."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from postermap.config import Settings
from postermap.mosaic import DRAWN_FILE
from postermap.pipeline import run_pipeline
from postermap.workspace import Workspace
from tests.conftest import emoji_subset

pytestmark = pytest.mark.integration


def _files(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` but the record of what each cell was drawn from (it
    names the thumbnails' modification times, which differ between two workspaces)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != DRAWN_FILE
    }


def test_ray_run_equals_the_local_run(emoji_images, tmp_path, caplog):
    import ray

    source = emoji_subset(emoji_images, tmp_path / "images", per_category=6, seed=5)
    settings = Settings(
        source=str(source),
        metadata=str(source / "metadata.csv"),
        cell_size=32,
        shard_size=16,
        batch_size=8,
    )
    local = Workspace(tmp_path / "local")
    run_pipeline(local, settings)

    ray.init(
        num_cpus=2, include_dashboard=False, object_store_memory=150_000_000, log_to_driver=False
    )
    try:
        distributed = Workspace(tmp_path / "ray")
        with caplog.at_level(logging.INFO, logger="postermap.runner"):
            run_pipeline(distributed, settings.replace(ray="auto"))
    finally:
        ray.shutdown()
    assert "ray: 2 CPUs in the cluster" in caplog.text  # the work really went to Ray

    local_ids, ray_ids = (np.load(ws.embed_dir / "ids.npy") for ws in (local, distributed))
    assert np.array_equal(local_ids, ray_ids) and len(local_ids) > 50
    local_features, ray_features = (
        np.load(ws.embed_dir / "embeddings.npy") for ws in (local, distributed)
    )
    assert np.array_equal(local_features, ray_features)
    ignore = {"file", "source"}  # both runs read the same folder; nothing else may differ
    tables = [pq.read_table(ws.catalog_path) for ws in (local, distributed)]
    columns = [c for c in tables[0].column_names if c not in ignore]
    assert tables[0].select(columns).equals(tables[1].select(columns))
    assert _files(local.site_dir / "tiles") == _files(distributed.site_dir / "tiles")
    assert _files(local.site_dir / "data") == _files(distributed.site_dir / "data")
    assert _files(local.thumbs_dir) == _files(distributed.thumbs_dir)


def test_the_single_machine_path_never_imports_ray(tmp_path):
    from tests.conftest import draw_image

    for i in range(6):
        draw_image(tmp_path / "images" / f"{i}.png", seed=i)
    script = (
        "import sys\n"
        "from postermap.config import Settings\n"
        "from postermap.pipeline import run_pipeline\n"
        "from postermap.workspace import Workspace\n"
        f"run_pipeline(Workspace({str(tmp_path / 'ws')!r}), "
        f"Settings(source={str(tmp_path / 'images')!r}, cell_size=16), until='embed')\n"
        "assert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / "ws" / "embed" / "embeddings.npy").exists()


def test_a_missing_cluster_is_a_clear_error(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from postermap.cli import main
    from tests.conftest import draw_image

    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    draw_image(tmp_path / "images" / "a.png", seed=1)
    monkeypatch.setenv("RAY_TMPDIR", str(tmp_path / "ray"))  # no cluster of this machine
    result = CliRunner().invoke(
        main, ["ingest", str(tmp_path / "images"), "-o", str(tmp_path / "ws"), "--ray", "auto"]
    )
    assert result.exit_code == 1
    assert "--ray auto: no Ray cluster" in result.output
    assert "ray start --head" in result.output
