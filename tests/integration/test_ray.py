"""Scale-out: the same run on a local Ray instance gives the same outputs as local processes."""

from __future__ import annotations

import json
import os
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


#: the Ray run, in a fresh interpreter: Ray leaves native threads and a SIGTERM handler
#: in the process that ran it, which every later forking test would inherit
RAY_RUN = """
import json, logging, sys
import ray
from postermap.config import Settings
from postermap.pipeline import run_pipeline
from postermap.workspace import Workspace

logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
logging.getLogger("postermap.runner").setLevel(logging.INFO)
ray.init(
    num_cpus=2, include_dashboard=False, object_store_memory=150_000_000, log_to_driver=False
)
try:
    run_pipeline(Workspace(sys.argv[1]), Settings(**json.loads(sys.argv[2]), ray="auto"))
finally:
    ray.shutdown()
"""


def test_ray_run_equals_the_local_run(emoji_images, tmp_path):
    source = emoji_subset(emoji_images, tmp_path / "images", per_category=6, seed=5)
    options = {
        "source": str(source),
        "metadata": str(source / "metadata.csv"),
        "cell_size": 32,
        "shard_size": 16,
        "batch_size": 8,
    }
    local = Workspace(tmp_path / "local")
    run_pipeline(local, Settings(**options))

    distributed = Workspace(tmp_path / "ray")
    result = subprocess.run(
        [sys.executable, "-c", RAY_RUN, str(distributed.root), json.dumps(options)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "ray: 2 CPUs in the cluster" in result.stderr  # the work really went to Ray

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


def test_a_missing_cluster_is_a_clear_error(tmp_path):
    from tests.conftest import draw_image

    draw_image(tmp_path / "images" / "a.png", seed=1)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["RAY_TMPDIR"] = str(tmp_path / "ray")  # no cluster of this machine
    # in a fresh interpreter, as the Ray run above: ray.init leaves its SIGTERM handler
    # behind even when it finds no cluster
    result = subprocess.run(
        [sys.executable, "-m", "postermap", "ingest", str(tmp_path / "images")]
        + ["-o", str(tmp_path / "ws"), "--ray", "auto"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "--ray auto: no Ray cluster" in result.stderr + result.stdout
    assert "ray start --head" in result.stderr + result.stdout
