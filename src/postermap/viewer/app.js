// postermap viewer: a Leaflet map over a deep-zoom pyramid of the image grid.
// Everything is loaded relative to this page, so the site works from any static host.
// Only the manifest is loaded up front; per-image details (shards of data/items), the
// search index, facet values (data/facets, typed arrays), picture classes
// (data/classes), other arrangements' cells and the cluster outlines are fetched on
// first use. The view, selected image, open cluster, search, filters, selection and
// arrangement live in location.hash, so a copied link restores them.
(function () {
  "use strict";

  const state = {
    manifest: null, shards: new Map(), search: null, outlines: null, map: null,
    ids: new Map(), idShards: new Map(),  // item number -> id as items load; id shards
    cursor: null, clusterLayer: null, highlighted: null, occupied: null, rankBefore: null,
    arr: null, arrangements: new Map(), tileLayer: null, overlay: null, labels: null,
    minimap: null,
    facetData: new Map(), filters: new Map(), fails: null, pass: null, shown: 0,
    facetCounts: new Map(),
    query: "", searchPass: null, conceptTable: null, classFiles: new Map(),
    clusterOpen: null, clusterPass: null, members: new Map(),
    current: -1, picked: null, pickedMask: null, tool: "box",
    restoring: false, restoredAt: null, lastHash: "",
  };
  const $ = (id) => document.getElementById(id);

  function fetchJSON(url) {
    return fetch(url).then((r) => {
      if (!r.ok) throw new Error(url + ": HTTP " + r.status);
      return r.json();
    });
  }

  function fetchBuffer(url) {
    return fetch(url).then((r) => {
      if (!r.ok) throw new Error(url + ": HTTP " + r.status);
      return r.arrayBuffer();
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
    return state.shards.get(shard).then((rows) => {
      const it = rows[index - shard * size];
      if (it) state.ids.set(index, it.id);
      return it;
    });
  }

  // An id as links write it (site.link_key): 16 hex digits, and 8 of a copy's suffix.
  function linkKey(id) {
    const [head, tail] = id.toLowerCase().split("-");
    return head.slice(0, 16) + (tail ? "-" + tail.slice(0, 8) : "");
  }

  // The item number of an image's link key, or -1: links name images by id, which
  // `postermap add` and rebuilds keep while item numbers change.
  function itemOfId(id) {
    id = id.toLowerCase();
    const prefix = id.slice(0, 2);
    if (!state.idShards.has(prefix)) {
      state.idShards.set(prefix, fetchJSON("data/ids/" + prefix + ".json").catch(() => ({})));
    }
    return state.idShards.get(prefix).then((ids) => (id in ids ? ids[id] : -1));
  }

  // ---------------------------------------------------------------- cells and items
  // Items are numbered in row-major cell order of the similarity map. With empty cells,
  // one bit per cell says which are occupied, and the item in cell c is the number of
  // occupied cells before it: a running count per 32-cell word plus the bits before c.
  function loadOccupancy(m) {
    if (!m.holes) return Promise.resolve();
    return fetchBuffer("data/cells.bin").then((buffer) => {
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

  // An arrangement: the similarity map, or a wall by a column (its cells.bin holds the
  // item of each cell). itemAt(cell) -> item or -1; cellOf(item) -> cell.
  function similarity(m) {
    const arr = { name: "similarity", rows: m.rows, cols: m.cols, width: m.width,
      height: m.height, maxZoom: m.maxZoom, tiles: "tiles", bins: null, itemAt: itemOfCell,
      cellOf: null };
    arr.cellOf = (i) => {
      if (!state.occupied) return i;
      if (!arr.itemCell) {
        const out = new Int32Array(m.count);
        for (let c = 0, n = 0; c < m.rows * m.cols; c++) {
          if ((state.occupied[c >>> 5] >>> (c & 31)) & 1) out[n++] = c;
        }
        arr.itemCell = out;
      }
      return arr.itemCell[i];
    };
    return arr;
  }

  function loadArrangement(name) {
    if (!state.arrangements.has(name)) {
      const spec = state.manifest.arrangements.find((a) => a.name === name);
      if (!spec) return Promise.reject(new Error("no arrangement " + name));
      state.arrangements.set(name, fetchBuffer(spec.cells).then((buffer) => {
        const cellItem = new Int32Array(buffer);
        const itemCell = new Int32Array(state.manifest.count);
        for (let c = 0; c < cellItem.length; c++) if (cellItem[c] >= 0) itemCell[cellItem[c]] = c;
        return Object.assign({}, spec, { itemAt: (c) => cellItem[c], cellOf: (i) => itemCell[i] });
      }));
    }
    return state.arrangements.get(name);
  }

  function toLatLng(x, y, arr) {
    arr = arr || state.arr;
    return state.map.unproject([x, y], arr.maxZoom);
  }

  function cellBounds(cell, arr) {
    arr = arr || state.arr;
    const m = state.manifest, w = m.cellWidth, h = m.cellHeight;
    const row = Math.floor(cell / arr.cols), col = cell % arr.cols;
    return L.latLngBounds(toLatLng(col * w, (row + 1) * h, arr), toLatLng((col + 1) * w, row * h, arr));
  }

  // Fractional (row, col) of a map position in the current arrangement.
  function cellPoint(latlng) {
    const m = state.manifest, p = state.map.project(latlng, state.arr.maxZoom);
    return [p.y / m.cellHeight, p.x / m.cellWidth];
  }

  function itemAt(latlng) {
    const [r, c] = cellPoint(latlng), arr = state.arr;
    const row = Math.floor(r), col = Math.floor(c);
    if (row < 0 || col < 0 || row >= arr.rows || col >= arr.cols) return -1;
    return arr.itemAt(row * arr.cols + col);
  }

  // ---------------------------------------------------------------- details
  function showHover(index, point) {
    const box = $("hover");
    if (index < 0) { box.hidden = true; return; }
    item(index).then((it) => {
      box.textContent = it.title;
      box.style.left = point.x + 16 + "px";
      box.style.top = point.y + 16 + "px";
      box.hidden = false;
      box.dataset.index = index;
    });
  }

  function drawCursor(index) {
    if (state.cursor) state.cursor.remove();
    state.cursor = null;
    if (index < 0) return;
    state.cursor = L.rectangle(cellBounds(state.arr.cellOf(index)), { color: "#fbbc04",
      weight: 3, fill: false, interactive: false }).addTo(state.map);
  }

  // Select image `index`: the yellow cursor, and (unless opts.panel is false) its panel.
  function select(index, fly, opts) {
    opts = opts || {};
    state.current = index;
    drawCursor(index);
    const bounds = cellBounds(state.arr.cellOf(index));
    if (fly) state.map.flyTo(bounds.getCenter(), state.arr.maxZoom, { duration: 0.6 });
    else if (opts.reveal && !state.map.getBounds().contains(bounds.getCenter())) {
      state.map.panTo(bounds.getCenter(), { animate: false });
    }
    if (opts.panel === false && $("details").hidden) {
      // the link names the image by id: write it once the item (and its id) is known
      return item(index).then((it) => {
        if (!opts.quiet && state.current === index) writeHash(true);
        return it;
      });
    }
    return item(index).then((it) => {
      if (state.current !== index) return it;
      const panel = $("details");
      $("detail-image").src = it.image;
      $("detail-link").href = it.image;
      $("detail-title").textContent = it.title;
      const dl = $("detail-meta");
      dl.replaceChildren();
      const rows = Object.assign({ file: it.path || it.file, cluster: it.cluster < 0 ? "none" :
        (it.clusterName || "Cluster " + it.cluster) }, it.meta);
      if (it.classes && it.classes.length) {
        rows["looks like"] = it.classes.slice(0, 3).map(([name, p]) =>
          name + " " + Math.round(p * 100) + "%").join(", ");
      }
      for (const [key, value] of Object.entries(rows)) {
        const dt = document.createElement("dt"); dt.textContent = key;
        const dd = document.createElement("dd"); dd.textContent = value;
        dl.append(dt, dd);
      }
      showSimilar(it);
      panel.hidden = false;
      panel.dataset.index = index;
      if (!opts.quiet) writeHash(true);
      return it;
    });
  }

  function closeDetails() {
    $("details").hidden = true;
    state.current = -1;
    drawCursor(-1);
    writeHash(true);
  }

  // Thumbnails that select (and fly to) the image they show.
  function thumbnail(index, title) {
    const img = document.createElement("img");
    img.dataset.index = index;
    img.alt = title || "";
    img.loading = "lazy";
    item(index).then((it) => {
      img.src = it.thumb;
      img.title = it.title;
      img.classList.toggle("fill", !!it.fill);  // shaped like the cell: crop to fill it
    });
    img.addEventListener("click", () => select(index, true));
    return img;
  }

  function showSimilar(it) {
    $("similar-grid").replaceChildren(...it.similar.map(([index, score]) => {
      const img = thumbnail(index);
      img.dataset.score = score;
      return img;
    }));
  }

  // ---------------------------------------------------------------- search
  function searchIndex() {
    if (!state.search) {
      state.search = fetchJSON("data/search.json").then((rows) => rows.map((r) =>
        r.toLowerCase()));
    }
    return state.search;
  }

  // Query words -> ImageNet classes through the concept table (WordNet hypernyms).
  function conceptTable() {
    const c = state.manifest.concepts;
    if (!c) return Promise.resolve(null);
    if (!state.conceptTable) state.conceptTable = fetchJSON(c.table);
    return state.conceptTable;
  }

  function conceptClasses(table, query) {
    const word = query.split(/\s+/).filter(Boolean).join(" ");
    const plural = word.endsWith("s");
    for (const w of [word, plural ? word.slice(0, -1) : null, plural ? word.slice(0, -2) : null]) {
      if (w && table.terms[w]) return table.terms[w];
    }
    return [];
  }

  function classFile(k) {
    if (!state.classFiles.has(k)) {
      state.classFiles.set(k, fetchBuffer("data/classes/" + k + ".bin").then((buffer) => {
        const n = buffer.byteLength / 5;
        return { items: new Uint32Array(buffer, 0, n), probs: new Uint8Array(buffer, 4 * n, n) };
      }));
    }
    return state.classFiles.get(k);
  }

  // Items whose top classes fall under the query: item -> [class, probability], best.
  function conceptHits(query) {
    return conceptTable().then((table) => {
      if (!table) return { hits: new Map(), table };
      const counts = state.manifest.concepts.counts;
      const classes = conceptClasses(table, query).filter((k) => counts[k] > 0);
      return Promise.all(classes.map(classFile)).then((files) => {
        const hits = new Map();
        files.forEach((f, j) => {
          for (let t = 0; t < f.items.length; t++) {
            const i = f.items[t], p = f.probs[t];
            const old = hits.get(i);
            if (!old || old[1] < p) hits.set(i, [classes[j], p]);
          }
        });
        return { hits, table };
      });
    });
  }

  // Titles and file names containing the query, and images that look like it. Every
  // match also becomes a filter of the map (the rest is dimmed); the list shows the
  // first 50 of each kind that pass the other filters. Resolves to the listed items.
  function runSearch(query, opts) {
    opts = opts || {};
    const list = $("results");
    query = query.trim().toLowerCase();
    state.query = query;
    list.replaceChildren();
    if (!query) {
      state.searchPass = null;
      $("search-status").textContent = "";
      return update().then(() => { if (!opts.quiet) writeHash(false); return []; });
    }
    return Promise.all([searchIndex(), conceptHits(query)]).then(([rows, concept]) => {
      if (state.query !== query) return [];
      const n = rows.length, pass = new Uint8Array(n);
      const hits = [];
      for (let i = 0; i < n; i++) {
        if (rows[i].includes(query)) { pass[i] = 1; hits.push(i); }
      }
      const seen = new Set(hits);
      const looks = [...concept.hits].filter(([i]) => !seen.has(i))
        .sort((a, b) => b[1][1] - a[1][1]);
      for (const [i] of looks) pass[i] = 1;
      state.searchPass = pass;
      return update().then(() => {
        const ok = (i) => !state.fails || (state.fails[i] === 0 &&
          (!state.clusterPass || state.clusterPass[i]));
        const titled = hits.filter(ok).slice(0, 50);
        const pictured = looks.filter(([i]) => ok(i)).slice(0, 50);
        const total = hits.length + looks.length;
        $("search-status").textContent = total ? total.toLocaleString() + " match" +
          (total === 1 ? "" : "es") + (looks.length ? " (" + looks.length.toLocaleString() +
          " by what is in the picture)" : "") : "no match";
        const shown = titled.concat(pictured.map(([i]) => i));
        return Promise.all(shown.map(item)).then((items) => {
          if (state.query !== query) return shown;
          items.forEach((it, k) => {
            const li = document.createElement("li");
            li.dataset.index = shown[k];
            li.textContent = it.title;
            li.title = it.file;
            if (k >= titled.length) {
              const [cls, p] = pictured[k - titled.length][1];
              const why = document.createElement("span");
              why.className = "why";
              why.textContent = " looks like " + concept.table.names[cls] + " " +
                Math.round(p / 2.55) + "%";
              li.dataset.why = concept.table.names[cls];
              li.append(why);
            }
            li.addEventListener("click", () => select(shown[k], true));
            list.append(li);
          });
          if (!opts.quiet) writeHash(false);
          return shown;
        });
      });
    });
  }

  // ---------------------------------------------------------------- facets
  // Values of facet f, fetched on first use: per item its bin (year, number; 65535 = no
  // value) or its value bits (category, f.bytes per item).
  function facetData(f) {
    if (!state.facetData.has(f.name)) {
      state.facetData.set(f.name, fetchBuffer(f.file).then((buffer) => {
        if (f.kind === "category") return { bits: new Uint8Array(buffer) };
        const values = f.dtype === "int16" ? new Int16Array(buffer) : new Float32Array(buffer);
        const edges = f.edges, last = edges.length - 2, bins = new Uint16Array(values.length);
        for (let i = 0; i < values.length; i++) {
          const v = values[i];
          if ((f.dtype === "int16" && v === f.missing) || v !== v) { bins[i] = 65535; continue; }
          let lo = 0, hi = last;  // the last edge <= v
          while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (edges[mid] <= v) lo = mid; else hi = mid - 1; }
          bins[i] = lo;
        }
        return { values, bins };
      }));
    }
    return state.facetData.get(f.name);
  }

  // A test of item i against facet f's filter.
  function facetTest(f, data, filter) {
    if (f.kind === "category") {
      const B = f.bytes, bits = data.bits, mask = new Uint8Array(B);
      for (const k of filter.values) mask[k >> 3] |= 1 << (k & 7);
      if (B === 1) { const m0 = mask[0]; return (i) => (bits[i] & m0) !== 0; }
      return (i) => { for (let b = 0; b < B; b++) if (bits[i * B + b] & mask[b]) return true; return false; };
    }
    const bins = data.bins, b0 = filter.b0, b1 = filter.b1;
    return (i) => bins[i] >= b0 && bins[i] <= b1;
  }

  // Recompute what is shown: facets AND search AND the open cluster; the counts of each
  // facet over the items that pass every *other* constraint; then repaint.
  function update() {
    const m = state.manifest, facets = m.facets || [];
    // every facet's counts follow the filters, the search and the open cluster, so the
    // facets' values are fetched as soon as any of them narrows the map
    const needData = facets.length > 0 &&
      (state.filters.size > 0 || !!state.searchPass || !!state.clusterPass);
    const loading = needData ? Promise.all(facets.map(facetData)) : Promise.resolve([]);
    return loading.then((datas) => {
      const t0 = performance.now();
      const n = m.count;
      const extra = [state.searchPass, state.clusterPass].filter(Boolean);
      if (!state.filters.size && !extra.length) {
        state.fails = null; state.pass = null; state.shown = n;
        state.facetCounts = new Map();
      } else {
        const fails = new Uint8Array(n);
        const tests = new Map();
        facets.forEach((f, k) => {
          const filter = state.filters.get(f.name);
          if (!filter) return;
          const test = facetTest(f, datas[k], filter);
          tests.set(f.name, test);
          for (let i = 0; i < n; i++) if (!test(i)) fails[i]++;
        });
        for (const e of extra) for (let i = 0; i < n; i++) if (!e[i]) fails[i] = Math.min(255, fails[i] + 1);
        const pass = new Uint8Array(n);
        let shown = 0;
        for (let i = 0; i < n; i++) if (fails[i] === 0) { pass[i] = 1; shown++; }
        state.fails = fails; state.pass = pass; state.shown = shown;
        state.facetCounts = new Map();
        if (needData) {
          facets.forEach((f, k) => {
            const test = tests.get(f.name), data = datas[k];
            const size = f.kind === "category" ? f.values.length : f.counts.length;
            const counts = new Uint32Array(size);
            for (let i = 0; i < n; i++) {
              const fi = fails[i] - (test && !test(i) ? 1 : 0);
              if (fi !== 0) continue;
              if (f.kind === "category") {
                const B = f.bytes;
                for (let b = 0; b < B; b++) {
                  let byte = data.bits[i * B + b];
                  while (byte) { const low = byte & -byte; counts[b * 8 + 31 - Math.clz32(low)]++; byte ^= low; }
                }
              } else if (data.bins[i] !== 65535) counts[data.bins[i]]++;
            }
            state.facetCounts.set(f.name, counts);
          });
        }
      }
      paintOverlay();
      renderFacets();
      showCount();
      state.lastUpdateMs = performance.now() - t0;
    });
  }

  function setFilter(name, filter, opts) {
    opts = opts || {};
    if (filter) state.filters.set(name, filter); else state.filters.delete(name);
    return update().then(() => {
      if (state.query) return runSearch(state.query, { quiet: true });
    }).then(() => { if (!opts.quiet) writeHash(false); });
  }

  function showCount() {
    const m = state.manifest, box = $("shown");
    const constrained = state.pass !== null;
    box.hidden = !constrained;
    $("shown-count").textContent = state.shown.toLocaleString();
    $("shown-total").textContent = m.count.toLocaleString();
  }

  function facetLabel(f, filter) {
    if (f.kind === "category") return [...filter.values].map((k) => f.values[k]).join(", ");
    const lo = f.edges[filter.b0], hi = f.edges[filter.b1 + 1];
    if (f.kind === "year") return lo + "–" + (hi - 1);
    return fmt(lo) + "–" + fmt(hi);
  }

  function fmt(x) { return Math.abs(x) >= 1e4 ? x.toExponential(1) : String(+x.toPrecision(3)); }

  function buildFacets() {
    const facets = state.manifest.facets || [];
    const panel = $("facet-panel");
    panel.hidden = !facets.length;
    const box = $("facets");
    box.replaceChildren();
    for (const f of facets) {
      const div = document.createElement("div");
      div.className = "facet";
      div.dataset.facet = f.name;
      const head = document.createElement("div");
      head.className = "facet-head";
      const title = document.createElement("span");
      title.textContent = f.name;
      const value = document.createElement("span");
      value.className = "facet-value";
      const clear = document.createElement("button");
      clear.type = "button"; clear.className = "facet-clear"; clear.textContent = "×";
      clear.title = "clear this filter";
      clear.addEventListener("click", () => setFilter(f.name, null));
      head.append(title, value, clear);
      div.append(head);
      if (f.kind === "category") {
        const chips = document.createElement("div");
        chips.className = "chips";
        f.values.forEach((v, k) => {
          const chip = document.createElement("button");
          chip.type = "button"; chip.className = "chip"; chip.dataset.value = k;
          chip.addEventListener("click", () => {
            const old = state.filters.get(f.name);
            const values = new Set(old ? old.values : []);
            if (values.has(k)) values.delete(k); else values.add(k);
            setFilter(f.name, values.size ? { values } : null);
          });
          chips.append(chip);
        });
        div.append(chips);
      } else {
        div.append(histogram(f));
      }
      box.append(div);
    }
    renderFacets();
  }

  const HIST_W = 280, HIST_H = 44;

  // A histogram with a brush: drag across bins to keep only that range.
  function histogram(f) {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("class", "histogram");
    svg.setAttribute("width", HIST_W); svg.setAttribute("height", HIST_H + 14);
    svg.setAttribute("viewBox", "0 0 " + HIST_W + " " + (HIST_H + 14));
    const bins = f.counts.length, bw = HIST_W / bins;
    for (const cls of ["all", "now"]) {
      for (let b = 0; b < bins; b++) {
        const r = document.createElementNS(svg.namespaceURI, "rect");
        r.setAttribute("class", "bar " + cls);
        r.setAttribute("x", b * bw + 0.5); r.setAttribute("width", Math.max(1, bw - 1));
        r.dataset.bin = b;
        svg.append(r);
      }
    }
    const brush = document.createElementNS(svg.namespaceURI, "rect");
    brush.setAttribute("class", "brush"); brush.setAttribute("y", 0);
    brush.setAttribute("height", HIST_H); brush.setAttribute("width", 0);
    svg.append(brush);
    for (const [x, anchor, text] of [[0, "start", fmtEdge(f, f.edges[0])],
      [HIST_W, "end", fmtEdge(f, f.edges[bins] - (f.kind === "year" ? 1 : 0))]]) {
      const t = document.createElementNS(svg.namespaceURI, "text");
      t.setAttribute("x", x); t.setAttribute("y", HIST_H + 12);
      t.setAttribute("text-anchor", anchor); t.textContent = text;
      svg.append(t);
    }
    const binAt = (e) => {
      const rect = svg.getBoundingClientRect();
      return Math.max(0, Math.min(bins - 1, Math.floor((e.clientX - rect.left) / rect.width * bins)));
    };
    let start = null;
    svg.addEventListener("pointerdown", (e) => {
      start = binAt(e);
      svg.setPointerCapture(e.pointerId);
      drawBrush(svg, f, start, start);
      e.preventDefault();
    });
    svg.addEventListener("pointermove", (e) => {
      if (start !== null) drawBrush(svg, f, Math.min(start, binAt(e)), Math.max(start, binAt(e)));
    });
    svg.addEventListener("pointerup", (e) => {
      if (start === null) return;
      const end = binAt(e), b0 = Math.min(start, end), b1 = Math.max(start, end);
      start = null;
      const old = state.filters.get(f.name);
      if (old && old.b0 === b0 && old.b1 === b1) setFilter(f.name, null);  // click again: off
      else setFilter(f.name, { b0, b1 });
    });
    return svg;
  }

  function fmtEdge(f, x) { return f.kind === "year" ? String(x) : fmt(x); }

  function drawBrush(svg, f, b0, b1) {
    const bw = HIST_W / f.counts.length, brush = svg.querySelector(".brush");
    if (b0 === null) { brush.setAttribute("width", 0); return; }
    brush.setAttribute("x", b0 * bw); brush.setAttribute("width", (b1 - b0 + 1) * bw);
  }

  function renderFacets() {
    for (const f of state.manifest.facets || []) {
      const div = document.querySelector('.facet[data-facet="' + CSS.escape(f.name) + '"]');
      if (!div) continue;
      const filter = state.filters.get(f.name);
      const now = state.facetCounts.get(f.name);
      div.classList.toggle("active", !!filter);
      div.querySelector(".facet-value").textContent = filter ? facetLabel(f, filter) : "";
      if (f.kind === "category") {
        div.querySelectorAll(".chip").forEach((chip) => {
          const k = Number(chip.dataset.value);
          const count = now ? now[k] : f.counts[k];
          chip.textContent = f.values[k] + " " + count.toLocaleString();
          chip.classList.toggle("on", !!(filter && filter.values.has(k)));
          chip.classList.toggle("empty", count === 0);
        });
      } else {
        const svg = div.querySelector("svg");
        const top = Math.max(1, ...f.counts);
        const scale = (c) => c === 0 ? 0 : Math.max(1, Math.round(HIST_H * Math.sqrt(c / top)));
        svg.querySelectorAll(".bar").forEach((r) => {
          const b = Number(r.dataset.bin);
          const c = r.classList.contains("all") ? f.counts[b] : (now ? now[b] : f.counts[b]);
          const h = scale(c);
          r.setAttribute("y", HIST_H - h); r.setAttribute("height", h);
          r.classList.toggle("in", !filter || (b >= filter.b0 && b <= filter.b1));
          if (r.classList.contains("now")) {
            r.innerHTML = "";
            const t = document.createElementNS(svg.namespaceURI, "title");
            t.textContent = fmtEdge(f, f.edges[b]) + ": " + c.toLocaleString();
            r.append(t);
          }
        });
        drawBrush(svg, f, filter ? filter.b0 : null, filter ? filter.b1 : null);
      }
    }
  }

  // ---------------------------------------------------------------- the overlay
  // One canvas pixel per cell of the current arrangement, stretched over the mosaic
  // (pixelated): dark where an image is filtered out, yellow where it is selected.
  const CellOverlay = L.ImageOverlay.extend({
    _initImage: function () {
      const canvas = this._image = L.DomUtil.create("canvas", "leaflet-image-layer cell-overlay");
      if (this._zoomAnimated) L.DomUtil.addClass(canvas, "leaflet-zoom-animated");
      canvas.onselectstart = L.Util.falseFn;
      canvas.onmousemove = L.Util.falseFn;
      canvas.width = this.options.cols; canvas.height = this.options.rows;
    },
  });

  function arrBounds(arr) {
    return L.latLngBounds(toLatLng(0, arr.height, arr), toLatLng(arr.width, 0, arr));
  }

  function paintOverlay() {
    const arr = state.arr, pass = state.pass, picked = state.pickedMask;
    if (!pass && !picked) {
      if (state.overlay) { state.overlay.remove(); state.overlay = null; }
      return;
    }
    if (!state.overlay || state.overlay.arr !== arr) {
      if (state.overlay) state.overlay.remove();
      state.overlay = new CellOverlay("", arrBounds(arr), { rows: arr.rows, cols: arr.cols,
        interactive: false, pane: "overlayPane" }).addTo(state.map);
      state.overlay.arr = arr;
    }
    const canvas = state.overlay.getElement();
    const ctx = canvas.getContext("2d");
    const image = ctx.createImageData(arr.cols, arr.rows);
    const px = new Uint32Array(image.data.buffer);
    // little-endian RGBA as one word: 0xAABBGGRR
    const DIM = 0xb8141414, PICK = 0x7004bcfb, BOTH = 0xd0046080;
    const cells = arr.rows * arr.cols;
    for (let c = 0; c < cells; c++) {
      const i = arr.itemAt(c);
      if (i < 0) continue;
      const out = pass && !pass[i], sel = picked && picked[i];
      if (out || sel) px[c] = out && sel ? BOTH : sel ? PICK : DIM;
    }
    ctx.putImageData(image, 0, 0);
    canvas.dataset.dimmed = pass ? state.manifest.count - state.shown : 0;
  }

  // ---------------------------------------------------------------- clusters
  function outlines() {
    if (!state.outlines) state.outlines = fetchJSON("data/outlines.json");
    return state.outlines;
  }

  function toLatLngs(rings) {
    const m = state.manifest;
    return rings.map((ring) => ring.map(([r, c]) => toLatLng(c * m.cellWidth, r * m.cellHeight)));
  }

  function clusterMembers(id) {
    if (!state.members.has(id)) state.members.set(id, fetchJSON("data/clusters/" + id + ".json"));
    return state.members.get(id);
  }

  // Items -> the bounds of their cells in the current arrangement.
  function itemsBounds(items) {
    const arr = state.arr, m = state.manifest;
    let r0 = Infinity, c0 = Infinity, r1 = -1, c1 = -1;
    for (const i of items) {
      const cell = arr.cellOf(i), r = Math.floor(cell / arr.cols), c = cell % arr.cols;
      if (r < r0) r0 = r; if (r > r1) r1 = r; if (c < c0) c0 = c; if (c > c1) c1 = c;
    }
    if (r1 < 0) return null;
    return L.latLngBounds(toLatLng(c0 * m.cellWidth, (r1 + 1) * m.cellHeight),
      toLatLng((c1 + 1) * m.cellWidth, r0 * m.cellHeight));
  }

  // Open a cluster: outline it (on the similarity map), fit the view, dim the rest.
  function highlightCluster(cluster, opts) {
    opts = opts || {};
    const m = state.manifest, map = state.map;
    if (typeof cluster === "number") cluster = m.clusters.find((c) => c.id === cluster);
    if (!cluster) return Promise.resolve();
    document.querySelectorAll("#cluster-list li").forEach((li) =>
      li.classList.toggle("active", Number(li.dataset.cluster) === cluster.id));
    state.highlighted = cluster.id;
    state.clusterOpen = cluster.id;
    $("cluster-open").hidden = false;
    $("cluster-open-name").textContent = cluster.label;
    if (state.highlight) { state.highlight.remove(); state.highlight = null; }
    if (cluster.box && state.arr.name === "similarity" && opts.fit !== false) {
      const [r0, c0, r1, c1] = cluster.box;
      map.flyToBounds(L.latLngBounds(toLatLng(c0 * m.cellWidth, r1 * m.cellHeight),
        toLatLng(c1 * m.cellWidth, r0 * m.cellHeight)), { duration: 0.6, padding: [20, 20] });
    }
    const members = clusterMembers(cluster.id).then((items) => {
      if (state.clusterOpen !== cluster.id) return;
      const pass = new Uint8Array(m.count);
      for (const i of items) pass[i] = 1;
      state.clusterPass = pass;
      if (state.arr.name !== "similarity" && opts.fit !== false) {
        const b = itemsBounds(items);
        if (b) map.flyToBounds(b, { duration: 0.6, padding: [20, 20] });
      }
      return update();
    });
    const outline = state.arr.name !== "similarity" ? Promise.resolve() : outlines().then((all) => {
      if (state.highlighted !== cluster.id) return;  // another cluster was picked meanwhile
      if (state.highlight) state.highlight.remove();
      state.highlight = L.polygon(toLatLngs(all[cluster.id] || []), { color: "#fbbc04",
        weight: 3, fillOpacity: 0.05, interactive: false }).addTo(map);
    });
    if (!opts.quiet) writeHash(true);
    return Promise.all([members, outline]);
  }

  function closeCluster(opts) {
    state.clusterOpen = null; state.highlighted = null; state.clusterPass = null;
    $("cluster-open").hidden = true;
    if (state.highlight) { state.highlight.remove(); state.highlight = null; }
    document.querySelectorAll("#cluster-list li.active").forEach((li) => li.classList.remove("active"));
    return update().then(() => { if (!(opts && opts.quiet)) writeHash(true); });
  }

  function openGallery(cluster) {
    clusterMembers(cluster.id).then((members) => {
      $("gallery-title").textContent = cluster.label + " (" + cluster.size + " images)";
      $("gallery-grid").replaceChildren(...members.slice(0, 400).map((index) => thumbnail(index)));
      $("gallery").hidden = false;
    });
  }

  function clusterPanel() {
    const list = $("cluster-list");
    $("cluster-count").textContent = "(" + state.manifest.clusters.length + ")";
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
      const take = document.createElement("button");
      take.type = "button";
      take.className = "select-button";
      take.textContent = "select";
      take.title = "take this cluster as the selection";
      take.addEventListener("click", (e) => {
        e.stopPropagation();
        clusterMembers(cluster.id).then((items) => pick({ kind: "cluster", id: cluster.id }, items));
      });
      li.append(name, size, button, take);
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

  // ---------------------------------------------------------------- selections
  function itemsInRect(arr, [r0, c0, r1, c1]) {
    const out = [];
    r0 = Math.max(0, r0); c0 = Math.max(0, c0);
    r1 = Math.min(arr.rows - 1, r1); c1 = Math.min(arr.cols - 1, c1);
    for (let r = r0; r <= r1; r++) {
      for (let c = c0; c <= c1; c++) {
        const i = arr.itemAt(r * arr.cols + c);
        if (i >= 0) out.push(i);
      }
    }
    return out;
  }

  function itemsInPolygon(arr, points) {
    let r0 = Infinity, c0 = Infinity, r1 = -Infinity, c1 = -Infinity;
    for (const [r, c] of points) {
      r0 = Math.min(r0, r); r1 = Math.max(r1, r); c0 = Math.min(c0, c); c1 = Math.max(c1, c);
    }
    const out = [];
    for (let r = Math.max(0, Math.floor(r0)); r <= Math.min(arr.rows - 1, Math.floor(r1)); r++) {
      for (let c = Math.max(0, Math.floor(c0)); c <= Math.min(arr.cols - 1, Math.floor(c1)); c++) {
        if (!inside(r + 0.5, c + 0.5, points)) continue;
        const i = arr.itemAt(r * arr.cols + c);
        if (i >= 0) out.push(i);
      }
    }
    return out;
  }

  function inside(y, x, points) {  // even-odd rule
    let odd = false;
    for (let k = 0, j = points.length - 1; k < points.length; j = k++) {
      const [yk, xk] = points[k], [yj, xj] = points[j];
      if ((yk > y) !== (yj > y) && x < (xj - xk) * (y - yk) / (yj - yk) + xk) odd = !odd;
    }
    return odd;
  }

  // The current selection: its definition (for the link) and its items.
  function pick(def, items, opts) {
    opts = opts || {};
    const sorted = Int32Array.from(items).sort();
    state.picked = { def, items: sorted };
    const mask = new Uint8Array(state.manifest.count);
    for (const i of sorted) mask[i] = 1;
    state.pickedMask = mask;
    paintOverlay();
    renderSelection();
    if (!opts.quiet) writeHash(true);
  }

  function clearPick(opts) {
    state.picked = null; state.pickedMask = null;
    if (state.pickShape) { state.pickShape.remove(); state.pickShape = null; }
    paintOverlay();
    renderSelection();
    if (!(opts && opts.quiet)) writeHash(true);
  }

  function renderSelection() {
    const panel = $("selection");
    const picked = state.picked;
    panel.hidden = !picked;
    if (!picked) return;
    const kinds = { box: "box", lasso: "lasso", cluster: "cluster", items: "filter result" };
    $("selection-count").textContent = picked.items.length.toLocaleString();
    $("selection-kind").textContent = kinds[picked.def.kind] || picked.def.kind;
    $("selection-grid").replaceChildren(...[...picked.items.slice(0, 60)].map((i) => thumbnail(i)));
  }

  // Shift-drag draws a box (or, with Alt or the lasso tool, a lasso) and selects the
  // images inside it.
  function dragSelect(map) {
    const container = map.getContainer();
    let drawing = null;
    container.addEventListener("pointerdown", (e) => {
      if (!e.shiftKey || e.button !== 0) return;
      if (e.target.closest(".leaflet-control")) return;
      e.preventDefault(); e.stopPropagation();
      const lasso = e.altKey || state.tool === "lasso";
      map.dragging.disable();
      const start = map.mouseEventToLatLng(e);
      drawing = { lasso, start, points: [start], shape: null };
      if (state.pickShape) { state.pickShape.remove(); state.pickShape = null; }
      container.setPointerCapture(e.pointerId);
    }, true);
    container.addEventListener("pointermove", (e) => {
      if (!drawing) return;
      const here = map.mouseEventToLatLng(e);
      if (drawing.shape) drawing.shape.remove();
      const style = { color: "#fbbc04", weight: 2, dashArray: "4 4", fillOpacity: 0.08, interactive: false };
      if (drawing.lasso) {
        drawing.points.push(here);
        drawing.shape = L.polygon(drawing.points, style).addTo(map);
      } else {
        drawing.end = here;
        drawing.shape = L.rectangle(L.latLngBounds(drawing.start, here), style).addTo(map);
      }
    }, true);
    const finish = (e) => {
      if (!drawing) return;
      const d = drawing;
      drawing = null;
      map.dragging.enable();
      state.justPicked = true;
      setTimeout(() => { state.justPicked = false; }, 50);
      const arr = state.arr;
      if (d.lasso && d.points.length > 2) {
        const points = d.points.map((ll) => cellPoint(ll).map((v) => Math.round(v * 10) / 10));
        state.pickShape = d.shape;
        pick({ kind: "lasso", arr: arr.name, points }, itemsInPolygon(arr, points));
      } else if (!d.lasso && d.end) {
        const [ra, ca] = cellPoint(d.start), [rb, cb] = cellPoint(d.end);
        const rect = [Math.floor(Math.min(ra, rb)), Math.floor(Math.min(ca, cb)),
          Math.floor(Math.max(ra, rb)), Math.floor(Math.max(ca, cb))];
        state.pickShape = d.shape;
        pick({ kind: "box", arr: arr.name, rect }, itemsInRect(arr, rect));
      } else if (d.shape) d.shape.remove();
      e.preventDefault();
    };
    container.addEventListener("pointerup", finish, true);
    container.addEventListener("pointercancel", finish, true);
  }

  // Rows of the selection's items for export ({id, title, path, cluster, meta}), from the
  // light row shards (data/rows: no neighbour lists), each fetched once.
  function exportRow(index) {
    const size = state.manifest.shardSize;
    const shard = Math.floor(index / size);
    if (!state.rowShards) state.rowShards = new Map();
    if (!state.rowShards.has(shard)) {
      state.rowShards.set(shard, fetchJSON("data/rows/" + String(shard).padStart(5, "0") + ".json"));
    }
    return state.rowShards.get(shard).then((rows) => {
      const [id, title, path, cluster, meta] = rows[index - shard * size];
      return { id, title, path, cluster, meta };
    });
  }

  function selectionRows() {
    if (!state.picked) return Promise.resolve([]);
    return Promise.all([...state.picked.items].map(exportRow));
  }

  function csvField(v) {
    const s = v === null || v === undefined ? "" : String(v);
    return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
  }

  function selectionCSV() {
    return selectionRows().then((rows) => {
      const fields = state.manifest.fields;
      const lines = [["id", "title", "path", "cluster", ...fields].map(csvField).join(",")];
      for (const it of rows) {
        lines.push([it.id, it.title, it.path, it.cluster,
          ...fields.map((f) => it.meta[f])].map(csvField).join(","));
      }
      return lines.join("\n") + "\n";
    });
  }

  // A new trope for clusters.toml: numbers from newTropeBase up are the user's own
  // (clustering never makes that many); the next one not on this map is taken.
  function nextTrope() {
    const base = state.manifest.newTropeBase || 1000000;
    let next = base;
    for (const c of state.manifest.clusters) if (c.id >= next) next = c.id + 1;
    return next;
  }

  function selectionTOML() {
    return selectionRows().then((rows) => {
      const n = nextTrope();
      const lines = ["# " + rows.length + " images selected in the viewer; paste into " +
        "WORKSPACE/clusters.toml and run `postermap run` again",
        "[clusters." + n + "]", 'name = "new trope ' + (n - (state.manifest.newTropeBase || 1000000) + 1) + '"',
        "add = ["];
      for (const it of rows) lines.push('  "' + it.id + '",  # ' + it.title.replace(/[\r\n]/g, " "));
      lines.push("]");
      return lines.join("\n") + "\n";
    });
  }

  function download(name, text, type) {
    const url = URL.createObjectURL(new Blob([text], { type }));
    const a = document.createElement("a");
    a.href = url; a.download = name;
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  // ---------------------------------------------------------------- arrangements
  function tileLayer(arr) {
    return L.tileLayer(arr.tiles + "/{z}/{y}/{x}.jpg", { tileSize: state.manifest.tileSize,
      minZoom: 0, maxNativeZoom: arr.maxZoom, maxZoom: arr.maxZoom + 2, noWrap: true,
      bounds: arrBounds(arr) });
  }

  function showArrangement(arr) {
    const map = state.map;
    if (state.tileLayer) state.tileLayer.remove();
    if (state.labels) { state.labels.remove(); state.labels = null; }
    if (state.highlight) { state.highlight.remove(); state.highlight = null; }
    if (state.pickShape) { state.pickShape.remove(); state.pickShape = null; }
    if (state.clusterLayer) { state.clusterLayer.remove(); state.clusterLayer = null; }
    state.arr = arr;
    map.setMaxZoom(arr.maxZoom + 2);
    state.tileLayer = tileLayer(arr).addTo(map);
    map.setMaxBounds(arrBounds(arr).pad(0.5));
    if (state.minimap) state.minimap.changeLayer(tileLayer(arr));
    const outlinesToggle = $("toggle-clusters");
    outlinesToggle.disabled = arr.name !== "similarity";
    if (outlinesToggle.checked && arr.name === "similarity") {
      outlines().then((all) => {
        state.clusterLayer = clusterLayer(all);
        if (outlinesToggle.checked && state.arr === arr) state.clusterLayer.addTo(map);
      });
    }
    if (arr.bins) binLabels(arr);
    $("arrangement").value = arr.name;
  }

  // Labels over each bin's first column of a wall, shown where the bin is wide enough.
  function binLabels(arr) {
    const m = state.manifest, layer = L.layerGroup();
    for (const bin of arr.bins) {
      const marker = L.marker(toLatLng(bin.col * m.cellWidth, 0, arr), { interactive: false,
        keyboard: false, icon: L.divIcon({ className: "bin-label", html: "", iconSize: null,
          iconAnchor: [0, 22] }) });
      marker.bin = bin;
      marker.addTo(layer);
    }
    const refresh = () => {
      const scale = Math.pow(2, state.map.getZoom() - arr.maxZoom) * m.cellWidth;
      layer.eachLayer((mk) => {
        const el = mk.getElement();
        if (!el) return;
        el.textContent = mk.bin.label;
        el.title = mk.bin.label + ": " + mk.bin.count.toLocaleString() + " images";
        el.style.display = mk.bin.cols * scale >= 34 ? "" : "none";
      });
    };
    layer.on("add", refresh);
    state.map.on("zoomend", refresh);
    layer.addTo(state.map);
    refresh();
    state.labels = layer;
  }

  function switchArrangement(name, opts) {
    opts = opts || {};
    const m = state.manifest;
    const load = name === "similarity" ? Promise.resolve(similarity(m)) : loadArrangement(name);
    return load.then((arr) => {
      if (name === "similarity" && state.arr && state.arr.name === "similarity") arr = state.arr;
      if (name === "similarity" && state.similarity) arr = state.similarity;
      showArrangement(arr);
      if (opts.view !== false) {
        if (state.current >= 0) {
          const c = cellBounds(arr.cellOf(state.current)).getCenter();
          state.map.setView(c, Math.max(0, arr.maxZoom - 2), { animate: false });
        } else {
          state.map.fitBounds(arrBounds(arr), { padding: [8, 8], animate: false });
        }
      }
      drawCursor(state.current);
      paintOverlay();
      if (state.clusterOpen !== null && arr.name === "similarity") {
        highlightCluster(state.clusterOpen, { fit: false, quiet: true });
      }
      if (!opts.quiet) writeHash(true);
      return arr;
    });
  }

  // ---------------------------------------------------------------- the link
  function encodeItems(items) {  // sorted item numbers as base-36 gaps
    let prev = -1;
    return [...items].map((i) => { const d = i - prev; prev = i; return d.toString(36); }).join(".");
  }

  function decodeItems(text) {
    let prev = -1;
    return text.split(".").filter(Boolean).map((d) => (prev += parseInt(d, 36)));
  }

  function hashOf() {
    const m = state.manifest, map = state.map, arr = state.arr;
    const parts = [];
    const p = map.project(map.getCenter(), arr.maxZoom);
    parts.push("v=" + p.x.toFixed(2) + "," + p.y.toFixed(2) + "," + map.getZoom());
    if (arr.name !== "similarity") parts.push("a=" + encodeURIComponent(arr.name));
    if (state.current >= 0) {
      const id = state.ids.get(state.current);
      const key = id ? linkKey(id) : String(state.current);
      parts.push((!$("details").hidden ? "i=" : "k=") + key);
    }
    if (state.clusterOpen !== null) parts.push("c=" + state.clusterOpen);
    if (state.query) parts.push("q=" + encodeURIComponent(state.query));
    for (const f of m.facets || []) {
      const filter = state.filters.get(f.name);
      if (!filter) continue;
      const value = f.kind === "category" ? [...filter.values].map((k) => f.values[k]).join("|") :
        f.edges[filter.b0] + ".." + f.edges[filter.b1 + 1];
      parts.push("f=" + encodeURIComponent(f.name + ":" + value));
    }
    const picked = state.picked;
    if (picked) {
      const d = picked.def;
      let s;
      if (d.kind === "box") s = "box:" + d.arr + ":" + d.rect.join(",");
      else if (d.kind === "lasso") s = "lasso:" + d.arr + ":" + d.points.map((q) => q.join(",")).join(";");
      else if (d.kind === "cluster") s = "cluster:" + d.id;
      else s = "items:" + encodeItems(picked.items);
      parts.push("s=" + encodeURIComponent(s));
    }
    return "#" + parts.join("&");
  }

  // Write the state into the link: `push` for a new selection (back returns to the
  // previous one), replace for view changes and typing.
  function writeHash(push) {
    if (state.restoring || !state.ready) return;
    const hash = hashOf();
    if (hash === location.hash) return;
    state.lastHash = hash;
    if (push) history.pushState(null, "", hash); else history.replaceState(null, "", hash);
  }

  function parseHash(hash) {
    const out = { f: [] };
    for (const part of hash.replace(/^#/, "").split("&")) {
      if (!part) continue;
      const eq = part.indexOf("=");
      const key = part.slice(0, eq), value = decodeURIComponent(part.slice(eq + 1));
      if (key === "f") out.f.push(value); else out[key] = value;
    }
    return out;
  }

  // Restore everything the link names, in order: arrangement, filters, search, cluster,
  // selection, selected image, view. Sets body[data-restored] when done.
  function applyHash(hash) {
    const m = state.manifest, h = parseHash(hash);
    state.restoring = true;
    document.body.dataset.restored = "false";
    const steps = [];
    const arrName = h.a || "similarity";
    let chain = (state.arr && state.arr.name === arrName) ? Promise.resolve() :
      switchArrangement(arrName, { view: false, quiet: true });
    chain = chain.then(() => {
      state.filters = new Map();
      for (const spec of h.f) {
        const colon = spec.indexOf(":");
        const f = (m.facets || []).find((x) => x.name === spec.slice(0, colon));
        if (!f) continue;
        const value = spec.slice(colon + 1);
        if (f.kind === "category") {
          const values = new Set(value.split("|").map((v) => f.values.indexOf(v)).filter((k) => k >= 0));
          if (values.size) state.filters.set(f.name, { values });
        } else {
          const [lo, hi] = value.split("..").map(Number);
          const b0 = f.edges.findIndex((e) => e >= lo - 1e-9);
          let b1 = f.edges.findIndex((e) => e >= hi - 1e-9) - 1;
          if (b1 < 0) b1 = f.counts.length - 1;
          if (b0 >= 0) state.filters.set(f.name, { b0: Math.min(b0, f.counts.length - 1), b1: Math.max(b0, b1) });
        }
      }
      const c = h.c !== undefined ? Number(h.c) : null;
      const clusterStep = c !== null ? highlightCluster(c, { fit: false, quiet: true }) :
        (state.clusterOpen !== null ? closeCluster({ quiet: true }) : Promise.resolve());
      $("search").value = h.q || "";
      return clusterStep.then(() => runSearch(h.q || "", { quiet: true }));
    }).then(() => {
      if (!h.s) { clearPick({ quiet: true }); return; }
      const [kind, ...rest] = h.s.split(":");
      if (kind === "cluster") {
        const id = Number(rest[0]);
        return clusterMembers(id).then((items) => pick({ kind, id }, items, { quiet: true }));
      }
      if (kind === "items") return pick({ kind }, decodeItems(rest.join(":")), { quiet: true });
      const arrOf = rest[0], geometry = rest.slice(1).join(":");
      const load = arrOf === "similarity" ? Promise.resolve(state.similarity) : loadArrangement(arrOf);
      return load.then((arr) => {
        if (kind === "box") {
          const rect = geometry.split(",").map(Number);
          pick({ kind, arr: arrOf, rect }, itemsInRect(arr, rect), { quiet: true });
        } else if (kind === "lasso") {
          const points = geometry.split(";").map((q) => q.split(",").map(Number));
          pick({ kind, arr: arrOf, points }, itemsInPolygon(arr, points), { quiet: true });
        }
      });
    }).then(() => {
      const key = h.i !== undefined ? h.i : h.k;
      // an image id (16 hex digits), or an item number (links made before ids)
      const found = key === undefined ? Promise.resolve(-1) :
        /^[0-9a-f]{16}(-[0-9a-f]{1,8})?$/i.test(key) ? itemOfId(key) : Promise.resolve(Number(key));
      return found.then((index) => {
        if (index >= 0 && index < m.count) {
          return select(index, false, { quiet: true, panel: h.i !== undefined });
        }
        state.current = -1; drawCursor(-1);
        $("details").hidden = true;
      });
    }).then(() => {
      if (h.v) {
        const [x, y, z] = h.v.split(",").map(Number);
        state.map.setView(toLatLng(x, y), z, { animate: false });
      }
    });
    steps.push(chain);
    return Promise.all(steps).finally(() => {
      state.restoring = false;
      state.restoredAt = performance.now();
      document.body.dataset.restored = "true";
    });
  }

  // ---------------------------------------------------------------- keyboard
  function keyboard() {
    document.addEventListener("keydown", (e) => {
      const typing = e.target.closest && e.target.closest("input, textarea, select");
      if (e.key === "Escape") {
        if (typing) { e.target.blur(); }
        if (!$("gallery").hidden) $("gallery").hidden = true;
        else if (!$("details").hidden) closeDetails();
        else if (state.picked) clearPick();
        else if (state.clusterOpen !== null) closeCluster();
        return;
      }
      if (typing) return;
      const moves = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
      if (moves[e.key]) {
        e.preventDefault();
        moveCursor(...moves[e.key]);
      } else if (e.key === "Enter" && state.current >= 0) {
        e.preventDefault();
        select(state.current, false, { reveal: true });
      }
    });
  }

  // Arrows move the selected cell (skipping empty cells); with no selection they start
  // at the cell in the middle of the view.
  function moveCursor(dr, dc) {
    const arr = state.arr;
    let cell;
    if (state.current < 0) {
      const [r, c] = cellPoint(state.map.getCenter());
      cell = Math.max(0, Math.min(arr.rows - 1, Math.floor(r))) * arr.cols +
        Math.max(0, Math.min(arr.cols - 1, Math.floor(c)));
      dr = 0; dc = 0;
    } else cell = arr.cellOf(state.current);
    let r = Math.floor(cell / arr.cols), c = cell % arr.cols;
    for (let step = 0; step < Math.max(arr.rows, arr.cols); step++) {
      if (step > 0 || dr || dc) { r += dr; c += dc; }
      if (r < 0 || c < 0 || r >= arr.rows || c >= arr.cols) return;
      const i = arr.itemAt(r * arr.cols + c);
      if (i >= 0) { select(i, false, { reveal: true, panel: !$("details").hidden }); return; }
      if (!dr && !dc) dc = 1;
    }
  }

  // ---------------------------------------------------------------- start
  function init(manifest) {
    state.manifest = manifest;
    manifest.facets = manifest.facets || [];
    manifest.arrangements = manifest.arrangements || [];
    document.documentElement.style.setProperty("--cell-aspect",
      manifest.cellWidth + " / " + manifest.cellHeight);
    const arr = state.similarity = similarity(manifest);
    state.arr = arr;
    const map = L.map("map", { crs: L.CRS.Simple, minZoom: 0, maxZoom: arr.maxZoom + 2,
      // no zoom snapping: the first view fits the map to the window exactly (snapping to
      // quarter levels left up to 16 % of each side empty)
      zoomSnap: 0, fullscreenControl: true, attributionControl: false, boxZoom: false,
      keyboard: false });
    state.map = map;
    const select_ = $("arrangement");
    select_.hidden = !manifest.arrangements.length;
    for (const name of ["similarity", ...manifest.arrangements.map((a) => a.name)]) {
      const option = document.createElement("option");
      option.value = name; option.textContent = name === "similarity" ? "by similarity" : "by " + name;
      select_.append(option);
    }
    select_.addEventListener("change", () => switchArrangement(select_.value));
    showArrangement(arr);
    // The map is about as wide as a screen, so the first view fits it to the window
    // (the panels float over its edges) rather than shrinking it beside the toolbar.
    map.fitBounds(arrBounds(arr), { padding: [8, 8] });
    state.minimap = new L.Control.MiniMap(tileLayer(arr), { position: "bottomright",
      width: 200, height: 125, zoomLevelFixed: 0, toggleDisplay: true,
      aimingRectOptions: { color: "#fbbc04", weight: 2, interactive: false },
      shadowRectOptions: { color: "#8ab4f8", weight: 1, opacity: 0, fillOpacity: 0, interactive: false },
      mapOptions: { crs: L.CRS.Simple } }).addTo(map);

    map.on("mousemove", (e) => showHover(itemAt(e.latlng), e.containerPoint));
    map.on("mouseout", () => { $("hover").hidden = true; });
    map.on("click", (e) => {
      if (state.justPicked) return;
      const i = itemAt(e.latlng);
      if (i >= 0) select(i, false);
    });
    let moved = null;
    map.on("moveend", () => { clearTimeout(moved); moved = setTimeout(() => writeHash(false), 150); });
    dragSelect(map);
    keyboard();

    let timer = null;
    const input = $("search");
    input.addEventListener("input", () => {
      clearTimeout(timer);
      timer = setTimeout(() => runSearch(input.value), 150);
    });
    input.addEventListener("keydown", (e) => {
      if (e.key !== "Enter") return;
      clearTimeout(timer);
      runSearch(input.value).then((hits) => { if (hits.length) select(hits[0], true); });
    });
    $("toggle-clusters").addEventListener("change", (e) => {
      outlines().then((all) => {
        if (!state.clusterLayer) state.clusterLayer = clusterLayer(all);
        if (e.target.checked && state.arr.name === "similarity") state.clusterLayer.addTo(map);
        else state.clusterLayer.remove();
      });
    });
    $("close-details").addEventListener("click", closeDetails);
    $("close-gallery").addEventListener("click", () => { $("gallery").hidden = true; });
    $("close-cluster").addEventListener("click", () => closeCluster());
    $("clear-filters").addEventListener("click", () => {
      state.filters = new Map();
      setFilter("", null);
    });
    $("select-shown").addEventListener("click", () => {
      if (!state.pass) return;
      const items = [];
      for (let i = 0; i < state.pass.length; i++) if (state.pass[i]) items.push(i);
      pick({ kind: "items" }, items);
    });
    $("export-csv").addEventListener("click", () =>
      selectionCSV().then((text) => download("selection.csv", text, "text/csv")));
    $("export-toml").addEventListener("click", () => selectionTOML().then((text) => {
      download("clusters-" + nextTrope() + ".toml", text, "text/plain");
      if (navigator.clipboard) navigator.clipboard.writeText(text).catch(() => {});
    }));
    $("clear-selection").addEventListener("click", () => clearPick());
    document.querySelectorAll('input[name="tool"]').forEach((r) =>
      r.addEventListener("change", () => { state.tool = r.value; }));
    window.addEventListener("popstate", () => applyHash(location.hash));
    buildFacets();
    clusterPanel();
    $("status").textContent =
      manifest.count.toLocaleString() + " images, " + manifest.clusters.length + " clusters";
    window.postermap = { map, state, select, runSearch, highlightCluster, openGallery,
      setFilter, switchArrangement, pick, clearPick, selectionCSV, selectionTOML,
      applyHash, closeCluster, update, itemsInRect };
    const restore = location.hash.length > 1 ? applyHash(location.hash) : Promise.resolve();
    restore.then(() => {
      state.ready = true;
      document.body.dataset.restored = "true";
      document.body.dataset.ready = "true";
    });
  }

  fetchJSON("data/manifest.json")
    .then((m) => loadOccupancy(m).then(() => init(m)))
    .catch((err) => {
      $("status").textContent = "Could not load the map: " + err.message;
      throw err;
    });
})();
