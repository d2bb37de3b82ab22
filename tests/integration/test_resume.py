"""Kill a run mid-embed (SIGKILL) and check the re-run resumes from the finished shards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from postermap.cli import main
from postermap.workspace import Workspace
from tests.conftest import emoji_subset

pytestmark = pytest.mark.integration


def _processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (Linux /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (proc / "stat").read_text().split()[2]
        except OSError:
            continue  # exited while we looked
        if text in cmdline and state != "Z":
            found.append(int(proc.name))
    return found


def _finished_shards(shard_dir: Path) -> list[Path]:
    """A shard's features file (``NNNNN-<digest>.npy``) is written last, after its extra
    poolings (``….rmac.npy``, ``….cells.npy``), so it alone marks the shard as finished."""
    return [p for p in shard_dir.glob("*.npy") if "." not in p.stem]


def test_killed_embed_resumes_without_redoing_shards(emoji_images, tmp_path):
    source = emoji_subset(emoji_images, tmp_path / "images", per_category=20, seed=5)
    ws = Workspace(tmp_path / "ws")
    config = tmp_path / "settings.toml"
    config.write_text("shard_size = 16\nbatch_size = 8\n")
    args = ["run", str(source), "-o", str(ws.root), "--config", str(config), "--cell-size", "32"]
    log_path = tmp_path / "killed-run.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "postermap", *args], stdout=log, stderr=subprocess.STDOUT
        )
    shard_dir = ws.embed_dir / "shards"
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline and len(_finished_shards(shard_dir)) < 2:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    done = {p: p.stat().st_mtime_ns for p in _finished_shards(shard_dir)}
    assert len(done) >= 2
    assert ws.read_marker("embed") is None  # the stage never claimed to be finished
    # the run's decode workers die with it instead of living on as orphans
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _processes_mentioning(str(ws.root)):
        time.sleep(0.2)
    assert not _processes_mentioning(str(ws.root))
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    marker = ws.read_marker("embed")
    assert marker["counts"]["reused_from_shards"] >= 16 * len(done) - 16
    assert (
        marker["counts"]["embedded_now"] + marker["counts"]["reused_from_shards"]
        == marker["counts"]["in"]
    )
    for path, mtime in done.items():
        assert path.stat().st_mtime_ns == mtime, f"{path.name} was recomputed"
    assert not list(ws.root.rglob(".tmp-*")), "a temporary file was left behind"
