"""Cleaning images added to a finished map, against the whole collection.

``postermap add`` judges only the new rows, by the rules of
:func:`postermap.cleaning.clean_collection`, but every comparison that could involve a new
image is made: exact copies by bytes and pixels against every row, near-duplicate
candidates among the new images and between each new image and its nearest images on the
map (the neighbour index) plus perceptual-hash buckets over both, templates of plain
cards with the map's cards. Old rows keep their verdicts: where a new image and an image
already on the map are copies, the one on the map stays (a full run keeps the larger one,
which is the same image unless the added copy has more pixels).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from postermap.cleaning.boring import boring_verdicts
from postermap.cleaning.layout import Layouts
from postermap.cleaning.near import confirm, group_verdicts, phash_candidates
from postermap.cleaning.records import Verdict, find_exact_duplicates, keep_order
from postermap.cleaning.templates import template_groups

log = logging.getLogger(__name__)

#: row indices -> their L2-normalised features
FeatureReader = Callable[[np.ndarray], np.ndarray]
#: unit features of new rows -> ((n, k) row indices of their nearest rows on the map, -1:
#: none; the features as the map's neighbour index projects them, unit rows)
MapNeighbours = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def clean_additions(
    rows: list[dict],
    new: list[int],
    on_map: list[int],
    cards: list[int],
    features_of: FeatureReader,
    map_neighbours: MapNeighbours,
    params,
    thumbnail=None,
) -> dict[str, Verdict]:
    """Verdicts for the added rows ``new`` (row indices; ids missing from the result are ok).

    Args:
        rows: every ingest row, old and new (embed failures marked, see ``mark_failed``).
        new: indices of the added rows.
        on_map: indices of the old rows on the map (clean status ``ok``).
        cards: indices of the old rows that are placeholder-template cards.
        features_of: unit features of the given rows.
        map_neighbours: each new image's nearest images on the map, as row indices.
        params: a :class:`postermap.cleaning.CleanParams`.
        thumbnail: reads a thumbnail by content hash (the graphics' pixel check).
    """
    is_new = np.zeros(len(rows), bool)
    is_new[new] = True
    verdicts: dict[str, Verdict] = {}
    new_ids = {rows[i]["id"] for i in new}
    exact = find_exact_duplicates(rows, first=lambda r: (r["id"] in new_ids, r["path"]))
    for dup, (rep, reason) in exact.items():
        if dup in new_ids:
            verdicts[dup] = Verdict("duplicate", reason, rep, 1.0)
    live = [i for i in new if rows[i]["status"] == "ok" and rows[i]["id"] not in verdicts]
    verdicts.update(boring_verdicts(rows, live, params))
    live = [i for i in live if rows[i]["id"] not in verdicts]
    if not live:
        return verdicts
    live_array = np.asarray(live, np.int64)
    unit = features_of(live_array)
    pairs = _candidates(
        rows, live_array, unit, on_map, cards, map_neighbours, params.neighbours, params.phash_bits
    )
    if len(pairs) == 0:
        return verdicts
    # everything below works on the rows the pairs touch, renumbered
    sub = np.unique(np.concatenate([pairs.ravel(), live_array]))
    local = {int(g): k for k, g in enumerate(sub)}
    sub_rows = [rows[i] for i in sub]
    sub_pairs = np.vectorize(local.__getitem__, otypes=[np.int64])(pairs)
    sub_features = np.zeros((len(sub), unit.shape[1]), np.float32)
    at_new = np.array([local[int(i)] for i in live_array])
    sub_features[at_new] = unit
    others = np.setdiff1d(np.arange(len(sub)), at_new)
    if len(others):
        sub_features[others] = features_of(sub[others])
    layouts = Layouts.from_rows(sub_rows)
    graphic = _median_graphic(rows, on_map + live)
    card_set = set(cards)
    judged = card_set | set(live) | set(on_map)
    template_live = [local[int(i)] for i in sub if int(i) in judged]
    for members in template_groups(
        sub_rows, layouts, template_live, sub_pairs, params, graphic=graphic
    ):
        for k in members:
            if is_new[sub[k]]:
                verdicts[sub_rows[k]["id"]] = Verdict(
                    "boring",
                    f"placeholder_template: one of {len(members)} plain cards of one layout, "
                    "only a line of text differs",
                )
    taken = np.array(
        [r["id"] in verdicts or int(g) in card_set for r, g in zip(sub_rows, sub, strict=True)]
    )
    sub_pairs = sub_pairs[~taken[sub_pairs[:, 0]] & ~taken[sub_pairs[:, 1]]]
    found = confirm(sub_rows, sub_features, layouts, sub_pairs, params, thumbnail)
    verdicts.update(
        group_verdicts(
            sub_rows,
            sub_features,
            found,
            params.keep_near_duplicates,
            # the map's images first: an old image is always a group's representative
            first=lambda k: (bool(is_new[sub[k]]), keep_order(sub_rows[k])),
            judged=lambda k: bool(is_new[sub[k]]),
        )
    )
    return verdicts


def _candidates(
    rows: list[dict],
    live: np.ndarray,
    unit: np.ndarray,
    on_map: list[int],
    cards: list[int],
    map_neighbours: MapNeighbours,
    k: int,
    phash_bits: int,
) -> np.ndarray:
    """(m, 2) row indices (i < j) of candidate pairs with at least one new image: new
    with new by CNN neighbours, new with the map's nearest, and perceptual-hash buckets
    over the map's images, its cards and the new ones."""
    pairs: set[tuple[int, int]] = set()
    near, projected = map_neighbours(unit)
    for a, b in _nearest_among(projected, k):
        pairs.add((int(live[a]), int(live[b])))
    for i, row in zip(live.tolist(), near, strict=True):
        for j in row[:k].tolist():
            if j >= 0 and j != i:
                pairs.add((min(i, j), max(i, j)))
    added = set(live.tolist())
    members = sorted(set(on_map) | set(cards) | added)
    new = {at for at, i in enumerate(members) if i in added}
    hashes = [rows[i].get("phash") for i in members]
    for a, b in phash_candidates(hashes, phash_bits, involving=new).tolist():
        pairs.add((members[a], members[b]))
    return np.array(sorted(pairs), np.int64).reshape(-1, 2)


def _nearest_among(vectors: np.ndarray, k: int, chunk: int = 2048) -> set[tuple[int, int]]:
    """Pairs (i < j) where j is among i's k most similar rows of ``vectors`` (unit rows,
    exact: the new images are few, and their projection is the map's)."""
    pairs: set[tuple[int, int]] = set()
    n = len(vectors)
    k = min(k, n - 1)
    if k <= 0:
        return pairs
    for start in range(0, n, chunk):
        sims = vectors[start : start + chunk] @ vectors.T
        for i in range(len(sims)):
            sims[i, start + i] = -np.inf
        best = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        for i, row in enumerate(best.tolist()):
            for j in row:
                a = start + i
                pairs.add((min(a, j), max(a, j)))
    return pairs


def _median_graphic(rows: list[dict], live: list[int]) -> float:
    """The collection's median graphic score (flat + palette share), as the template
    pass of a full clean measures it."""
    scores = [(rows[i].get("flat") or 0.0) + (rows[i].get("palette") or 0.0) for i in live]
    return float(np.median(scores)) if scores else 0.0
