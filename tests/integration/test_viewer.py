"""The viewer in a real browser: Debian chromium driven by Playwright, site on 127.0.0.1."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from postermap.serve import make_server
from postermap.workspace import Workspace
from tests.chromium import CHROMIUM, launch

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@pytest.fixture(scope="module")
def site_url(emoji_run):
    server = make_server(Workspace(emoji_run["workspace"]).site_dir)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists() or shutil.which("chromium") is None:
        pytest.fail(f"{CHROMIUM} is missing: `make test` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = launch(p)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, site_url):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(site_url)
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    yield page
    page.close()
    assert not errors, errors


def test_map_renders_tiles(page):
    page.wait_for_function(
        "document.querySelectorAll('img.leaflet-tile-loaded').length > 0", timeout=20_000
    )
    loaded = page.evaluate("""[...document.querySelectorAll('img.leaflet-tile-loaded')]
        .filter(img => img.naturalWidth === 256).length""")
    assert loaded >= 1
    ARTIFACTS.mkdir(exist_ok=True)
    page.wait_for_timeout(500)
    page.screenshot(path=str(ARTIFACTS / "viewer.png"))


def test_hover_shows_the_title_under_the_mouse(page, emoji_run):
    titles = {
        r["title"]
        for r in pq.read_table(Workspace(emoji_run["workspace"]).catalog_path).to_pylist()
    }
    box = page.locator("#map").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#hover:not([hidden])", timeout=5_000)
    assert page.inner_text("#hover") in titles


def test_search_finds_a_title_and_flies_there(page, emoji_run):
    rows = pq.read_table(Workspace(emoji_run["workspace"]).catalog_path).to_pylist()
    ok = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: r["title"])
    titles = [r["title"].lower() for r in ok]
    # a title no other title contains, so Enter must pick exactly this image
    target = next(r for r in ok if sum(r["title"].lower() in t for t in titles) == 1)
    before = page.evaluate(
        "[postermap.map.getCenter().lat, postermap.map.getCenter().lng, postermap.map.getZoom()]"
    )
    page.fill("#search", target["title"].upper())
    page.wait_for_selector("#results li", timeout=5_000)
    assert page.inner_text("#results").strip() == target["title"]
    page.press("#search", "Enter")
    page.wait_for_selector("#details:not([hidden])", timeout=5_000)
    assert page.inner_text("#detail-title") == target["title"]
    page.wait_for_timeout(1200)  # the fly animation
    after = page.evaluate(
        "[postermap.map.getCenter().lat, postermap.map.getCenter().lng, postermap.map.getZoom()]"
    )
    assert after != before
    # the view is now zoomed in on the found image's cell (centred unless near an edge)
    visible = page.evaluate(f"""(() => {{ const m = postermap.state.manifest;
        const c = postermap.map.unproject([({target["col"]} + 0.5) * m.cellWidth,
                                           ({target["row"]} + 0.5) * m.cellHeight], m.maxZoom);
        return postermap.map.getBounds().contains(c)
               && postermap.map.getZoom() === m.maxZoom; }})()""")
    assert visible


def test_click_shows_details_with_the_full_image(page):
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#details:not([hidden])", timeout=5_000)
    page.wait_for_function("document.getElementById('detail-image').naturalWidth > 0")
    assert page.get_attribute("#detail-link", "href").startswith("images/")


OUTLINES = "document.querySelectorAll('path.leaflet-interactive').length"


def test_cluster_outlines_toggle(page):
    assert page.evaluate(OUTLINES) == 0
    page.check("#toggle-clusters")  # outlines.json is fetched on first use
    page.wait_for_function(f"{OUTLINES} > 0", timeout=5_000)
    page.uncheck("#toggle-clusters")
    page.wait_for_function(f"{OUTLINES} === 0", timeout=5_000)


FULLSCREEN = """document.fullscreenElement !== null
    || document.querySelector('.leaflet-pseudo-fullscreen') !== null"""


def test_fullscreen_toggles(page):
    button = ".leaflet-control-zoom-fullscreen"
    assert page.evaluate(FULLSCREEN) is False
    page.click(button)
    page.wait_for_function(FULLSCREEN, timeout=5_000)
    assert page.get_attribute(button, "aria-pressed") == "true"
    page.click(button)
    page.wait_for_function(f"!({FULLSCREEN})", timeout=5_000)
    assert page.get_attribute(button, "aria-pressed") == "false"


def test_cluster_panel_lists_clusters_and_moves_the_view(page):
    items = page.locator("#cluster-list li")
    assert items.count() == page.evaluate("postermap.state.manifest.clusters.length") > 0
    before = page.evaluate(
        "[postermap.map.getCenter().lat, postermap.map.getCenter().lng, postermap.map.getZoom()]"
    )
    items.nth(0).locator(".name").click()
    page.wait_for_timeout(1000)
    after = page.evaluate(
        "[postermap.map.getCenter().lat, postermap.map.getCenter().lng, postermap.map.getZoom()]"
    )
    assert after != before
    assert "active" in items.nth(0).get_attribute("class")
    page.wait_for_function("!!postermap.state.highlight", timeout=5_000)  # its outline
    items.nth(0).locator(".gallery-button").click()
    page.wait_for_selector("#gallery:not([hidden]) #gallery-grid img", timeout=5_000)
    size = page.evaluate("postermap.state.manifest.clusters[0].size")
    assert page.locator("#gallery-grid img").count() == min(size, 400)


def test_more_like_this_shows_neighbours_of_a_clicked_image(page):
    box = page.locator("#map").bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_selector("#similar-grid img", timeout=5_000)
    assert page.locator("#similar-grid img").count() == 20
    page.wait_for_function("document.querySelector('#similar-grid img').naturalWidth > 0")
    first = page.locator("#similar-grid img").first
    index = int(first.get_attribute("data-index"))
    first.click()
    page.wait_for_function(
        f"document.getElementById('details').dataset.index == '{index}'", timeout=5_000
    )


def test_a_cell_after_a_hole_shows_its_own_image(page, emoji_run):
    """With empty cells inside the grid, hovering and clicking the cell right after one
    must show that cell's image (the occupancy bits and the prefix count in the page)."""
    ws = Workspace(emoji_run["workspace"])
    manifest = json.loads((ws.site_dir / "data" / "manifest.json").read_text())
    cols, total = manifest["cols"], manifest["rows"] * manifest["cols"]
    assert manifest["holes"] > 0, "the test run must have empty cells"
    bits = np.unpackbits(
        np.frombuffer((ws.site_dir / "data" / "cells.bin").read_bytes(), np.uint8),
        bitorder="little",
    )[:total]
    hole = next(c for c in range(total - 1) if not bits[c] and bits[c + 1 :].any())
    after = hole + 1 + int(np.argmax(bits[hole + 1 :]))
    by_cell = {
        r["row"] * cols + r["col"]: r
        for r in pq.read_table(ws.catalog_path).to_pylist()
        if r["row"] is not None
    }
    expected = by_cell[after]["title"]

    def point(cell: int) -> dict:
        return page.evaluate(f"""(() => {{ const m = postermap.state.manifest, map = postermap.map;
            const c = map.unproject([({cell % cols} + 0.5) * m.cellWidth,
                                     ({cell // cols} + 0.5) * m.cellHeight], m.maxZoom);
            map.setView(c, m.maxZoom, {{ animate: false }});
            const p = map.latLngToContainerPoint(c);
            return {{ x: p.x, y: p.y }}; }})()""")

    box = page.locator("#map").bounding_box()
    p = point(hole)
    page.mouse.move(box["x"] + p["x"], box["y"] + p["y"])
    page.wait_for_timeout(300)
    assert page.evaluate("document.getElementById('hover').hidden")  # nothing in a hole
    p = point(after)
    page.mouse.move(box["x"] + p["x"], box["y"] + p["y"])
    page.wait_for_selector("#hover:not([hidden])", timeout=5_000)
    assert page.inner_text("#hover") == expected
    page.mouse.click(box["x"] + p["x"], box["y"] + p["y"])
    page.wait_for_selector("#details:not([hidden])", timeout=5_000)
    assert page.inner_text("#detail-title") == expected
