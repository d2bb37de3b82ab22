"""The viewer of a built workspace in Chromium: first paint, pan, zoom, search, JSON sizes.

    python -m benchmarks.viewer WORKSPACE

Serves WORKSPACE/site on 127.0.0.1, opens it in Debian's chromium (Playwright, headless)
and measures, inside the page (performance.now()):

* first_tile_ms: navigation start to the first tile image loaded;
* upfront_json: every JSON file fetched before any interaction, with its size;
* zoom_in_ms, pan_ms, full_zoom_ms: a jump to the middle of the mosaic two levels above
  full resolution, a pan by 1600x1000 px there, a jump to full resolution, each until every
  visible tile has loaded (tiles_missing counts tiles that failed or did not arrive);
* search_first_ms: the first search (fetches the search index), search_ms: a second query
  for another title (index loaded; includes fetching the item shards of the hits).

Every figure is checked for sanity (tiles really loaded, the searched title found), so a
broken viewer fails the benchmark instead of producing a fast number. Used by scale.py.

``--explore`` (also ``measure_explore``) measures the exploring features (#16) in a fresh
page each:

* upfront_bytes: bytes fetched before any interaction, per file type (json, bin, jpg, js,
  css): the facets' values, picture classes, other arrangements and the WordNet table must
  not be among them;
* filter_first_ms / filter_ms: a brush over the middle of the first year or number facet
  (or the first chip of a category) until the mosaic's overlay is repainted, the first
  time (fetches every facet's values) and again with another range; filter_compute_ms:
  the page's own time to recompute the mask and every facet's counts and paint;
* link_restore_ms: navigation start to every part of a copied link applied (view,
  selected image, filter, search, a box selection) in a new page;
* select_ms, export_csv_ms, export_toml_ms: a box of ~5,000 images taken as the selection,
  then exported as CSV and as a clusters.toml section (fetching the item shards);
* concept_search_ms: "dog", whose classes fetch their picture-class files;
* arrangement_ms: switching to the first other arrangement until its tiles have loaded;
* bytes_on_first_use: per feature, the bytes each one fetched.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

from postermap.serve import make_server
from tests.chromium import launch

# Resolves when the tile layer has nothing left to load (Leaflet's isLoading(), checked
# from the second animation frame on, after the layer has created the new view's tiles),
# with the time taken, how many tiles failed and how many are in the view; gives up
# after 30 s with what it has.
ALL_TILES_LOADED = """() => new Promise((resolve) => {
  let layer = null;
  postermap.map.eachLayer((l) => { if (l instanceof L.TileLayer) layer = l; });
  const t0 = performance.now();
  let frames = 0;
  const check = () => {
    frames += 1;
    const tiles = [...document.querySelectorAll('img.leaflet-tile')];
    if ((frames > 2 && !layer.isLoading()) || performance.now() - t0 > 30000)
      resolve([performance.now() - t0, tiles.filter((t) => !t.complete || !t.naturalWidth)
                                            .length, tiles.length]);
    else requestAnimationFrame(check);
  };
  requestAnimationFrame(check);
})"""

# Jump (no animation) to the middle of the mosaic, ``levels_up`` zoom levels above full
# resolution.
CENTRE_AT = """(levelsUp) => {
  const m = postermap.state.manifest, map = postermap.map;
  const centre = map.unproject([m.width / 2, m.height / 2], m.maxZoom);
  map.setView(centre, Math.max(0, m.maxZoom - levelsUp), {animate: false});
}"""

SEARCH = """async (query) => {
  const t0 = performance.now();
  const hits = await postermap.runSearch(query);
  return [performance.now() - t0, hits.length];
}"""


def measure_viewer(site: Path) -> dict:
    """Figures for the site at ``site`` (see the module docstring)."""
    from playwright.sync_api import sync_playwright

    server = make_server(site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    manifest = json.loads((site / "data" / "manifest.json").read_text())
    items = json.loads((site / "data" / "items" / "00000.json").read_text())
    last = json.loads(sorted((site / "data" / "items").glob("*.json"))[-1].read_text())
    try:
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(url)
            first_tile = page.wait_for_function(
                "() => document.querySelector('img.leaflet-tile-loaded') ? "
                "performance.now() : false",
                polling="raf",
                timeout=60_000,
            ).json_value()
            page.wait_for_selector("body[data-ready=true]", timeout=60_000)
            page.evaluate(ALL_TILES_LOADED)
            upfront = page.evaluate("""performance.getEntriesByType('resource')
                .filter((e) => e.name.endsWith('.json'))
                .map((e) => [e.name.split('/').slice(-2).join('/'), e.encodedBodySize])""")
            page.evaluate(CENTRE_AT, 2)
            zoom_in = page.evaluate(ALL_TILES_LOADED)
            page.evaluate("postermap.map.panBy([1600, 1000], {animate: false})")
            pan = page.evaluate(ALL_TILES_LOADED)
            page.evaluate(CENTRE_AT, 0)
            zoom = page.evaluate(ALL_TILES_LOADED)
            first_query, second_query = items[len(items) // 2]["title"], last[-1]["title"]
            search_first, hits_first = page.evaluate(SEARCH, first_query)
            search, hits = page.evaluate(SEARCH, second_query)
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    if errors:
        raise RuntimeError(f"page errors: {errors}")
    if hits_first < 1 or hits < 1:
        raise RuntimeError(f"search found nothing for {first_query!r} / {second_query!r}")
    return {
        "images": manifest["count"],
        "first_tile_ms": round(first_tile),
        "upfront_json": upfront,
        "upfront_json_max_mb": round(max(size for _, size in upfront) / 1e6, 2),
        "zoom_in_ms": round(zoom_in[0]),
        "pan_ms": round(pan[0]),
        "full_zoom_ms": round(zoom[0]),
        "tiles_missing": zoom_in[1] + pan[1] + zoom[1],
        "tiles_shown": zoom_in[2] + pan[2] + zoom[2],
        "search_first_ms": round(search_first),
        "search_ms": round(search, 1),
        "search_hits": hits,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workspace", type=Path)
    parser.add_argument("--explore", action="store_true", help="also measure_explore")
    parser.add_argument("--site", action="store_true", help="WORKSPACE is a site folder")
    parser.add_argument("--out", help="also write benchmarks/results/OUT")
    args = parser.parse_args()
    site = args.workspace if args.site else args.workspace / "site"
    result = measure_viewer(site)
    if args.explore:
        result["explore"] = measure_explore(site)
    if args.out:
        from benchmarks.common import write_result

        write_result(args.out, {"site": str(site), **result})
    json.dump(result, sys.stdout, indent=1)
    print()


def _bytes_by_type(entries: list[list]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, size in entries:
        kind = name.rsplit(".", 1)[-1] if "." in name.rsplit("/", 1)[-1] else "other"
        out[kind] = out.get(kind, 0) + int(size)
    return out


RESOURCES = """(since) => performance.getEntriesByType('resource')
    .filter((e) => e.startTime >= since)
    .map((e) => [new URL(e.name).pathname, e.encodedBodySize])"""

FILTER = """async (spec) => {
  const filter = spec.filter.values ? {values: new Set(spec.filter.values)} : spec.filter;
  const t0 = performance.now();
  await postermap.setFilter(spec.name, filter);
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  return [performance.now() - t0, postermap.state.lastUpdateMs, postermap.state.shown];
}"""

BOX = """(want) => {
  const a = postermap.state.arr;
  const rows = Math.max(1, Math.min(a.rows, Math.round(Math.sqrt(want * a.rows / a.cols))));
  const cols = Math.min(a.cols, Math.ceil(want / rows));
  const rect = [0, 0, rows - 1, cols - 1];
  const t0 = performance.now();
  postermap.pick({kind: 'box', arr: a.name, rect}, postermap.itemsInRect(a, rect));
  return [performance.now() - t0, postermap.state.picked.items.length, rect];
}"""

TIMED = """async (name) => { const t0 = performance.now();
  const out = await postermap[name](); return [performance.now() - t0, out.length]; }"""


def measure_explore(site: Path) -> dict:
    """Figures of the exploring features for the site at ``site`` (module docstring)."""
    from playwright.sync_api import sync_playwright

    server = make_server(site)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    manifest = json.loads((site / "data" / "manifest.json").read_text())
    facets = manifest.get("facets") or []
    ranged = [f for f in facets if f["kind"] in ("year", "number")]
    out: dict = {"images": manifest["count"], "facets": [f["name"] for f in facets]}
    first_use: dict[str, dict[str, int]] = {}
    try:
        with sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            # the default buffer keeps 250 entries: every tile and shard must be counted
            page.add_init_script("performance.setResourceTimingBufferSize(1000000)")
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(url)
            page.wait_for_selector("body[data-ready=true]", timeout=60_000)
            page.evaluate(ALL_TILES_LOADED)
            page.wait_for_timeout(300)
            out["upfront_bytes"] = _bytes_by_type(page.evaluate(RESOURCES, 0))
            since = page.evaluate("performance.now()")
            if ranged:
                f = ranged[0]
                bins = len(f["counts"])
                spec = {"name": f["name"], "filter": {"b0": bins // 3, "b1": bins // 2}}
                again = {"name": f["name"], "filter": {"b0": bins // 4, "b1": bins // 3}}
            elif facets:
                f = facets[0]
                spec = {"name": f["name"], "filter": {"values": [0]}}
                again = {"name": f["name"], "filter": {"values": [1]}}
            if facets:
                ms, compute, shown = page.evaluate(FILTER, spec)
                first_use["filter"] = _bytes_by_type(page.evaluate(RESOURCES, since))
                ms2, compute2, shown2 = page.evaluate(FILTER, again)
                if not (0 < shown < manifest["count"]):
                    raise RuntimeError(f"the filter showed {shown} of {manifest['count']}")
                out.update(
                    filter_first_ms=round(ms, 1),
                    filter_ms=round(ms2, 1),
                    filter_compute_ms=round(compute2, 1),
                    filter_shown=[shown, shown2],
                )
            since = page.evaluate("performance.now()")
            ms, picked, rect = page.evaluate(BOX, 5000)
            out.update(select_ms=round(ms, 1), selected=picked)
            ms, size = page.evaluate(TIMED, "selectionCSV")
            first_use["export"] = _bytes_by_type(page.evaluate(RESOURCES, since))
            out.update(export_csv_ms=round(ms), export_csv_bytes=size)
            ms, size = page.evaluate(TIMED, "selectionTOML")
            out.update(export_toml_ms=round(ms, 1), export_toml_bytes=size)
            csv_lines = page.evaluate("postermap.selectionCSV()").count("\n")
            if csv_lines != picked + 1:
                raise RuntimeError(f"CSV has {csv_lines} lines for {picked} images")
            since = page.evaluate("performance.now()")
            search = page.evaluate(SEARCH, "dog")
            first_use["concept_search"] = _bytes_by_type(page.evaluate(RESOURCES, since))
            out.update(concept_search_ms=round(search[0]), concept_search_listed=search[1])
            page.evaluate(f"postermap.select({manifest['count'] // 2}, false)")
            page.wait_for_selector("#details:not([hidden])")
            page.wait_for_timeout(300)
            link = page.evaluate("location.href")
            out["link"] = link.split("#", 1)[1][:300]
            if manifest.get("arrangements"):
                since = page.evaluate("performance.now()")
                name = manifest["arrangements"][0]["name"]
                t0 = page.evaluate("performance.now()")
                page.evaluate("(n) => postermap.switchArrangement(n).then(() => true)", name)
                done = page.evaluate(ALL_TILES_LOADED)
                out["arrangement_ms"] = round(page.evaluate("performance.now()") - t0)
                out["arrangement_tiles_missing"] = done[1]
                first_use["arrangement"] = _bytes_by_type(page.evaluate(RESOURCES, since))
                if page.evaluate("postermap.state.picked.items.length") != picked:
                    raise RuntimeError("the arrangement switch lost the selection")
            fresh = browser.new_page(viewport={"width": 1400, "height": 900})
            fresh.on("pageerror", lambda err: errors.append(str(err)))
            fresh.goto(link)
            fresh.wait_for_selector("body[data-restored=true][data-ready=true]", timeout=60_000)
            out["link_restore_ms"] = round(fresh.evaluate("postermap.state.restoredAt"))
            index = fresh.evaluate("document.getElementById('details').dataset.index")
            if index != str(manifest["count"] // 2):
                raise RuntimeError(f"the link restored image {index}")
            if fresh.evaluate("postermap.state.picked.items.length") != picked:
                raise RuntimeError("the link did not restore the selection")
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    if errors:
        raise RuntimeError(f"page errors: {errors}")
    out["bytes_on_first_use"] = first_use
    return out


if __name__ == "__main__":
    main()
