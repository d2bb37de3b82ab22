"""A manifest of URLs served by a local faulty server: every row ends with a status, a
killed download resumes without refetching, and the images reach the map."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from postermap.cli import main
from postermap.workspace import Workspace
from tests.conftest import emoji_subset
from tests.httpserver import FaultServer

pytestmark = pytest.mark.integration


@pytest.fixture
def served(emoji_images, tmp_path):
    folder = emoji_subset(emoji_images, tmp_path / "images", per_category=4, seed=9)
    with open(folder / "metadata.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    images = {row["filename"]: (folder / row["filename"]).read_bytes() for row in rows}
    with FaultServer(images) as server:
        yield server, rows


def _write_manifest(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["poster_id", "poster_url", "name", "year", "genre"])
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_manifest_run_records_every_row(served, tmp_path):
    server, rows = served
    good = [
        {
            "poster_id": f"m{i}",
            "poster_url": f"{server.url}/img/{r['filename']}",
            "name": r["title"],
            "year": str(1950 + i),
            "genre": r["category"],
        }
        for i, r in enumerate(rows)
    ]
    bad = [
        {
            "poster_id": "b1",
            "poster_url": f"{server.url}/404/{rows[0]['filename']}",
            "name": "Gone",
            "year": "1999",
            "genre": "x",
        },
        {
            "poster_id": "b2",
            "poster_url": f"{server.url}/html/{rows[0]['filename']}",
            "name": "Error page",
            "year": "1999",
            "genre": "x",
        },
        {"poster_id": "b3", "poster_url": "", "name": "No URL", "year": "", "genre": ""},
        {
            "poster_id": "b4",
            "poster_url": "file:///etc/passwd",
            "name": "Local",
            "year": "",
            "genre": "",
        },
        {
            "poster_id": "b5",
            "poster_url": f"{server.url}/flaky/{rows[1]['filename']}",
            "name": "Flaky",
            "year": "2001",
            "genre": "x",
        },
    ]
    manifest = _write_manifest(tmp_path / "posters.csv", good + bad)
    ws = tmp_path / "ws"
    result = CliRunner().invoke(
        main,
        ["run", str(manifest), "-o", str(ws), "--cell-size", "32", "--retries", "2"],
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    catalog = pq.read_table(Workspace(ws).catalog_path).to_pylist()
    assert len(catalog) == len(good) + len(bad)
    by_key = {r["poster_id"]: r for r in catalog}
    assert by_key["b1"]["status"] == "failed" and by_key["b1"]["reason"].startswith("http_404")
    assert by_key["b2"]["reason"].startswith("not_an_image")
    # the header is line 1, so the third bad row is on line len(good) + 4
    assert by_key["b3"]["reason"] == f"no_url: line {len(good) + 4} has an empty 'poster_url'"
    assert by_key["b4"]["reason"].startswith("bad_scheme")
    # the flaky row succeeded on retry; it has the same bytes as good row 1 -> duplicate
    assert by_key["b5"]["status"] == "duplicate"
    assert by_key["b5"]["duplicate_of"] == by_key["m1"]["id"]
    for row in good:
        placed = by_key[row["poster_id"]]
        assert placed["status"] in ("ok", "duplicate", "near_duplicate")
        assert placed["title"] == row["name"] and placed["year"] == row["year"]
    ok = [r for r in catalog if r["status"] == "ok"]
    assert ok and all(r["row"] is not None for r in ok)
    items = json.loads((Workspace(ws).site_dir / "data" / "items" / "00000.json").read_text())
    assert {"poster_id", "year", "genre", "manifest_line"} <= set(items[0]["meta"])


def test_wrong_url_column_is_a_clear_error(served, tmp_path):
    server, rows = served
    manifest = _write_manifest(
        tmp_path / "posters.csv",
        [
            {
                "poster_id": "a",
                "poster_url": f"{server.url}/img/{rows[0]['filename']}",
                "name": "A",
                "year": "",
                "genre": "",
            }
        ],
    )
    result = CliRunner().invoke(
        main, ["ingest", str(manifest), "-o", str(tmp_path / "ws"), "--url-column", "link"]
    )
    assert result.exit_code == 1
    assert "no column named 'link'" in result.output
    assert "poster_url" in result.output


def test_killed_download_resumes_without_refetching(served, tmp_path):
    server, rows = served
    entries = [
        {
            "poster_id": f"m{i}",
            "poster_url": f"{server.url}/slow/{r['filename']}?s=0.15",
            "name": r["title"],
            "year": "",
            "genre": "",
        }
        for i, r in enumerate(rows)
    ]
    manifest = _write_manifest(tmp_path / "posters.csv", entries)
    ws = Workspace(tmp_path / "ws")
    args = ["ingest", str(manifest), "-o", str(ws.root), "--concurrency", "2"]
    log_path = tmp_path / "killed.log"
    journal = ws.root / "downloads" / "journal.jsonl"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "postermap", *args], stdout=log, stderr=subprocess.STDOUT
        )
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            if journal.exists() and journal.read_text().count("\n") >= 6:
                break
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    finished = [
        json.loads(line)["url"] for line in journal.read_text().splitlines() if line.endswith("}")
    ]
    assert 6 <= len(finished) < len(entries)
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    for url in finished:
        path = url.removeprefix(server.url).split("?")[0]
        assert server.hits[path] == 1, f"{path} fetched again"
    statuses = [r["status"] for r in pq.read_table(ws.table_path("ingest")).to_pylist()]
    assert statuses == ["ok"] * len(entries)
    assert not list((ws.root / "downloads").rglob(".tmp-*"))
