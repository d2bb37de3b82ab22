"""Growing a finished map: the images ingest added are embedded, cleaned and placed
without rebuilding the map, so every image already on it keeps its place.

:func:`grow_map` runs after the ingest stage has read the added source (the pipeline's
``add`` does both). Its steps, in order, each judge only the images their own artefact
does not list yet:

1. **embed** the new content hashes into shards of their own and append their rows to
   the embeddings (and extra poolings) in place;
2. **clean** the new rows against the whole collection
   (:func:`postermap.cleaning.clean_additions`), ``overrides.toml`` last;
3. **layout**: each new image on the map starts at the similarity-weighted mean position
   of its nearest images on the map (the neighbour index, in the CNN feature space); on a
   t-SNE map it then moves to where the t-SNE objective puts it against the fixed map
   (:func:`postermap.layout.tsne_place`, openTSNE's ``transform`` recipe with affinities
   from the same index); on a UMAP map it goes where the fitted reducer ``reduce`` kept
   puts it (``UMAP.transform``; maps made before it was kept keep the start); the old
   positions are untouched;
4. **grid**: :func:`postermap.grid.insert.insert_points` (old cells move only where
   moving pays more than ``move_penalty`` per image moved; the grid grows at its right
   and bottom edges);
5. **cluster**: a new image joins the cluster most of its nearest images on the map
   belong to (at least ``CLUSTER_VOTE`` of them), else it is noise; cluster ids and
   ``clusters.toml`` stay as they are, every cluster is scored and named again with its
   new members (curated names kept);
6. **neighbours**: the neighbour index grows (its smallest graph); new images get their lists,
   and an old image's list changes only where a new image beats its last neighbour.

Each step computes its outputs into ``add/<step>/`` (a workspace of its own) and then
moves them into place file by file, with a marker ``add/<step>.done.json`` last: a killed
``add`` re-run redoes at most the step it was in, and never reads a half-moved artefact
as its input (the next step starts only after the marker).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np
import pyarrow as pa

from postermap.cleaning import (
    INPUT_COLUMNS,
    CleanParams,
    clean_additions,
    mark_failed,
    unit_features,
    verdict_table,
)
from postermap.clustering.names import clusters_csv
from postermap.clustering.summary import cluster_table, summarise_clusters
from postermap.config import Settings
from postermap.curation import read_curation
from postermap.embedders import extras_of
from postermap.embedding import (
    embed_shards,
    extra_path,
    read_failures,
    shard_digest,
    shard_done,
    shard_key,
)
from postermap.errors import SettingsError
from postermap.grid import rotate, rows_down
from postermap.grid.insert import cell_units, insert_points
from postermap.images import DECODE_ERRORS
from postermap.layout import PARTIAL_NEIGHBOURS, tsne_place
from postermap.overrides import apply_overrides, read_overrides
from postermap.runner import make_runner
from postermap.similarity import NEIGHBOURS, NeighbourIndex, load_index, save_index
from postermap.vectors import Projection
from postermap.workspace import Grid, Layout, Neighbours, Workspace, atomic_write_json

log = logging.getLogger(__name__)

#: an old image moved one cell costs this much (cell units squared) on top of the change
#: of the grid cost: adding 1,000 images to 169k moves 3.1% of the map's images and keeps
#: the grid within 5% of a fresh one's in cells (1000: 1.4%, x1.050; 300: 9.5%, x1.038;
#: README, "Growing a map", has the sweep)
MOVE_PENALTY = 500.0
#: nearest images on the map a new image is placed by and votes its cluster with
PLACE_NEIGHBOURS = 10
#: share of those votes a cluster needs to take the new image in
CLUSTER_VOTE = 0.4
#: softness (in cosine) of the placement's weights: the closest images dominate
PLACE_SOFTNESS = 0.02
#: growth (new images / images on the map) above which ``add`` says a rebuild fits better:
#: the grid then grows by that much at its edges, far from the new images' look-alikes
#: (README: at +50% the grid cost was x14 of a fresh grid's)
REBUILD_HINT_GROWTH = 0.1
#: the steps of :func:`grow_map`, in order
STEPS = ("embed", "clean", "layout", "grid", "cluster", "neighbours")


def grow_map(
    ws: Workspace, settings: Settings, move_penalty: float = MOVE_PENALTY
) -> dict[str, dict[str, Any]]:
    """Embed, clean and place the rows ingest added since the map was built; returns each
    step's report (counts, seconds). Steps already done by a killed run are skipped."""
    index = _MapIndex(ws)
    reports: dict[str, dict[str, Any]] = {}
    reports["embed"] = _timed(lambda: _embed_new(ws, settings))
    steps: dict[str, Callable[[Workspace], dict[str, Any]]] = {
        "clean": lambda out: _clean_new(ws, out, settings, index),
        "layout": lambda out: _place_new(ws, out, index, settings),
        "grid": lambda out: _grid_new(ws, out, move_penalty),
        "cluster": lambda out: _cluster_new(ws, out, settings, index),
        "neighbours": lambda out: _neighbours_new(ws, out, index),
    }
    for name, compute in steps.items():
        reports[name] = _step(ws, name, compute)
    growth = grown_by(reports)
    if growth > REBUILD_HINT_GROWTH:
        log.warning(
            "add: the map grew by %.0f%%; the new images sit where the grid had room, "
            "often far from their look-alikes: a full rebuild (delete %s and run again) "
            "gives a tighter map",
            100 * growth,
            ws.marker_path("reduce"),
        )
    return reports


def grown_by(reports: dict[str, dict[str, Any]]) -> float:
    """New images placed on the map per image it held before (from :func:`grow_map`'s
    reports)."""
    grid = reports["grid"]
    return grid.get("new", 0) / max(1, grid.get("on_map_before", 0))


def clear_pending(ws: Workspace) -> None:
    """Forget the finished steps (the add is complete)."""
    if ws.pending_add_dir.exists():
        shutil.rmtree(ws.pending_add_dir)


# -- the steps' frame ------------------------------------------------------------------
def _timed(run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    started = time.perf_counter()
    report = run()
    return {**report, "seconds": round(time.perf_counter() - started, 3)}


def _step(ws: Workspace, name: str, compute: Callable[[Workspace], dict[str, Any]]) -> dict:
    """Run one step: compute into ``add/<name>/``, move the files into place, mark done."""
    state = ws.pending_add_dir
    done = state / f"{name}.done.json"
    if done.exists():
        log.info("add: %s already done", name)
        return json.loads(done.read_text())
    staging = state / name
    ready = staging / "ready.json"
    if not ready.exists():
        if staging.exists():
            shutil.rmtree(staging)
        staging.mkdir(parents=True)
        atomic_write_json(ready, _timed(lambda: compute(Workspace(staging))))
    report = json.loads(ready.read_text())
    for path in sorted(staging.rglob("*")):
        if path.is_file() and path != ready and not path.name.startswith(".tmp-"):
            target = ws.root / path.relative_to(staging)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, target)
    atomic_write_json(done, report)
    shutil.rmtree(staging)
    return report


class _MapIndex:
    """The neighbour index of the map (loaded once, on first use) and its projection:
    nearest images *on the map* of any features, as layout rows."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self._index: NeighbourIndex | None = None
        self._projection: Projection | None = None

    def project(self, features: np.ndarray) -> np.ndarray:
        if self._projection is None:
            self._projection = Projection.load(self.ws.projection_path)
        return self._projection(features)

    def nearest(self, vectors: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """(layout rows, cosines) of the k nearest images in the index, best first."""
        if self._index is None:
            self._index = load_index(self.ws.neighbour_index_path)
        labels, sims = self._index.query(vectors, k)
        return labels.astype(np.int64), sims

    def reset(self) -> None:
        self._index = None


def _new_map_vectors(ws: Workspace, index: _MapIndex, ids: list[str]) -> np.ndarray:
    """Projected features of the images ``ids`` (image ids), as the index holds them."""
    embeddings, rows = ws.embedding_rows(np.array(ids))
    return index.project(np.asarray(embeddings[rows], dtype=np.float32))


# -- 1. embed --------------------------------------------------------------------------
def _embed_new(ws: Workspace, settings: Settings) -> dict[str, Any]:
    """Features of the content hashes ingest added, in shards of their own (a killed run
    keeps its finished shards), appended to the embeddings."""
    ingest = ws.read_table("ingest", ["status", "content_hash"]).to_pydict()
    known = set(ws.read_embeddings().ids.tolist())
    new = sorted(
        {
            h
            for h, s in zip(ingest["content_hash"], ingest["status"], strict=True)
            if s == "ok" and h not in known
        }
    )
    if not new:
        return {"new": 0}
    if settings.features:
        raise SettingsError(
            f"this map's vectors come from --features {settings.features}; add does not read "
            f"vectors for new images yet: rebuild with the new images in the features file"
        )
    size = settings.shard_size
    key = shard_key(settings.model, settings.thumb_size, settings.precision)
    shards = [new[i : i + size] for i in range(0, len(new), size)]
    paths = [ws.shards_dir / f"add-{shard_digest(key, s)}.npy" for s in shards]
    extras = extras_of(settings.model)
    todo = [
        ([ws.thumb_path(h) for h in shard], path)
        for shard, path in zip(shards, paths, strict=True)
        if not shard_done(path, extras)
    ]
    if todo:
        with make_runner(settings.ray, settings.workers) as runner:
            embed_shards(todo, settings.model, settings.precision, settings.batch_size, runner)
    computed = sum(len(thumbs) for thumbs, _ in todo)
    failures = ws.read_embed_failures()
    for shard, path in zip(shards, paths, strict=True):
        for position, reason in read_failures(path).items():
            failures[shard[position]] = reason
            log.error("add: no features for %s: %s", ws.thumb_path(shard[position]), reason)
    ws.write_embed_failures(failures)
    ws.append_embeddings(new, paths, {n: [extra_path(p, n) for p in paths] for n in extras})
    return {"new": len(new), "embedded_now": computed}


# -- 2. clean --------------------------------------------------------------------------
def _clean_new(ws: Workspace, out: Workspace, settings: Settings, index: _MapIndex) -> dict:
    rows = ws.read_table("ingest", list(INPUT_COLUMNS)).to_pylist()
    mark_failed(rows, ws.read_embed_failures())
    old = ws.read_table("clean")
    old_status = dict(zip(old["id"].to_pylist(), old["status"].to_pylist(), strict=True))
    old_reason = dict(zip(old["id"].to_pylist(), old["reason"].to_pylist(), strict=True))
    new = [i for i, r in enumerate(rows) if r["id"] not in old_status]
    if not new:
        out.write_table("clean", old)
        return {"new": 0}
    on_map = [i for i, r in enumerate(rows) if old_status.get(r["id"]) == "ok"]
    cards = [
        i
        for i, r in enumerate(rows)
        if (old_reason.get(r["id"]) or "").startswith("placeholder_template")
    ]
    embeddings = ws.read_embeddings()
    layout_ids = ws.read_layout().ids.tolist()
    row_of = {r["id"]: i for i, r in enumerate(rows)}
    layout_rows = np.array([row_of[i] for i in layout_ids], np.int64)

    params = CleanParams(
        near_cosine=settings.near_cosine,
        near_layout=settings.near_layout,
        keep_near_duplicates=settings.keep_near_duplicates,
    )

    def features_of(at: np.ndarray) -> np.ndarray:
        return unit_features([rows[i] for i in at], embeddings.ids, embeddings.vectors)

    def map_neighbours(unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        projected = index.project(unit)
        labels, _ = index.nearest(projected, params.neighbours)
        return np.where(labels >= 0, layout_rows[np.maximum(labels, 0)], -1), projected

    verdicts = clean_additions(
        rows, new, on_map, cards, features_of, map_neighbours, params, _thumbnail_reader(ws)
    )
    new_rows = [rows[i] for i in new]
    verdicts = apply_overrides(new_rows, verdicts, read_overrides(ws.overrides_path))
    added = verdict_table(new_rows, verdicts).cast(old.schema)
    out.write_table("clean", pa.concat_tables([old, added]))
    statuses = Counter(added["status"].to_pylist())
    return {"new": len(new), **{k: int(v) for k, v in sorted(statuses.items())}}


def _thumbnail_reader(ws: Workspace) -> Callable[[str], Any]:
    from PIL import Image

    def thumbnail(content_hash: str) -> Image.Image | None:
        try:
            with Image.open(ws.thumb_path(content_hash)) as image:
                return image.convert("RGB")
        except DECODE_ERRORS as err:
            log.warning("add: thumbnail of %s unreadable (%s)", content_hash, err)
            return None

    return thumbnail


# -- 3. layout -------------------------------------------------------------------------
def _place_new(
    ws: Workspace, out: Workspace, index: _MapIndex, settings: Settings
) -> dict[str, Any]:
    layout = ws.read_layout()
    clean = ws.read_table("clean", ["id", "status"]).to_pydict()
    known = set(layout.ids.tolist())
    new = [
        i for i, s in zip(clean["id"], clean["status"], strict=True) if s == "ok" and i not in known
    ]
    if not new:
        out.write_layout(layout)
        return {"new": 0}
    labels, sims = index.nearest(
        _new_map_vectors(ws, index, new), max(PLACE_NEIGHBOURS, PARTIAL_NEIGHBOURS)
    )
    xy = place_by_neighbours(layout.xy, labels[:, :PLACE_NEIGHBOURS], sims[:, :PLACE_NEIGHBOURS])
    lost = ~np.isfinite(xy).all(axis=1)
    if lost.any():
        # no finite similarity to the map (a degenerate feature vector): the plain mean of
        # whatever the index returned, so the grid still gets a position
        log.warning(
            "add: %d new images have no finite similarity to the map (first: %s); "
            "placed at the mean of their nearest images",
            int(lost.sum()),
            new[int(np.flatnonzero(lost)[0])],
        )
        xy[lost] = layout.xy[labels[lost, :PLACE_NEIGHBOURS]].mean(axis=1)
    model = ws.read_umap_model() if settings.reducer == "umap" else None
    if model is not None:
        embeddings, rows = ws.embedding_rows(np.array(new))
        xy = model.place(embeddings, rows).astype(xy.dtype)
    elif settings.reducer == "tsne":
        distances = np.sqrt(np.maximum(2.0 - 2.0 * sims, 0.0))
        xy = tsne_place(layout.xy, xy, labels, distances, settings.workers).astype(xy.dtype)
    out.write_layout(
        Layout(np.concatenate([layout.ids, np.array(new)]), np.concatenate([layout.xy, xy]))
    )
    return {"new": len(new), "nearest_cosine": round(float(np.median(sims[:, 0])), 4)}


def place_by_neighbours(
    xy: np.ndarray, labels: np.ndarray, sims: np.ndarray, softness: float = PLACE_SOFTNESS
) -> np.ndarray:
    """Positions of new points: the mean position of their nearest old points (``labels``
    are rows of ``xy``, ``sims`` their cosines), weighted by ``exp((cos - best) /
    softness)`` so a new image lands beside its closest look-alikes rather than between
    two groups it half resembles."""
    weights = np.exp((sims - sims[:, :1]) / softness) * (labels >= 0)
    weights /= weights.sum(axis=1, keepdims=True)
    return np.einsum("nk,nkd->nd", weights, xy[np.maximum(labels, 0)]).astype(xy.dtype)


# -- 4. grid ---------------------------------------------------------------------------
def _grid_new(ws: Workspace, out: Workspace, move_penalty: float) -> dict[str, Any]:
    grid, layout = ws.read_grid(), ws.read_layout()
    known = set(grid.ids.tolist())
    position = {image_id: i for i, image_id in enumerate(layout.ids.tolist())}
    new = [i for i in layout.ids.tolist() if i not in known]
    if not new:
        out.write_grid(grid)
        return {"new": 0, "moved": 0}
    old_xy, new_xy = grid_frame(
        layout.xy[[position[i] for i in grid.ids.tolist()]],
        layout.xy[[position[i] for i in new]],
        grid,
    )
    old_cells, new_cells, rows, cols = insert_points(
        grid.cells, old_xy, new_xy, grid.rows, grid.cols, move_penalty=move_penalty
    )
    before = np.stack([grid.cells // grid.cols, grid.cells % grid.cols], axis=1)
    after = np.stack([old_cells // cols, old_cells % cols], axis=1)
    shift = np.abs(before - after).max(axis=1)
    moved = int((shift > 0).sum())
    out.write_grid(
        Grid(
            np.concatenate([grid.ids, np.array(new)]),
            np.concatenate([old_cells, new_cells]),
            rows,
            cols,
            grid.cell,
            grid.angle,
        )
    )
    return {
        "new": len(new),
        "on_map_before": len(grid.ids),
        "moved": moved,
        "moved_share": round(moved / len(grid.ids), 5),
        "moved_more_than_one_cell": int((shift > 1).sum()),
        "largest_move": int(shift.max()) if len(shift) else 0,
        "rows": rows,
        "cols": cols,
        "was": [grid.rows, grid.cols],
    }


def grid_frame(old_xy: np.ndarray, new_xy: np.ndarray, grid: Grid) -> tuple[np.ndarray, ...]:
    """Layout positions -> cell units of ``grid``, the frame its cells were assigned in:
    y down, turned by the grid's angle, min-max normalised over the old points (new
    points outside that box are clipped onto the grown grid by the insertion)."""
    old = rotate(rows_down(old_xy), grid.angle)
    new = rotate(rows_down(new_xy), grid.angle)
    lo, hi = old.min(axis=0), old.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    return (
        cell_units((old - lo) / span, grid.rows, grid.cols),
        cell_units((new - lo) / span, grid.rows, grid.cols),
    )


# -- 5. cluster ------------------------------------------------------------------------
def _cluster_new(
    ws: Workspace, out: Workspace, settings: Settings, index: _MapIndex
) -> dict[str, Any]:
    table = ws.read_table("cluster")
    layout = ws.read_layout()
    layout_ids = layout.ids.tolist()
    known = set(table["id"].to_pylist())
    new = [i for i in layout_ids if i not in known]
    old_labels = dict(zip(table["id"].to_pylist(), table["cluster"].to_pylist(), strict=True))
    labels = []
    curation = read_curation(ws.curation_path)
    if new:
        near, _ = index.nearest(_new_map_vectors(ws, index, new), PLACE_NEIGHBOURS)
        label_of_row = np.array([old_labels.get(i, -1) for i in layout_ids], np.int64)
        labels = vote_clusters(np.where(near >= 0, label_of_row[np.maximum(near, 0)], -1))
        for k, members in curation.add.items():
            for at, image_id in enumerate(new):
                if image_id in members:
                    labels[at] = k
        for k, members in curation.remove.items():
            for at, image_id in enumerate(new):
                if image_id in members and labels[at] == k:
                    labels[at] = -1
    # the old images keep their labels; every cluster is scored and named again with its
    # new members (clusters.toml's names still win), as the cluster stage would
    label_of = {**old_labels, **dict(zip(new, labels, strict=True))}
    ordered = np.array([label_of.get(i, -1) for i in layout_ids], np.int64)
    embeddings, rows = ws.embedding_rows(layout.ids)
    model = None if settings.features else settings.model
    infos = summarise_clusters(
        ws, layout_ids, ordered, embeddings, rows, settings.seed, model, curation.names
    )
    out.write_table("cluster", cluster_table(layout_ids, ordered, infos).cast(table.schema))
    out.write_clusters([asdict(i) for i in infos], clusters_csv(layout_ids, ordered, infos))
    joined = int(sum(1 for k in labels if k >= 0))
    return {"new": len(new), "joined_a_cluster": joined, "noise": len(new) - joined}


def vote_clusters(neighbour_labels: np.ndarray, share: float = CLUSTER_VOTE) -> list[int]:
    """Per row of the nearest old images' cluster labels (-1 = noise or none): the most
    common cluster if at least ``share`` of the row voted for it, else -1."""
    out = []
    k = neighbour_labels.shape[1] if neighbour_labels.ndim == 2 else 0
    for row in neighbour_labels.tolist():
        votes = Counter(label for label in row if label >= 0)
        best = votes.most_common(1)
        out.append(best[0][0] if best and best[0][1] >= share * k else -1)
    return out


# -- 6. neighbours ---------------------------------------------------------------------
def _neighbours_new(ws: Workspace, out: Workspace, index: _MapIndex) -> dict[str, Any]:
    layout_ids = ws.read_layout().ids.tolist()
    old = ws.read_neighbours()
    n_old, n = len(old.rows), len(layout_ids)
    projection = Projection.load(ws.projection_path)
    if n == n_old:
        out.write_neighbours(old)
        return {"new": 0, "old_lists_changed": 0}
    vectors = _new_map_vectors(ws, index, layout_ids[n_old:])
    graph = load_index(ws.neighbour_index_path)
    graph.add(vectors, np.arange(n_old, n))
    k = old.rows.shape[1] if old.rows.ndim == 2 and old.rows.shape[1] else NEIGHBOURS
    labels, sims = graph.query(vectors, min(k + 1, n))
    rows = np.full((n, k), -1, np.int32)
    scores = np.zeros((n, k), np.float32)
    rows[:n_old], scores[:n_old] = old.rows, old.scores
    changed: set[int] = set()
    for at in range(n - n_old):
        me = n_old + at
        keep = labels[at] != me
        mine, mine_sims = labels[at][keep][:k], sims[at][keep][:k]
        rows[me, : len(mine)], scores[me, : len(mine)] = mine, mine_sims
        for j, s in zip(mine.tolist(), mine_sims.tolist(), strict=True):
            if j < n_old and (rows[j, -1] < 0 or s > scores[j, -1]):
                _insert_neighbour(rows[j], scores[j], me, s)
                changed.add(j)
    save_index(out, graph, projection)
    out.write_neighbours(Neighbours(rows, scores))
    index.reset()
    return {"new": n - n_old, "old_lists_changed": len(changed)}


def _insert_neighbour(rows: np.ndarray, scores: np.ndarray, label: int, score: float) -> None:
    """Put ``label`` into a best-first list of fixed length, in place (the last drops)."""
    at = int(np.searchsorted(-scores, -score, side="right"))
    if rows[-1] < 0:  # a list with room: the first empty slot bounds the position
        at = min(at, int(np.argmax(rows < 0)))
    rows[at + 1 :] = rows[at:-1].copy()
    scores[at + 1 :] = scores[at:-1].copy()
    rows[at], scores[at] = label, score
