// postermap viewer: a Leaflet map over a deep-zoom pyramid of the image grid.
// Everything is loaded relative to this page, so the site works from any static host.
// Per-image details live in shards (data/items/NNNNN.json) fetched on demand; the search
// index is fetched on first use. Nothing large is loaded up front.
(function () {
  "use strict";

  const state = { manifest: null, shards: new Map(), search: null, outlines: null,
                  map: null, selection: null, clusterLayer: null, highlighted: null,
                  occupied: null, rankBefore: null };

  function fetchJSON(url) {
    return fetch(url).then((r) => {
      if (!r.ok) throw new Error(url + ": HTTP " + r.status);
      return r.json();
    });
  }

  // Item details by index, fetching its shard once.
  function item(index) {
    const size = state.manifest.shardSize;
    const shard = Math.floor(index / size);
    if (!state.shards.has(shard)) {
      const name = String(shard).padStart(5, "0");
      state.shards.set(shard, fetchJSON("data/items/" + name + ".json"));
    }
    return state.shards.get(shard).then((rows) => rows[index - shard * size]);
  }

  // Grid cell (row, col) <-> map coordinates at full resolution.
  function cellBounds(row, col) {
    const m = state.manifest, z = m.maxZoom, map = state.map;
    const w = m.cellWidth, h = m.cellHeight;
    return L.latLngBounds(map.unproject([col * w, (row + 1) * h], z),
                          map.unproject([(col + 1) * w, row * h], z));
  }

  // Items are numbered in row-major cell order. With empty cells, one bit per cell says
  // which are occupied, and the item in cell c is the number of occupied cells before it:
  // a running count per 32-cell word plus the bits before c in its word.
  function loadOccupancy(m) {
    if (!m.holes) return Promise.resolve();
    return fetch("data/cells.bin").then((r) => {
      if (!r.ok) throw new Error("data/cells.bin: HTTP " + r.status);
      return r.arrayBuffer();
    }).then((buffer) => {
      const bytes = new Uint8Array(buffer);
      const words = new Uint32Array(Math.ceil(m.rows * m.cols / 32));
      for (let i = 0; i < bytes.length; i++) words[i >> 2] |= bytes[i] << (8 * (i & 3));
      const before = new Int32Array(words.length + 1);
      for (let w = 0; w < words.length; w++) before[w + 1] = before[w] + popcount(words[w]);
      state.occupied = words;
      state.rankBefore = before;
    });
  }

  function popcount(x) {
    x -= (x >>> 1) & 0x55555555;
    x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
    return (((x + (x >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
  }

  function itemOfCell(cell) {
    if (!state.occupied) return cell < state.manifest.count ? cell : -1;
    const word = state.occupied[cell >>> 5], bit = cell & 31;
    if (!((word >>> bit) & 1)) return -1;  // an empty cell
    const below = bit === 0 ? 0 : popcount(word & (0xffffffff >>> (32 - bit)));
    return state.rankBefore[cell >>> 5] + below;
  }

  function cellAt(latlng) {
    const m = state.manifest;
    const p = state.map.project(latlng, m.maxZoom);
    const col = Math.floor(p.x / m.cellWidth), row = Math.floor(p.y / m.cellHeight);
    if (row < 0 || col < 0 || row >= m.rows || col >= m.cols) return -1;
    return itemOfCell(row * m.cols + col);
  }

  function showHover(index, point) {
    const box = document.getElementById("hover");
    if (index < 0) { box.hidden = true; return; }
    item(index).then((it) => {
      box.textContent = it.title;
      box.style.left = point.x + 16 + "px";
      box.style.top = point.y + 16 + "px";
      box.hidden = false;
      box.dataset.index = index;
    });
  }

  function select(index, fly) {
    return item(index).then((it) => {
      const bounds = cellBounds(it.row, it.col);
      if (state.selection) state.selection.remove();
      state.selection = L.rectangle(bounds, { color: "#fbbc04", weight: 3, fill: false })
        .addTo(state.map);
      if (fly) state.map.flyTo(bounds.getCenter(), state.manifest.maxZoom, { duration: 0.6 });
      const panel = document.getElementById("details");
      document.getElementById("detail-image").src = it.image;
      document.getElementById("detail-link").href = it.image;
      document.getElementById("detail-title").textContent = it.title;
      const dl = document.getElementById("detail-meta");
      dl.replaceChildren();
      const rows = Object.assign({ file: it.file, cluster: it.cluster < 0 ? "none" :
        (it.clusterName || "Cluster " + it.cluster) }, it.meta);
      for (const [key, value] of Object.entries(rows)) {
        const dt = document.createElement("dt"); dt.textContent = key;
        const dd = document.createElement("dd"); dd.textContent = value;
        dl.append(dt, dd);
      }
      showSimilar(it);
      panel.hidden = false;
      panel.dataset.index = index;
      return it;
    });
  }

  function runSearch(query) {
    const list = document.getElementById("results");
    const status = document.getElementById("status");
    query = query.trim().toLowerCase();
    list.replaceChildren();
    if (!query) { status.textContent = ""; return Promise.resolve([]); }
    if (!state.search) {
      state.search = fetchJSON("data/search.json").then((rows) => rows.map((r) =>
        r.toLowerCase()));
    }
    return state.search.then((rows) => {
      const hits = [];
      for (let i = 0; i < rows.length && hits.length < 50; i++) {
        if (rows[i].includes(query)) hits.push(i);
      }
      status.textContent = hits.length ? hits.length + (hits.length === 50 ? "+" : "") +
        " match" + (hits.length === 1 ? "" : "es") : "no match";
      return Promise.all(hits.map(item)).then((items) => {
        items.forEach((it, k) => {
          const li = document.createElement("li");
          li.textContent = it.title;
          li.title = it.file;
          li.addEventListener("click", () => select(hits[k], true));
          list.append(li);
        });
        return hits;
      });
    });
  }

  // Thumbnails that select (and fly to) the image they show.
  function thumbnail(index, title) {
    const img = document.createElement("img");
    img.dataset.index = index;
    img.alt = title || "";
    item(index).then((it) => {
      img.src = it.thumb;
      img.title = it.title;
      img.classList.toggle("fill", !!it.fill);  // shaped like the cell: crop to fill it
    });
    img.addEventListener("click", () => select(index, true));
    return img;
  }

  function showSimilar(it) {
    const grid = document.getElementById("similar-grid");
    grid.replaceChildren(...it.similar.map(([index, score]) => {
      const img = thumbnail(index);
      img.dataset.score = score;
      return img;
    }));
  }

  // Outlines of all clusters, fetched on first use (a few MB at a million images).
  function outlines() {
    if (!state.outlines) state.outlines = fetchJSON("data/outlines.json");
    return state.outlines;
  }

  function toLatLngs(rings) {
    const m = state.manifest, z = m.maxZoom, map = state.map;
    return rings.map((ring) => ring.map(([r, c]) =>
      map.unproject([c * m.cellWidth, r * m.cellHeight], z)));
  }

  function highlightCluster(cluster) {
    const m = state.manifest, z = m.maxZoom, map = state.map;
    if (cluster.box) {
      const [r0, c0, r1, c1] = cluster.box;
      map.flyToBounds(L.latLngBounds(map.unproject([c0 * m.cellWidth, r1 * m.cellHeight], z),
                                     map.unproject([c1 * m.cellWidth, r0 * m.cellHeight], z)),
                      { duration: 0.6, padding: [20, 20] });
    }
    document.querySelectorAll("#cluster-list li").forEach((li) =>
      li.classList.toggle("active", Number(li.dataset.cluster) === cluster.id));
    state.highlighted = cluster.id;
    return outlines().then((all) => {
      if (state.highlighted !== cluster.id) return;  // another cluster was picked meanwhile
      if (state.highlight) state.highlight.remove();
      state.highlight = L.polygon(toLatLngs(all[cluster.id] || []), { color: "#fbbc04",
        weight: 3, fillOpacity: 0.05, interactive: false }).addTo(map);
    });
  }

  function openGallery(cluster) {
    fetchJSON("data/clusters/" + cluster.id + ".json").then((members) => {
      document.getElementById("gallery-title").textContent =
        cluster.label + " (" + cluster.size + " images)";
      const grid = document.getElementById("gallery-grid");
      grid.replaceChildren(...members.slice(0, 400).map((index) => thumbnail(index)));
      document.getElementById("gallery").hidden = false;
    });
  }

  function clusterPanel() {
    const list = document.getElementById("cluster-list");
    document.getElementById("cluster-count").textContent =
      "(" + state.manifest.clusters.length + ")";
    for (const cluster of state.manifest.clusters) {
      const li = document.createElement("li");
      li.dataset.cluster = cluster.id;
      li.title = "named from " + cluster.provenance + "; score " + cluster.score;
      const name = document.createElement("span");
      name.className = "name";
      name.textContent = cluster.label + " ";
      const size = document.createElement("span");
      size.className = "size";
      size.textContent = cluster.size;
      const button = document.createElement("button");
      button.type = "button";
      button.className = "gallery-button";
      button.textContent = "gallery";
      button.addEventListener("click", (e) => { e.stopPropagation(); openGallery(cluster); });
      li.append(name, size, button);
      li.addEventListener("click", () => highlightCluster(cluster));
      list.append(li);
    }
  }

  function clusterLayer(all) {
    const layer = L.layerGroup();
    for (const c of state.manifest.clusters) {
      const rings = all[c.id];
      if (!rings || !rings.length) continue;
      L.polygon(toLatLngs(rings), { color: "#8ab4f8", weight: 2, fillOpacity: 0.08 })
        .bindTooltip(c.label + " (" + c.size + ")", { sticky: true })
        .addTo(layer);
    }
    return layer;
  }

  function init(manifest) {
    state.manifest = manifest;
    document.documentElement.style.setProperty("--cell-aspect",
      manifest.cellWidth + " / " + manifest.cellHeight);
    const z = manifest.maxZoom;
    const map = L.map("map", { crs: L.CRS.Simple, minZoom: 0, maxZoom: z + 2, zoomSnap: 0.25,
      fullscreenControl: true, attributionControl: false });
    state.map = map;
    const bounds = L.latLngBounds(map.unproject([0, manifest.height], z),
                                  map.unproject([manifest.width, 0], z));
    L.tileLayer("tiles/{z}/{y}/{x}.jpg", { tileSize: manifest.tileSize, minZoom: 0,
      maxNativeZoom: z, maxZoom: z + 2, noWrap: true, bounds: bounds }).addTo(map);
    // The map is about as wide as a screen, so the first view fits it to the window
    // (the panels float over its edges) rather than shrinking it beside the toolbar.
    map.fitBounds(bounds, { padding: [8, 8] });
    map.setMaxBounds(bounds.pad(0.5));

    map.on("mousemove", (e) => showHover(cellAt(e.latlng), e.containerPoint));
    map.on("mouseout", () => { document.getElementById("hover").hidden = true; });
    map.on("click", (e) => { const i = cellAt(e.latlng); if (i >= 0) select(i, false); });

    let timer = null;
    const input = document.getElementById("search");
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => runSearch(input.value), 150);
    });
    input.addEventListener("keydown", (e) => {
      if (e.key !== "Enter") return;
      clearTimeout(timer);
      runSearch(input.value).then((hits) => { if (hits.length) select(hits[0], true); });
    });
    document.getElementById("toggle-clusters").addEventListener("change", (e) => {
      outlines().then((all) => {
        if (!state.clusterLayer) state.clusterLayer = clusterLayer(all);
        if (e.target.checked) state.clusterLayer.addTo(map); else state.clusterLayer.remove();
      });
    });
    document.getElementById("close-details").addEventListener("click", () => {
      document.getElementById("details").hidden = true;
    });
    document.getElementById("close-gallery").addEventListener("click", () => {
      document.getElementById("gallery").hidden = true;
    });
    clusterPanel();
    document.getElementById("status").textContent =
      manifest.count.toLocaleString() + " images, " + manifest.clusters.length + " clusters";
    window.postermap = { map, state, select, runSearch, highlightCluster, openGallery };
    document.body.dataset.ready = "true";
  }

  fetchJSON("data/manifest.json")
    .then((m) => loadOccupancy(m).then(() => init(m)))
    .catch((err) => {
      document.getElementById("status").textContent = "Could not load the map: " + err.message;
      throw err;
    });
})();
