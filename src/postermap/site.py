"""The static viewer site: the viewer's files, its data, links to images and thumbnails.

Layout (all URLs relative, so the site can be hosted anywhere)::

    index.html, app.js, style.css, vendor/    the viewer (package data)
    tiles/{z}/{y}/{x}.jpg                      the mosaic pyramid (:mod:`postermap.mosaic`)
    data/manifest.json                         grid shape, zoom levels, clusters
    data/outlines.json                         cluster outlines, loaded on first use
    data/items/NNNNN.json                      per-image details, SHARD_SIZE per file
    data/rows/NNNNN.json                       id, title, path, cluster, metadata (export)
    data/search.json                           titles + file names, loaded on demand
    data/ids/<xx>.json                         item number of each image id whose first
                                               two hex digits are xx (links name images
                                               by id, so they survive add and rebuilds)
    data/clusters/<n>.json                     item indices of cluster n (gallery)
    data/facets/<n>.bin                        per-image values of facet n (typed arrays)
    data/classes/<k>.bin                       items whose top ImageNet classes hold k
    arrangements/<column>/tiles/, cells.bin    another arrangement: its pyramid, and the
                                               int32 item number of each of its cells
    images/<id>.<ext>                          originals (hard links where possible)
    thumbs/<content hash>.jpg                  256 px thumbnails (hard links)

The site is built in a temporary folder and swapped into place whole
(:func:`swap_into_place`), so a killed run leaves the previous site intact.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from postermap.arrangements import Arrangement
from postermap.clustering import cluster_members
from postermap.concepts import TABLE, class_names, write_class_index
from postermap.curation import NEW_TROPE_BASE
from postermap.facets import build_facets
from postermap.mosaic import TILE_SIZE, fills_cell
from postermap.outlines import cluster_outlines
from postermap.workspace import (
    Grid,
    Neighbours,
    Workspace,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    thumb_name,
)

log = logging.getLogger(__name__)

SHARD_SIZE = 1000


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while millions of small lists and dicts are
    built: with 170k items' rows alive, its passes took 4/5 of building the neighbour
    lists (10.5 s of 13.9 s at 170k images). Nothing built here forms a cycle."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def write_site_data(
    data_dir: Path,
    items: list[dict],
    fields: list[str],
    grid: Grid,
    levels: int,
    clusters: list[dict],
    similar: Similar,
    cell: tuple[int, int],
    background: str,
    top_classes: tuple[np.ndarray, np.ndarray] | None = None,
    arrangements: list[tuple[Arrangement, int]] = (),
    vectors: str | None = None,
) -> None:
    """The viewer's data: item shards, search index, cluster members and outlines,
    facets, picture classes, other arrangements' cells, and the manifest (written last:
    a reader that finds it finds everything it names).

    Args:
        items: catalog rows of the images on the map (with ``row``, ``col``, ``cluster``).
        fields: catalog columns shown in the detail panel.
        grid: the grid the items sit in.
        levels: zoom levels of the tile pyramid.
        clusters: the ranked cluster list.
        similar: each item's most similar items (:func:`similar_items`).
        cell: (width, height) of a cell at full resolution, in pixels.
        top_classes: per item, its best ImageNet classes and their probabilities
            (:func:`postermap.concepts.top_classes`), for the search by picture.
        arrangements: other arrangements of the same items with their pyramids' zoom
            levels (their tiles are written by the caller under ``arrangements/<name>``).
        vectors: where the features came from (``model efficientnet-lite0``, ``features
            file x.parquet``), kept in the manifest beside ``concepts`` (null when the
            vectors have no ImageNet classes).
    """
    rows, cols = grid.rows, grid.cols
    # Items are numbered in row-major cell order. Where the grid has empty cells, the
    # viewer finds the item under a cell from one bit per cell (data/cells.bin: 21 KB
    # at 169k cells) and a prefix count; a full grid needs not even that.
    cells = np.array([item["row"] * cols + item["col"] for item in items], dtype=np.int64)
    if len(cells) and not np.all(np.diff(cells) > 0):
        raise RuntimeError("site items must be in row-major cell order")
    holes = rows * cols - len(items)
    if holes:
        occupied = np.zeros(rows * cols, dtype=bool)
        occupied[cells] = True
        atomic_write_bytes(data_dir / "cells.bin", np.packbits(occupied, bitorder="little"))
    # one shard's details at a time: all of them at once were 1M dicts holding 20M
    # neighbour pairs, most of the stage's memory at a million images
    for start in range(0, len(items), SHARD_SIZE):
        with gc_paused():
            details = _details(items, start, fields, similar, cell, top_classes)
        atomic_write_json(data_dir / "items" / f"{start // SHARD_SIZE:05d}.json", details)
        # what a selection's export needs, without the neighbour lists: a sixth of the
        # bytes to fetch for a CSV of thousands of images
        atomic_write_json(
            data_dir / "rows" / f"{start // SHARD_SIZE:05d}.json",
            [[d["id"], d["title"], d["path"], d["cluster"], d["meta"]] for d in details],
        )
    atomic_write_json(
        data_dir / "search.json",
        [f"{item['title']}\t{_display_name(item)}" for item in items],
    )
    write_id_index(data_dir / "ids", [item["id"] for item in items])
    labels = np.array([item["cluster"] for item in items], dtype=np.int64)
    cluster_of_cell = np.full(rows * cols, -1, dtype=np.int64)
    cluster_of_cell[cells] = labels
    outlines = cluster_outlines(cluster_of_cell.reshape(rows, cols))
    members = {label: cells.tolist() for label, cells in cluster_members(labels)}
    listed = []
    for rank, info in enumerate(clusters):
        label = info["id"]
        atomic_write_json(data_dir / "clusters" / f"{label}.json", members.get(label, []))
        listed.append(
            {
                "id": label,
                "rank": rank + 1,
                "label": info["name"],
                "provenance": info["provenance"],
                "size": info["size"],
                "score": info["score"],
                "imagenet": info["imagenet"],
                "keywords": info["keywords"],
                "box": _ring_box(outlines.get(label)),
            }
        )
    atomic_write_json(data_dir / "outlines.json", {str(k): v for k, v in outlines.items()})
    facets = []
    for n, facet in enumerate(build_facets(items, fields)):
        atomic_write_bytes(data_dir / "facets" / f"{n}.bin", facet.data)
        facets.append({**facet.spec, "file": f"data/facets/{n}.bin"})
    concepts = None
    if top_classes is not None:
        counts = write_class_index(data_dir / "classes", *top_classes)
        concepts = {
            "table": "/".join(TABLE[1:]),
            "counts": [counts.get(k, 0) for k in range(len(class_names()))],
        }
    width, height = cell
    listed_arrangements = []
    for arrangement, arrangement_levels in arrangements:
        folder = f"arrangements/{arrangement.slug}"
        atomic_write_bytes(
            data_dir.parent / folder / "cells.bin", arrangement.cell_item.astype("<i4").tobytes()
        )
        listed_arrangements.append(
            {
                "name": arrangement.name,
                "rows": arrangement.rows,
                "cols": arrangement.cols,
                "width": arrangement.cols * width,
                "height": arrangement.rows * height,
                "maxZoom": arrangement_levels - 1,
                "tiles": f"{folder}/tiles",
                "cells": f"{folder}/cells.bin",
                "bins": arrangement.bins,
            }
        )
    manifest = {
        "version": 3,
        "count": len(items),
        "rows": rows,
        "cols": cols,
        "holes": holes,
        "cellWidth": width,
        "cellHeight": height,
        "width": cols * width,
        "height": rows * height,
        "tileSize": TILE_SIZE,
        "maxZoom": levels - 1,
        "shardSize": SHARD_SIZE,
        "background": background,
        "fields": fields,
        "clusters": listed,
        "facets": facets,
        "concepts": concepts,
        "vectors": vectors,
        "arrangements": listed_arrangements,
        "newTropeBase": NEW_TROPE_BASE,
    }
    atomic_write_json(data_dir / "manifest.json", manifest)


def _details(
    items: list[dict],
    start: int,
    fields: list[str],
    similar: Similar,
    cell: tuple[int, int],
    top_classes: tuple[np.ndarray, np.ndarray] | None,
) -> list[dict]:
    """The items of the shard from item ``start`` as the viewer's item shards hold them."""
    details = []
    names = class_names() if top_classes is not None else []
    stop = min(start + SHARD_SIZE, len(items))
    for index, item, item_similar in zip(
        range(start, stop), items[start:stop], similar.lists(start, stop), strict=True
    ):
        details.append(
            {
                "id": item["id"],
                "title": item["title"],
                "file": _display_name(item),
                "path": item["path"],
                "image": f"images/{item.get('image_file') or _image_name(item)}",
                "thumb": f"thumbs/{item['content_hash']}.jpg",
                "row": item["row"],
                "col": item["col"],
                "cluster": item["cluster"],
                "clusterName": item.get("cluster_name"),
                "fill": fills_cell(item["width"] or 0, item["height"] or 0, *cell),
                "similar": item_similar,
                "meta": {f: item[f] for f in fields if item.get(f) not in (None, "")},
            }
        )
        if top_classes is not None:
            classes, probs = top_classes
            details[-1]["classes"] = [
                [names[int(k)], round(float(p), 3)]
                for k, p in zip(classes[index], probs[index], strict=True)
                if p >= 0.01
            ]
    return details


#: hex digits of an image id in a link: 64 bits, no collision in any collection this maps
LINK_ID_DIGITS = 16


def link_key(image_id: str) -> str:
    """An id as links write it: its first 16 hex digits, and for a later byte copy
    (``<hash>-<hash of its path>``, on the map only when kept by hand) 8 of its suffix's."""
    head, _, tail = image_id.lower().partition("-")
    return head[:LINK_ID_DIGITS] + (f"-{tail[:8]}" if tail else "")


def write_id_index(ids_dir: Path, ids: list[str]) -> None:
    """Item number by image id, in 256 files by the id's first two hex digits.

    A link names its selected image by id rather than by item number: item numbers are
    row-major cell order, which ``add`` (a grown grid, a new image in a hole) and every
    rebuild change, while the id is the image's content hash. The viewer fetches the one
    small file a link needs (about 1/256 of the ids).
    """
    shards: dict[str, dict[str, int]] = {}
    for index, image_id in enumerate(ids):
        key = link_key(image_id)
        shards.setdefault(key[:2], {})[key] = index
    for prefix, entries in shards.items():
        atomic_write_json(ids_dir / f"{prefix}.json", entries)


def _ring_box(rings: list | None) -> list[int] | None:
    """[row0, col0, row1, col1] corners around a cluster's rings (for "fit the view")."""
    if not rings:
        return None
    corners = np.array([p for ring in rings for p in ring])
    return [*corners.min(axis=0).tolist(), *corners.max(axis=0).tolist()]


@dataclass(frozen=True)
class Similar:
    """Each item's most similar items: ``items[i]`` their item numbers (best first, -1 =
    none), ``scores[i]`` their cosines. Held as two arrays and turned into the viewer's
    ``[[item, cosine], ...]`` lists one shard at a time (:meth:`lists`): the lists of all
    items at once were 20M small Python lists at a million images."""

    items: np.ndarray
    scores: np.ndarray

    def lists(self, start: int, stop: int) -> list[list[list]]:
        """The lists of items ``start`` to ``stop`` (exclusive), cosines to 3 places."""
        targets = self.items[start:stop].tolist()
        scores = np.round(self.scores[start:stop].astype(np.float64), 3).tolist()
        return [
            [[t, sc] for t, sc in zip(row_targets, row_scores, strict=True) if t >= 0]
            for row_targets, row_scores in zip(targets, scores, strict=True)
        ]


def similar_items(layout_ids: np.ndarray, neighbours: Neighbours, item_ids: list[str]) -> Similar:
    """The most similar items of each of the items with ``item_ids`` (``neighbours``
    rows index ``layout_ids``; an image not on the map is no one's neighbour, an item
    missing from the layout has none)."""
    index_of = {image_id: index for index, image_id in enumerate(item_ids)}
    id_list = layout_ids.tolist()
    item_of_row = np.array([index_of.get(i, -1) for i in id_list] + [-1], dtype=np.int64)
    row_of = {image_id: row for row, image_id in enumerate(id_list)}
    # -1 (not in the layout) picks a row of no neighbours appended at the end
    layout_row = np.fromiter(
        (row_of.get(i, -1) for i in item_ids), dtype=np.int64, count=len(item_ids)
    )
    k = neighbours.rows.shape[1] if neighbours.rows.ndim == 2 else 0
    rows = np.vstack([neighbours.rows.reshape(-1, k), np.full((1, k), -1, np.int64)])
    scores = np.vstack([neighbours.scores.reshape(-1, k), np.zeros((1, k), np.float32)])
    rows, scores = rows[layout_row], scores[layout_row]
    # -1 (no neighbour) picks the sentinel at the end of item_of_row
    targets = item_of_row[np.where(rows >= 0, rows, -1)].astype(np.int32)
    return Similar(targets, scores.astype(np.float32))


def link_thumbs(ws: Workspace, thumbs_dir: Path, items: list[dict]) -> None:
    """The gallery and "more like this" show the 256 px thumbnails (hard links)."""
    thumbs_dir.mkdir(parents=True, exist_ok=True)
    source_dir, target_dir = str(ws.thumbs_dir), str(thumbs_dir)
    for item in items:
        digest = item["content_hash"]
        _link(f"{source_dir}/{thumb_name(digest)}", f"{target_dir}/{digest}.jpg")


def _link(source: str, target: str) -> None:
    """Hard-link ``source`` at ``target`` (kept if there; a copy across file systems).

    Plain strings, not ``Path``: at 170k images twice per render, pathlib's parsing was
    most of the time of linking.
    """
    try:
        os.link(source, target)
    except FileExistsError:
        return
    except FileNotFoundError:
        raise
    except OSError:  # another file system, or no hard links there: copy
        with atomic_path(Path(target)) as tmp:
            shutil.copy2(source, tmp)


def link_images(ws: Workspace, images_dir: Path, items: list[dict]) -> list[str]:
    """Hard-link each original into the site (copy across file systems); never move it.

    An original that has gone since ingest (moved or deleted by its owner) is replaced by
    its thumbnail, so the detail panel still shows the image; returns the sources of
    those, for a warning.
    """
    images_dir.mkdir(parents=True, exist_ok=True)
    target_dir = str(images_dir)
    missing = []
    for item in items:
        name = _image_name(item)
        try:
            _link(item["file"], f"{target_dir}/{name}")
        except FileNotFoundError:
            missing.append(item["source"])
            stem = name.rpartition(".")[0] or name
            _link(str(ws.thumb_path(item["content_hash"])), f"{target_dir}/{stem}.jpg")
            item["image_file"] = f"{stem}.jpg"
    return missing


def _display_name(item: dict) -> str:
    """The file name a user knows: the name in their folder, or the URL it came from."""
    if item["source"].startswith(("http://", "https://")):
        return item["source"]
    return item["path"].rpartition("/")[2]


def _image_name(item: dict) -> str:
    # PurePath.suffix without building a path (twice per image per render)
    name = item["path"].rpartition("/")[2]
    dot = name.rfind(".")
    suffix = name[dot:] if 0 < dot < len(name) - 1 else ""
    return f"{item['id']}{suffix.lower()}"


def copy_viewer(site: Path) -> None:
    viewer = resources.files("postermap") / "viewer"
    with resources.as_file(viewer) as source:
        shutil.copytree(
            source, site, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__", "*.py")
        )


def swap_into_place(tmp: Path, site: Path) -> None:
    old = site.with_name(".old-site")
    if old.exists():
        shutil.rmtree(old)
    if site.exists():
        site.rename(old)
    tmp.rename(site)
    if old.exists():
        shutil.rmtree(old)
