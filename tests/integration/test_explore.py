"""Exploring the map in Debian chromium (#16): facets and the timeline, the state in the
link, selections and their export, the year wall, search by what is pictured, keyboard,
touch and the minimap. Two small real runs: posters with ``title, year, genre``
(arranged by year too) and untitled pictures (tests/posterset.py, Tux Paint's stamps)."""

from __future__ import annotations

import csv
import io
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from postermap.cli import main
from postermap.serve import make_server
from postermap.site import link_key
from postermap.workspace import Workspace
from tests.integration.test_viewer import browser  # noqa: F401 (fixture)
from tests.posterset import make_posterset

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def _run(source: Path, workspace: Path, *extra: str) -> None:
    args = ["run", str(source), "-o", str(workspace), "--cell-size", "64", *extra]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def posters(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("posters")
    rows = make_posterset(base / "images")
    _run(base / "images", base / "ws", "--arrange", "year")
    return {"source": base / "images", "ws": Workspace(base / "ws"), "rows": rows}


@pytest.fixture(scope="module")
def untitled(tmp_path_factory) -> dict:
    base = tmp_path_factory.mktemp("untitled")
    rows = make_posterset(base / "images", untitled=True)
    _run(base / "images", base / "ws")
    return {"ws": Workspace(base / "ws"), "rows": rows}


def _serve(site: Path):
    server = make_server(site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


@pytest.fixture(scope="module")
def poster_url(posters):
    server, url = _serve(posters["ws"].site_dir)
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def untitled_url(untitled):
    server, url = _serve(untitled["ws"].site_dir)
    yield url
    server.shutdown()
    server.server_close()


def _open(browser, url: str, **context):  # noqa: F811
    ctx = browser.new_context(
        viewport={"width": 1200, "height": 900}, accept_downloads=True, **context
    )
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]", timeout=20_000)
    return ctx, page, errors


@pytest.fixture
def page(browser, poster_url):  # noqa: F811
    ctx, page, errors = _open(browser, poster_url)
    yield page
    ctx.close()
    assert not errors, errors


def _catalog(ws: Workspace) -> list[dict]:
    rows = [r for r in pq.read_table(ws.catalog_path).to_pylist() if r["row"] is not None]
    return sorted(rows, key=lambda r: (r["row"], r["col"]))


def _manifest(ws: Workspace) -> dict:
    return json.loads((ws.site_dir / "data" / "manifest.json").read_text())


POINT = """([r, c]) => { const m = postermap.state.manifest, a = postermap.state.arr;
  const ll = postermap.map.unproject([(c + 0.5) * m.cellWidth, (r + 0.5) * m.cellHeight],
                                     a.maxZoom);
  const p = postermap.map.latLngToContainerPoint(ll); return [p.x, p.y]; }"""

CENTRE = """(() => { const map = postermap.map, p = map.project(map.getCenter());
  return [p.x, p.y, map.getZoom()]; })()"""

OVERLAY = """() => { const c = document.querySelector('canvas.cell-overlay');
  if (!c) return null;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let dimmed = 0; for (let k = 3; k < d.length; k += 4) if (d[k] > 0) dimmed++;
  return [c.width, c.height, dimmed]; }"""


def _brush(page, name: str, start: float, end: float) -> None:
    svg = page.locator(f'.facet[data-facet="{name}"] svg')
    box = svg.bounding_box()
    y = box["y"] + 20
    page.mouse.move(box["x"] + box["width"] * start, y)
    page.mouse.down()
    page.mouse.move(box["x"] + box["width"] * end, y, steps=5)
    page.mouse.up()


def test_year_brush_reduces_the_count_and_dims_the_mosaic(page, posters):
    ws = posters["ws"]
    items = _catalog(ws)
    manifest = _manifest(ws)
    year = next(f for f in manifest["facets"] if f["name"] == "year")
    genre = next(f for f in manifest["facets"] if f["name"] == "genre")
    assert year["kind"] == "year" and genre["kind"] == "category" and genre["multi"]
    assert page.evaluate(OVERLAY) is None  # nothing dimmed before a filter
    _brush(page, "year", 0.3, 0.6)
    page.wait_for_selector("#shown:not([hidden])", timeout=5_000)
    b0, b1 = (
        page.evaluate("[...postermap.state.filters.values()][0].b0"),
        page.evaluate("[...postermap.state.filters.values()][0].b1"),
    )
    lo, hi = year["edges"][b0], year["edges"][b1 + 1]
    inside = [r for r in items if lo <= int(r["year"]) < hi]
    shown = int(page.inner_text("#shown-count").replace(",", ""))
    assert 0 < shown == len(inside) < len(items)
    cols, rows, dimmed = page.evaluate(OVERLAY)
    assert (cols, rows) == (manifest["cols"], manifest["rows"])
    assert dimmed == len(items) - shown  # one dark pixel per image filtered out
    # the other facet's counts follow the filter
    drama = genre["values"].index("Drama")
    chip = page.inner_text(f'.facet[data-facet="genre"] .chip[data-value="{drama}"]')
    assert chip.endswith(" " + str(sum("Drama" in r["genre"].split("|") for r in inside)))
    # and the facets combine: a genre chip narrows the timeline's result further
    page.click(f'.facet[data-facet="genre"] .chip[data-value="{drama}"]')
    page.wait_for_function(f"postermap.state.shown < {shown}", timeout=5_000)
    both = [r for r in inside if "Drama" in r["genre"].split("|")]
    assert page.evaluate("postermap.state.shown") == len(both)
    assert "year" in page.evaluate("location.hash")


def test_a_copied_link_restores_the_image_zoom_and_filters(browser, page, poster_url, posters):  # noqa: F811
    items = _catalog(posters["ws"])
    _brush(page, "year", 0.0, 0.7)
    page.wait_for_selector("#shown:not([hidden])", timeout=5_000)
    target = len(items) // 3
    page.evaluate(f"postermap.select({target}, false)")
    page.wait_for_selector("#details:not([hidden])", timeout=5_000)
    page.evaluate("""(() => { const m = postermap.state.manifest;
        postermap.map.setView(postermap.map.unproject([m.width * 0.37, m.height * 0.61],
                              m.maxZoom), m.maxZoom - 0.75, {animate: false}); })()""")
    page.wait_for_timeout(400)  # the link follows the view after it settles
    link = page.evaluate("location.href")
    assert "i=" in link and "v=" in link and "f=" in link
    # the centre in screen pixels at the current zoom, and the zoom
    view = page.evaluate(CENTRE)
    shown = page.evaluate("postermap.state.shown")
    # the image is named by its id, which add and rebuilds keep (item numbers change)
    assert f"i={link_key(items[target]['id'])}" in link
    ctx, fresh, errors = _open(browser, link)
    fresh.wait_for_selector("body[data-restored=true]", timeout=10_000)
    assert fresh.evaluate("document.getElementById('details').dataset.index") == str(target)
    assert fresh.inner_text("#detail-title") == items[target]["title"]
    restored = fresh.evaluate(CENTRE)
    assert restored[2] == view[2]
    assert restored[0] == pytest.approx(view[0], abs=0.05)
    assert restored[1] == pytest.approx(view[1], abs=0.05)
    assert fresh.evaluate("postermap.state.shown") == shown
    ctx.close()
    assert not errors, errors


def test_a_link_finds_its_image_by_id_and_old_links_still_work(browser, poster_url, posters):  # noqa: F811
    """A link's image is found by id wherever the image now is (after `add` its item
    number is another); links written with item numbers keep working."""
    items = _catalog(posters["ws"])
    for target in (1, len(items) - 2):
        for key in (link_key(items[target]["id"]).upper(), str(target)):
            ctx, fresh, errors = _open(browser, f"{poster_url}#i={key}")
            fresh.wait_for_selector("body[data-restored=true]", timeout=10_000)
            index = fresh.evaluate("document.getElementById('details').dataset.index")
            assert index == str(target), (key, index)
            assert fresh.inner_text("#detail-title") == items[target]["title"]
            ctx.close()
            assert not errors, errors


def test_back_and_forward_move_through_selected_images(page):
    page.evaluate("postermap.select(3, false)")
    page.wait_for_function("document.getElementById('details').dataset.index === '3'")
    page.evaluate("postermap.select(7, false)")
    page.wait_for_function("document.getElementById('details').dataset.index === '7'")
    page.go_back()
    page.wait_for_function("document.getElementById('details').dataset.index === '3'")
    page.go_forward()
    page.wait_for_function("document.getElementById('details').dataset.index === '7'")


def _box(page, start: tuple[int, int], end: tuple[int, int]) -> None:
    a, b = page.evaluate(POINT, list(start)), page.evaluate(POINT, list(end))
    page.keyboard.down("Shift")
    page.mouse.move(*a)
    page.mouse.down()
    page.mouse.move(*b, steps=6)
    page.mouse.up()
    page.keyboard.up("Shift")


def _zoom_on_cells(page) -> None:
    page.evaluate("""(() => { const m = postermap.state.manifest;
        postermap.map.setView(postermap.map.unproject([m.width * 0.45, m.height * 0.5],
                              m.maxZoom), m.maxZoom - 1, {animate: false}); })()""")


def test_a_box_selection_exports_a_csv_with_the_ids_inside_it(page, posters):
    items = _catalog(posters["ws"])
    _zoom_on_cells(page)
    _box(page, (1, 3), (3, 6))
    page.wait_for_selector("#selection:not([hidden])", timeout=5_000)
    assert page.evaluate("postermap.state.picked.def.rect") == [1, 3, 3, 6]
    expected = {r["id"] for r in items if 1 <= r["row"] <= 3 and 3 <= r["col"] <= 6}
    assert page.inner_text("#selection-count") == str(len(expected))
    with page.expect_download() as download:
        page.click("#export-csv")
    text = Path(download.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert {r["id"] for r in rows} == expected
    assert {"id", "title", "path", "year", "genre"} <= set(rows[0])
    by_id = {r["id"]: r for r in items}
    assert all(r["title"] == by_id[r["id"]]["title"] for r in rows)
    assert all(r["year"] == by_id[r["id"]]["year"] for r in rows)
    # the selection is in the link, and Esc clears it
    assert "s=box" in page.evaluate("location.hash")
    page.keyboard.press("Escape")
    page.wait_for_selector("#selection", state="hidden", timeout=5_000)


def test_a_lasso_selects_the_cells_it_surrounds(page):
    _zoom_on_cells(page)
    corners = [(1, 2), (1, 7), (4, 7), (4, 2)]
    points = [page.evaluate(POINT, list(c)) for c in corners]
    page.keyboard.down("Shift")
    page.keyboard.down("Alt")
    page.mouse.move(*points[0])
    page.mouse.down()
    for p in points[1:] + points[:1]:
        page.mouse.move(*p, steps=4)
    page.mouse.up()
    page.keyboard.up("Alt")
    page.keyboard.up("Shift")
    page.wait_for_selector("#selection:not([hidden])", timeout=5_000)
    assert page.evaluate("postermap.state.picked.def.kind") == "lasso"
    inside = page.evaluate("""(() => { const a = postermap.state.arr;
        return [...postermap.state.picked.items].map((i) => {
            const c = a.cellOf(i); return [Math.floor(c / a.cols), c % a.cols]; }); })()""")
    assert inside and all(1 <= r <= 4 and 2 <= c <= 7 for r, c in inside)
    assert [2, 4] in inside  # well inside the polygon


def test_an_exported_trope_is_accepted_by_postermap_run(page, posters, tmp_path):
    _zoom_on_cells(page)
    _box(page, (0, 0), (1, 2))
    page.wait_for_selector("#selection:not([hidden])", timeout=5_000)
    ids = page.evaluate("postermap.selectionCSV()").splitlines()[1:]
    ids = {line.split(",")[0] for line in ids}
    with page.expect_download() as download:
        page.click("#export-toml")
    section = Path(download.value.path()).read_text()
    assert "[clusters.1000000]" in section
    ws = Workspace(tmp_path / "ws")
    shutil.copytree(posters["ws"].root, ws.root, ignore=shutil.ignore_patterns(".lock"))
    with open(ws.curation_path, "a") as fh:
        fh.write("\n" + section)
    _run(posters["source"], ws.root, "--arrange", "year")
    labels = {r["id"]: r["cluster"] for r in _catalog(ws)}
    assert {i for i, k in labels.items() if k == 1_000_000} == ids
    trope = next(c for c in _manifest(ws)["clusters"] if c["id"] == 1_000_000)
    assert trope["size"] == len(ids) and trope["label"] == "new trope 1"


def test_switching_to_the_year_wall_keeps_the_selection(page, posters):
    ws = posters["ws"]
    manifest = _manifest(ws)
    wall = manifest["arrangements"][0]
    assert wall["name"] == "year"
    _zoom_on_cells(page)
    _box(page, (1, 1), (2, 4))
    page.wait_for_selector("#selection:not([hidden])", timeout=5_000)
    picked = page.evaluate("[...postermap.state.picked.items]")
    page.evaluate(f"postermap.select({picked[0]}, false)")
    page.wait_for_selector("#details:not([hidden])")
    page.select_option("#arrangement", "year")
    page.wait_for_function("postermap.state.arr.name === 'year'", timeout=5_000)
    assert page.evaluate("[...postermap.state.picked.items]") == picked
    assert page.inner_text("#selection-count") == str(len(picked))
    assert page.evaluate("document.getElementById('details').dataset.index") == str(picked[0])
    cells = np.frombuffer((ws.site_dir / wall["cells"]).read_bytes(), "<i4")
    yellow = page.evaluate(OVERLAY)
    assert yellow[:2] == [wall["cols"], wall["rows"]] and yellow[2] == len(picked)
    cell = int(np.flatnonzero(cells == picked[0])[0])
    cursor = page.evaluate("""(() => { const b = postermap.state.cursor.getBounds(),
        m = postermap.state.manifest, a = postermap.state.arr;
        const p = postermap.map.project(b.getCenter(), a.maxZoom);
        return [Math.floor(p.y / m.cellHeight), Math.floor(p.x / m.cellWidth)]; })()""")
    assert cursor == [cell // wall["cols"], cell % wall["cols"]]
    # the wall's columns are the year's bins, each image in its own bin
    years = {r["id"]: int(r["year"]) for r in _catalog(ws)}
    id_of = [r["id"] for r in _catalog(ws)]
    for spec in wall["bins"]:
        lo = int(spec["label"][:4])
        block = cells.reshape(wall["rows"], wall["cols"])[
            :, spec["col"] : spec["col"] + spec["cols"]
        ]
        assert all(lo <= years[id_of[i]] for i in block[block >= 0])
    assert "a=year" in page.evaluate("location.hash")
    page.select_option("#arrangement", "similarity")
    page.wait_for_function("postermap.state.arr.name === 'similarity'", timeout=5_000)
    assert page.evaluate("[...postermap.state.picked.items]") == picked


def test_search_by_picture_finds_a_horse_in_an_untitled_set(browser, untitled_url, untitled):  # noqa: F811
    titles = {r["title"] for r in _catalog(untitled["ws"])}
    assert not any("horse" in t.lower() for t in titles)  # only the picture can tell
    horse = next(r["filename"] for r in untitled["rows"] if r["shows"] == "horse")
    ctx, page, errors = _open(browser, untitled_url)
    page.fill("#search", "horse")
    page.wait_for_selector("#results li", timeout=10_000)
    first = page.locator("#results li").first
    assert "sorrel" in first.get_attribute("data-why")  # says why it matched
    assert "looks like" in first.inner_text()
    first.click()
    page.wait_for_selector("#details:not([hidden])", timeout=5_000)
    assert page.evaluate("document.getElementById('detail-meta').innerText").count(horse) == 1
    ctx.close()
    assert not errors, errors


def test_keyboard_moves_the_selected_cell_enter_opens_esc_closes(page, posters):
    items = _catalog(posters["ws"])
    at = {(r["row"], r["col"]): k for k, r in enumerate(items)}
    start = next(k for k, r in enumerate(items) if (r["row"], r["col"] + 1) in at)
    page.evaluate(f"postermap.select({start}, false)")
    page.wait_for_selector("#details:not([hidden])")
    page.locator("#map").focus()
    page.keyboard.press("Escape")
    page.wait_for_selector("#details", state="hidden")
    page.evaluate(f"postermap.select({start}, false, {{panel: false}})")
    page.keyboard.press("ArrowRight")
    right = at[(items[start]["row"], items[start]["col"] + 1)]
    page.wait_for_function(f"postermap.state.current === {right}", timeout=5_000)
    assert page.evaluate("document.getElementById('details').hidden")
    page.keyboard.press("Enter")
    page.wait_for_selector("#details:not([hidden])", timeout=5_000)
    assert page.inner_text("#detail-title") == items[right]["title"]
    page.keyboard.press("ArrowDown")
    below = [
        k
        for k, r in enumerate(items)
        if r["col"] == items[right]["col"] and r["row"] > items[right]["row"]
    ]
    if below:
        page.wait_for_function(f"postermap.state.current === {below[0]}", timeout=5_000)
        assert page.inner_text("#detail-title") == items[below[0]]["title"]


def test_nothing_new_is_loaded_before_first_use(page):
    page.wait_for_timeout(500)
    fetched = page.evaluate(
        "performance.getEntriesByType('resource').map((e) => new URL(e.name).pathname)"
    )
    lazy = (
        "/data/facets/",
        "/data/classes/",
        "/arrangements/",
        "/data/rows/",
        "imagenet-concepts",
        "/data/items/",
        "/data/search.json",
        "/data/outlines.json",
        "/data/clusters/",
    )
    assert not [u for u in fetched if any(part in u for part in lazy)]
    assert "/data/manifest.json" in fetched


def test_minimap_shows_the_map_and_the_view(page):
    page.wait_for_selector(".leaflet-control-minimap img.leaflet-tile-loaded", timeout=10_000)
    assert page.locator(".leaflet-control-minimap path").count() >= 1  # the view's rectangle


def test_pinch_zooms_the_map(browser, poster_url):  # noqa: F811
    ctx, page, errors = _open(browser, poster_url, has_touch=True, is_mobile=False)
    before = page.evaluate("postermap.map.getZoom()")
    cdp = ctx.new_cdp_session(page)
    cx, cy = 500, 450

    def touch(kind: str, spread: float) -> None:
        points = [{"x": cx - spread, "y": cy, "id": 1}, {"x": cx + spread, "y": cy, "id": 2}]
        cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": points})

    touch("touchStart", 40)
    for spread in range(50, 260, 15):
        touch("touchMove", spread)
        page.wait_for_timeout(16)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    page.wait_for_function(f"postermap.map.getZoom() > {before}", timeout=5_000)
    ctx.close()
    assert not errors, errors


# -- the default set (Noto emoji): its one facet is `category`, and a wall by category --


@pytest.fixture(scope="module")
def emoji(emoji_run, tmp_path_factory) -> dict:
    """A copy of the shared emoji run with a second arrangement by category."""
    ws = Workspace(tmp_path_factory.mktemp("emoji-arranged") / "ws")
    shutil.copytree(emoji_run["workspace"], ws.root, ignore=shutil.ignore_patterns(".lock"))
    result = CliRunner().invoke(
        main, ["tiles", str(ws.root), "--arrange", "category"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    server, url = _serve(ws.site_dir)
    yield {"ws": ws, "url": url}
    server.shutdown()
    server.server_close()


@pytest.fixture
def emoji_page(browser, emoji):  # noqa: F811
    ctx, page, errors = _open(browser, emoji["url"])
    yield page
    ctx.close()
    assert not errors, errors


def test_default_set_category_chips_filter_and_dim(emoji_page, emoji):
    items = _catalog(emoji["ws"])
    facet = next(f for f in _manifest(emoji["ws"])["facets"] if f["name"] == "category")
    value = facet["values"][1]
    emoji_page.click('.facet[data-facet="category"] .chip[data-value="1"]')
    emoji_page.wait_for_selector("#shown:not([hidden])", timeout=5_000)
    expected = sum(r["category"] == value for r in items)
    assert emoji_page.evaluate("postermap.state.shown") == expected
    assert emoji_page.evaluate(OVERLAY)[2] == len(items) - expected


def test_default_set_link_restores_the_selected_image(browser, emoji_page, emoji):  # noqa: F811
    emoji_page.click('.facet[data-facet="category"] .chip[data-value="0"]')
    emoji_page.evaluate("postermap.select(12, true)")
    emoji_page.wait_for_timeout(1200)  # the flight, then the link follows the view
    link = emoji_page.evaluate("location.href")
    view = emoji_page.evaluate(CENTRE)
    ctx, fresh, errors = _open(browser, link)
    fresh.wait_for_selector("body[data-restored=true]", timeout=10_000)
    assert fresh.evaluate("document.getElementById('details').dataset.index") == "12"
    assert fresh.evaluate(CENTRE) == pytest.approx(view, abs=0.05)
    assert fresh.evaluate("postermap.state.shown") == emoji_page.evaluate("postermap.state.shown")
    ctx.close()
    assert not errors, errors


def test_default_set_box_selection_csv_and_wall_by_category(emoji_page, emoji):
    items = _catalog(emoji["ws"])
    _zoom_on_cells(emoji_page)
    _box(emoji_page, (2, 2), (4, 6))
    emoji_page.wait_for_selector("#selection:not([hidden])", timeout=5_000)
    r0, c0, r1, c1 = emoji_page.evaluate("postermap.state.picked.def.rect")
    expected = {r["id"] for r in items if r0 <= r["row"] <= r1 and c0 <= r["col"] <= c1}
    text = emoji_page.evaluate("postermap.selectionCSV()")
    assert {row["id"] for row in csv.DictReader(io.StringIO(text))} == expected
    picked = emoji_page.evaluate("[...postermap.state.picked.items]")
    emoji_page.select_option("#arrangement", "category")
    emoji_page.wait_for_function("postermap.state.arr.name === 'category'", timeout=5_000)
    assert emoji_page.evaluate("[...postermap.state.picked.items]") == picked
    wall = _manifest(emoji["ws"])["arrangements"][0]
    assert emoji_page.evaluate(OVERLAY) == [wall["cols"], wall["rows"], len(picked)]


def test_an_open_cluster_combines_with_the_facets(page, posters):
    items = _catalog(posters["ws"])
    cluster = _manifest(posters["ws"])["clusters"][0]
    page.locator("#cluster-list li .name").first.click()
    page.wait_for_function(f"postermap.state.shown === {cluster['size']}", timeout=5_000)
    members = [r for r in items if r["cluster"] == cluster["id"]]
    facet = next(f for f in _manifest(posters["ws"])["facets"] if f["name"] == "genre")
    for k, value in enumerate(facet["values"]):
        chip = page.inner_text(f'.facet[data-facet="genre"] .chip[data-value="{k}"]')
        assert chip == f"{value} {sum(value in r['genre'].split('|') for r in members)}"
    assert f"c={cluster['id']}" in page.evaluate("location.hash")
    page.click("#close-cluster")
    page.wait_for_selector("#shown", state="hidden", timeout=5_000)
