"""Linking images by their best-matching salient cells: the small-motif half of the graph.

A trope whose shared motif is small (an eyeball, a billiard ball, a tenth of the poster
wide) is invisible to any vector that pools the whole picture: the rest of each poster
outweighs it. The embed stage keeps, per image, the few cells of a mid-level feature map
(14 x 14 cells of 16 px) with the strongest activation (``embed/cells.npy``, see
:func:`postermap.embedders.pooling.salient_cells`); a small motif is usually among them.
Two images are as similar as their best-matching pair of salient cells.

:func:`cell_graph` finds, for every salient cell, its nearest cells of other images
(hnswlib on a whitened PCA of the cells), turns cell matches into image links (weight: the
best cell match of the pair) and keeps each image's ``neighbours`` strongest links. The
cluster stage averages this graph with the whole-picture kNN graph before Louvain.

Cost: ``N * used`` cells are indexed (676k at 169k images and 4 cells, the default: on
the tuning set 8 cells scored 0.94 / 0.97 against 0.91 / 0.96 for 4, at twice the index
time, 72 instead of 36 s at 169k). The index is two graphs built at once, each in one
thread (the same graphs, so the same cluster numbers, on every run: hnswlib's threaded
inserts into one graph are not reproducible; :mod:`postermap.knn`); queries only read it
and run on all cores.
"""

from __future__ import annotations

import logging

import numpy as np

from postermap.knn import SHARDS, ShardedIndex

log = logging.getLogger(__name__)

#: PCA dimensions (whitened) of the cell descriptors
CELL_DIMS = 32
#: nearest cells looked up per cell
CELL_NEIGHBOURS = 10
#: images whose cells train the PCA
PCA_IMAGES = 8_000
#: images per chunk of index queries
CHUNK = 16_384


def cell_graph(
    cells: np.ndarray,
    rows: np.ndarray | None,
    used: int,
    *,
    neighbours: int = 20,
    dims: int = CELL_DIMS,
    cell_neighbours: int = CELL_NEIGHBOURS,
    seed: int = 0,
    shards: int = SHARDS,
):
    """Symmetric image graph (scipy CSR, N x N for ``cells[rows]``) from the first ``used``
    of each image's salient cells; ``cells`` is (rows, m, channels), e.g. a memmap. The
    cells' index is ``shards`` graphs built at once (:mod:`postermap.knn`)."""
    from scipy import sparse
    from sklearn.decomposition import PCA

    all_rows = np.arange(len(cells)) if rows is None else np.asarray(rows)
    n = len(all_rows)
    width = cells.shape[2]
    used = min(used, cells.shape[1])
    if n < 2 or used < 1:
        return sparse.csr_matrix((n, n))

    def read(part: np.ndarray) -> np.ndarray:
        order = np.argsort(part, kind="stable")
        block = np.asarray(cells[part[order], :used], dtype=np.float32)[np.argsort(order)]
        return block.reshape(-1, width)

    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(n, min(n, PCA_IMAGES), replace=False))
    train = read(all_rows[sample])
    dims = min(dims, width, len(train))
    pca = PCA(n_components=dims, whiten=True, random_state=seed).fit(train)

    vectors = np.empty((n * used, dims), dtype=np.float32)
    for start in range(0, n, CHUNK):
        part = read(all_rows[start : start + CHUNK])
        z = pca.transform(part).astype(np.float32)
        z /= np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        vectors[start * used : start * used + len(z)] = z
    k = min(cell_neighbours + used, len(vectors))
    index = ShardedIndex.build(
        vectors, links=8, ef_construction=40, ef=max(2 * k, 30), seed=seed, shards=shards
    )
    keep = min(neighbours, n - 1)
    src_all, dst_all, w_all = [], [], []
    for start in range(0, n, CHUNK):
        stop = min(n, start + CHUNK)
        found, sims = index.query(vectors[start * used : stop * used], k)
        src = np.repeat(np.arange(start, stop), used * k)
        dst = found.ravel().astype(np.int64) // used
        weight = np.maximum(sims.ravel(), 0.0)
        other = src != dst
        s, d, w = _strongest(src[other], dst[other], weight[other], keep)
        src_all.append(s)
        dst_all.append(d)
        w_all.append(w)
    graph = sparse.csr_matrix(
        (np.concatenate(w_all), (np.concatenate(src_all), np.concatenate(dst_all))),
        shape=(n, n),
    )
    return ((graph + graph.T) * 0.5).tocsr()


def _strongest(
    src: np.ndarray, dst: np.ndarray, weight: np.ndarray, keep: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per (src, dst) pair its best weight, then per src its ``keep`` strongest pairs."""
    order = np.lexsort((-weight, dst, src))
    src, dst, weight = src[order], dst[order], weight[order]
    first = np.ones(len(src), dtype=bool)
    first[1:] = (src[1:] != src[:-1]) | (dst[1:] != dst[:-1])
    src, dst, weight = src[first], dst[first], weight[first]  # best match per pair
    order = np.lexsort((dst, -weight, src))
    src, dst, weight = src[order], dst[order], weight[order]
    starts = np.r_[0, np.nonzero(src[1:] != src[:-1])[0] + 1]
    rank = np.arange(len(src)) - np.repeat(starts, np.diff(np.r_[starts, len(src)]))
    top = rank < keep
    return src[top], dst[top], weight[top].astype(np.float64)
