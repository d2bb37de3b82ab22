"""The clean stage on the labelled poster set (held-out seed), the report and overrides."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from postermap.cli import main
from postermap.workspace import Workspace
from tests.cleanset import evaluate, make_clean_set

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def cleaned(emoji_images, tmp_path_factory):
    # Thresholds were chosen on seed 0; this is a different draw of the same recipe.
    base = tmp_path_factory.mktemp("cleanset")
    source = make_clean_set(emoji_images, base / "images", n=48, seed=11)
    ws = base / "ws"
    result = CliRunner().invoke(
        main, ["run", str(source), "-o", str(ws), "--until", "clean"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return ws


def test_precision_and_recall_floors(cleaned):
    rows = pq.read_table(Workspace(cleaned).catalog_path).to_pylist()
    metrics = evaluate(rows)
    assert metrics["duplicate"]["precision"] == 1.0 and metrics["duplicate"]["recall"] == 1.0
    near, boring = metrics["near_duplicate"], metrics["boring"]
    # Near duplicates must be the same picture region by region now. This set's retitle
    # paints a dark band over the old title and writes a new one elsewhere: a change of a
    # fifth of the picture, more than a retitle in the held-out sets, and 4 of its 4
    # retitles at this seed fall short (recall 0.75: 18 of 24; precision 1.0).
    assert near["precision"] >= 0.98 and near["recall"] >= 0.7, near
    assert boring["precision"] >= 0.98 and boring["recall"] >= 0.9, boring
    minimal = [r for r in rows if r["path"].startswith("minimal-")]
    assert all(r["status"] == "ok" for r in minimal), [r["reason"] for r in minimal]
    for row in rows:
        if row["status"] == "near_duplicate":
            assert 0.5 < row["similarity"] <= 1.0 and row["duplicate_of"]


def test_report_lists_every_flagged_row(cleaned):
    result = CliRunner().invoke(main, ["clean", str(cleaned), "--report"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = cleaned / "report"
    page = (report / "clean.html").read_text()
    assert "placeholder_template" in page and "group-000.png" in page
    flagged = [
        r for r in pq.read_table(Workspace(cleaned).catalog_path).to_pylist() if r["status"] != "ok"
    ]
    listed = (report / "clean.csv").read_text().splitlines()[1:]
    assert len(listed) == len(flagged)
    assert (report / "group-000.png").stat().st_size > 0


def test_overrides_keep_and_drop_rerun_only_downstream(cleaned, tmp_path):
    ws_path = tmp_path / "ws"
    shutil.copytree(cleaned, ws_path)
    ws = Workspace(ws_path)
    rows = pq.read_table(ws.catalog_path).to_pylist()
    blank = next(r for r in rows if r["path"].startswith("solid-"))
    poster = next(r for r in rows if r["path"].startswith("orig-") and r["status"] == "ok")
    (ws_path / "overrides.toml").write_text(
        f'keep = ["{blank["id"]}"]\ndrop = ["{poster["id"]}", "not-an-id"]\n'
    )
    embed_before = ws.read_marker("embed")["fingerprint"]
    result = CliRunner().invoke(main, ["clean", str(ws_path)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    after = {r["id"]: r for r in pq.read_table(ws.catalog_path).to_pylist()}
    assert after[blank["id"]]["status"] == "ok"
    assert after[blank["id"]]["reason"].startswith("kept by overrides.toml (was boring")
    assert after[poster["id"]]["status"] == "boring"
    assert after[poster["id"]]["reason"].startswith("user_drop")
    assert ws.read_marker("embed")["fingerprint"] == embed_before
    (ws_path / "overrides.toml").write_text('keep = ["x"]\ndrop = ["x"]\n')
    result = CliRunner().invoke(main, ["clean", str(ws_path)])
    assert result.exit_code == 1 and "both kept and dropped" in result.output
