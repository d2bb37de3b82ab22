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
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path

from postermap.serve import make_server

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]

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
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
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
    args = parser.parse_args()
    result = measure_viewer(args.workspace / "site")
    json.dump(result, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
