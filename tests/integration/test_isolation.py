"""No file, bug, second writer or full disk stops or corrupts a run (issue: per-item
isolation, the workspace lock, write errors)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from PIL import Image

from postermap.cli import main
from postermap.workspace import Workspace
from tests.conftest import emoji_subset

pytestmark = pytest.mark.integration

ARGS = ["--cell-size", "32", "--workers", "1"]


@pytest.fixture(scope="module")
def small_set(emoji_images: Path, tmp_path_factory) -> Path:
    """~30 real images plus the edge cases of the issue: 1x1 and 2x2 PNG and JPEG
    (tracking pixels) and a full-contrast 16-bit greyscale PNG."""
    root = emoji_subset(emoji_images, tmp_path_factory.mktemp("iso") / "images", per_category=3)
    Image.new("RGB", (1, 1), (250, 250, 250)).save(root / "pixel.png")
    Image.new("RGB", (1, 1), (10, 10, 10)).save(root / "pixel.jpg")
    Image.new("RGB", (2, 2), (0, 128, 255)).save(root / "two.png")
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    Image.fromarray(ramp).save(root / "grey16.png")
    return root


def _run(source: Path, ws: Path, *extra: str):
    return CliRunner().invoke(main, ["run", str(source), "-o", str(ws), *ARGS, *extra])


def _catalog(ws: Path) -> dict[str, dict]:
    return {r["path"]: r for r in pq.read_table(Workspace(ws).catalog_path).to_pylist()}


def test_edge_case_images_never_stop_a_run(small_set, tmp_path):
    result = _run(small_set, tmp_path / "ws")
    assert result.exit_code == 0, result.output
    rows = _catalog(tmp_path / "ws")
    files = {p.relative_to(small_set).as_posix() for p in small_set.rglob("*.*")}
    assert set(rows) == files - {"metadata.csv"}
    for name in ("pixel.png", "pixel.jpg", "two.png", "grey16.png"):
        assert rows[name]["status"] in {"ok", "boring", "error"}, rows[name]


def test_a_bug_on_one_image_becomes_its_row_and_the_run_finishes(small_set, tmp_path, monkeypatch):
    import postermap.inspection as inspection

    source = tmp_path / "images"
    shutil.copytree(small_set, source)
    victim = source / "victim.png"
    Image.new("RGB", (77, 91), (200, 30, 30)).save(victim)
    real = inspection.image_stats

    def buggy(image, **kwargs):  # a bug of ours that hits one image only
        if (kwargs.get("full") or image).size == (77, 91):
            raise RuntimeError("simulated bug")
        return real(image, **kwargs)

    monkeypatch.setattr(inspection, "image_stats", buggy)  # --workers 1: in this process
    result = _run(source, tmp_path / "ws")
    assert result.exit_code == 0, result.output
    row = _catalog(tmp_path / "ws")["victim.png"]
    assert row["status"] == "error"
    assert row["reason"] == "internal: RuntimeError: simulated bug"
    assert "1 image(s) hit an internal error" in result.output
    assert (Workspace(tmp_path / "ws").site_dir / "index.html").exists()
    report = CliRunner().invoke(main, ["clean", str(tmp_path / "ws"), "--report"])
    page = Path(report.output.strip().splitlines()[-1]).read_text()
    assert "victim.png" in page and "internal: RuntimeError: simulated bug" in page
    strict = _run(source, tmp_path / "ws", "--strict")
    assert strict.exit_code == 2, strict.output


def test_an_unreadable_thumbnail_costs_only_its_own_features(small_set, tmp_path):
    ws = tmp_path / "ws"
    assert _run(small_set, ws, "--until", "ingest").exit_code == 0
    rows = _catalog(ws)
    victim = next(r for r in rows.values() if r["status"] == "ok")
    Workspace(ws).thumb_path(victim["content_hash"]).write_bytes(b"not a jpeg")
    result = _run(small_set, ws)
    assert result.exit_code == 0, result.output
    after = _catalog(ws)[victim["path"]]
    assert after["status"] == "error" and after["reason"].startswith("thumbnail unreadable")
    assert Workspace(ws).read_marker("embed")["counts"]["error"] == 1


def test_a_cell_that_cannot_be_drawn_is_left_blank_and_listed(small_set, tmp_path):
    ws = tmp_path / "ws"
    assert _run(small_set, ws).exit_code == 0
    rows = [r for r in _catalog(ws).values() if r["status"] == "ok"]
    broken, gone = rows[0], rows[1]
    Workspace(ws).thumb_path(broken["content_hash"]).write_bytes(b"\xff\xd8 broken")
    copy = tmp_path / "moved-away"
    shutil.move(gone["file"], copy)
    try:
        result = CliRunner().invoke(main, ["tiles", str(ws), "--force"])
    finally:
        shutil.move(copy, gone["file"])
    assert result.exit_code == 0, result.output
    marker = Workspace(ws).read_marker("tiles")
    assert marker["counts"]["render_errors"] == 1
    assert marker["counts"]["originals_missing"] == 1
    catalog = _catalog(ws)
    assert catalog[broken["path"]]["render_error"].startswith("thumbnail not drawn")
    assert catalog[gone["path"]]["render_error"] is None
    assert (Workspace(ws).site_dir / "images" / f"{gone['id']}.jpg").exists()


def test_a_second_writer_is_refused_and_names_the_first(small_set, tmp_path):
    ws = Workspace(tmp_path / "ws").create()
    with ws.lock("test holder"):
        result = _run(small_set, ws.root)
    assert result.exit_code == 1
    assert f"process {os.getpid()} (test holder" in result.output
    assert "--wait" in result.output


def test_a_lock_left_by_a_killed_run_is_taken_over(small_set, tmp_path):
    ws = tmp_path / "ws"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time\n"
            "from postermap.workspace import Workspace\n"
            f"with Workspace({str(ws)!r}).lock('doomed run'):\n"
            "    print('locked', flush=True)\n"
            "    time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "locked"
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    assert "doomed run" in (ws / ".lock").read_text()  # the killed run never cleaned up
    result = _run(small_set, ws, "--until", "ingest")
    assert result.exit_code == 0, result.output
    assert (ws / ".lock").read_text() == ""


def test_wait_starts_when_the_other_writer_is_done(small_set, tmp_path):
    ws = Workspace(tmp_path / "ws")
    assert _run(small_set, ws.root, "--until", "reduce").exit_code == 0
    released = threading.Event()

    def hold() -> None:
        with ws.lock("slow writer"):
            time.sleep(1.0)
            released.set()

    thread = threading.Thread(target=hold)
    thread.start()
    time.sleep(0.2)
    result = CliRunner().invoke(main, ["grid", str(ws.root), "--wait"])
    thread.join()
    assert result.exit_code == 0, result.output
    assert released.is_set() and ws.read_marker("grid") is not None


def _limited_run(source: Path, ws: Path, max_file_bytes: int) -> subprocess.CompletedProcess:
    """``postermap run`` where no file may grow past ``max_file_bytes`` (``ulimit -f``):
    writes beyond it fail with EFBIG, as on a nearly full disk."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_file_bytes, max_file_bytes))

    return subprocess.run(
        [sys.executable, "-m", "postermap", "run", str(source), "-o", str(ws), *ARGS],
        preexec_fn=limit,
        capture_output=True,
        text=True,
        timeout=600,
    )


def _nothing_half_written(ws: Path) -> None:
    assert not [p for p in ws.rglob(".tmp-*")], "temporary files left behind"
    for path in ws.rglob("*.parquet"):
        pq.read_table(path)
    for path in (ws / "stages").glob("*.json"):
        json.loads(path.read_text())
    for path in ws.rglob("*.npy"):
        np.load(path, mmap_mode="r")


def test_a_full_disk_stops_with_one_line_and_the_run_resumes(small_set, tmp_path):
    ws = tmp_path / "ws"
    failed = _limited_run(small_set, ws, max_file_bytes=60_000)
    assert failed.returncode == 1, failed.stderr[-2000:]
    assert "Traceback" not in failed.stderr
    assert failed.stderr.count("cannot write") == 1, failed.stderr[-2000:]
    assert "run the same command again" in failed.stderr
    _nothing_half_written(ws)
    assert Workspace(ws).read_marker("embed") is None
    resumed = _run(small_set, ws)
    assert resumed.exit_code == 0, resumed.output
    assert "ingest" not in resumed.output.split("stages run:")[1].splitlines()[0]
    _nothing_half_written(ws)
    assert (Workspace(ws).site_dir / "index.html").exists()


def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
    )
    return done.returncode == 0


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_tiny_or_read_only_file_system(small_set, tmp_path):
    mount = tmp_path / "fs"
    if not _mount_tmpfs(mount, "400k"):
        pytest.skip("this machine does not allow mounting a tmpfs")
    try:
        ws = mount / "ws"
        full = subprocess.run(
            [sys.executable, "-m", "postermap", "run", str(small_set), "-o", str(ws), *ARGS],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert full.returncode == 1 and "the disk is full" in full.stderr, full.stderr[-2000:]
        assert "Traceback" not in full.stderr
        _nothing_half_written(ws)
        subprocess.run(["mount", "-o", "remount,size=200m", str(mount)], check=True)
        assert _run(small_set, ws).exit_code == 0
        view = tmp_path / "read-only-view"  # the finished workspace, mounted read-only
        view.mkdir()
        subprocess.run(["mount", "--bind", str(ws), str(view)], check=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(view)], check=True)
        read_only = CliRunner().invoke(main, ["cluster", str(view), "--force"])
        assert read_only.exit_code == 1
        assert "read-only" in read_only.output, read_only.output
    finally:
        for target in (tmp_path / "read-only-view", mount):
            subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)
