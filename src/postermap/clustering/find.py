"""Finding clusters: communities of a kNN graph (default), HDBSCAN or DBSCAN.

The default, :func:`louvain_clusters`, clusters the embedding space, not the 2-D layout:
t-SNE keeps neighbourhoods but tears a trope whose members also resemble other things into
several islands, and HDBSCAN's leaf clusters of the layout then split it further. In the
embedding space (PCA-32, whitened, of the regional max-pooled features) every image links
to its ``k`` most similar images (cosine, hnswlib), and the Louvain method
(scikit-network) finds the groups densely linked inside. Its quality is the constant Potts
model: a group holds together when its members' link weight per pair of members exceeds
``density``. Unlike modularity, whose resolution limit merges ever larger groups as the
collection grows, that criterion means the same at 500 and at 1,000,000 images. Members
that keep less than ``core_share`` of their link weight inside their group are set apart
as noise (-1), as are groups smaller than ``min_cluster_size``: a trope is a group of
look-alikes, not a partition of everything.

Why Louvain and not Leiden: scikit-network's Leiden refinement draws from the C library's
unseeded ``rand()``, so two runs in one process differ; ``leidenalg`` is GPL. On the tuning
set Louvain scores the same as Leiden (recall and purity within 0.01 over the grid of
settings tried), and it is reproducible.

The cluster stage averages this graph with the salient-cell graph of :mod:`.cells`
(``extra_graph``), which links images sharing a small motif. The Potts criterion caps
a cluster's size (a few dozen members with 20 links each), so a larger group of
look-alikes comes out in pieces; :func:`merge_fragments` joins pieces that link mostly to
each other (on 60,000 synthetic images in groups of 333: ARI 0.22 -> 0.80, noise 0.30 ->
0.07; on the tuning set it changes nothing). On the tuning set
(clipart-posters seed 0; ``benchmarks/clusters.py`` prints every variant on every set)
the whole-picture graph alone finds each planted trope at recall 0.68 / purity 0.72, both
graphs together (4 salient cells per image) at 0.91 / 0.96, where HDBSCAN in the layout
scored 0.55 / 0.47.
"""

from __future__ import annotations

import logging
import math

import numpy as np

from postermap.knn import ShardedIndex

log = logging.getLogger(__name__)

#: PCA dimensions of the "embedding" space for HDBSCAN/DBSCAN: fast-hdbscan's exact k-d
#: tree path handles up to 30 dimensions (above, it needs pynndescent's kNN graph).
EMBEDDING_DIMS = 30
#: PCA dimensions (whitened) of the kNN graph's space
GRAPH_DIMS = 32
#: share of a member's kNN link weight that must stay inside its cluster
CORE_SHARE = 0.3
#: communities whose mutual links are this share of the smaller one's are one group ...
MERGE_SHARE = 0.2
#: ... when they also link this many times more than chance (their volumes' product over
#: the graph's total) would make them
MERGE_LIFT = 2.0


def find_clusters(
    points: np.ndarray,
    method: str,
    *,
    eps: float = 1.0,
    min_samples: int = 8,
    min_cluster_size: int = 10,
    selection: str = "leaf",
    neighbours: int = 20,
    density: float = 0.06,
    extra_graph=None,
    seed: int = 0,
) -> np.ndarray:
    """Cluster labels (0.. by decreasing size, -1 noise) for ``points`` (N x D).

    ``louvain``: see :func:`louvain_clusters` (``neighbours``, ``density``,
    ``min_cluster_size``, ``extra_graph``). For DBSCAN, ``eps`` is relative, so one value
    suits any N: in the 2-D layout it is in units of the mean spacing between points
    (points scaled to the unit square, aspect kept, radius ``eps / sqrt(N)``); in a
    higher-dimensional space, in units of the median distance to the ``min_samples``-th
    neighbour. For HDBSCAN, ``selection="leaf"`` keeps tight groups that "excess of mass"
    merges into a few large regions.
    """
    points = np.asarray(points, dtype=np.float64)
    if method == "louvain":
        return louvain_clusters(
            points,
            neighbours=neighbours,
            density=density,
            min_cluster_size=min_cluster_size,
            extra_graph=extra_graph,
            seed=seed,
        )
    if method == "dbscan":
        from sklearn.cluster import DBSCAN

        if points.shape[1] == 2:
            lo = points.min(axis=0)
            span = float((points.max(axis=0) - lo).max()) or 1.0
            points = (points - lo) / span
            radius = eps / math.sqrt(len(points))
        else:
            from sklearn.neighbors import NearestNeighbors

            k = min(min_samples, len(points) - 1)
            distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(points).kneighbors(points)
            radius = eps * float(np.median(distances[:, -1]))
        labels = DBSCAN(eps=radius, min_samples=min_samples).fit_predict(points)
    elif method == "hdbscan":
        import fast_hdbscan

        labels = fast_hdbscan.HDBSCAN(
            min_cluster_size=min_cluster_size,
            min_samples=min_samples,
            cluster_selection_method=selection,
            reproducible=True,
        ).fit_predict(points)
    else:
        raise ValueError(f"unknown clustering method {method!r}; use louvain, hdbscan or dbscan")
    return renumber_by_size(labels)


def whiten(points: np.ndarray) -> np.ndarray:
    """Principal-axis coordinates scaled to unit variance, so that in the kNN graph's
    cosine every direction counts alike, not only the few largest (in posters: the
    palette and the layout)."""
    points = np.asarray(points, dtype=np.float32)
    return points / np.maximum(points.std(axis=0), 1e-12)


#: graphs the whole-picture index is built as: one. Two gave no time back at 169k
#: (1.05x, ``benchmarks/knn_shards.py``): a cheap graph searched hard, and a search costs
#: nearly as much in a graph half the size; and the groups of
#: ``test_a_group_larger_than_the_density_allows_is_not_torn_apart`` came out differently.
GRAPH_SHARDS = 1


def knn_graph(points: np.ndarray, k: int, seed: int = 0, shards: int = GRAPH_SHARDS):
    """Symmetric sparse graph (scipy CSR) linking every point to its ``k`` nearest by
    cosine, weighted by the (non-negative) similarity, averaged over both directions.

    hnswlib (:mod:`postermap.knn`), each of its ``shards`` graphs built in one thread, so
    the graph (and so the cluster numbers) is the same on every run.
    """
    from scipy import sparse

    n = len(points)
    k = min(k, n - 1)
    unit = np.array(points, dtype=np.float32, order="C")  # a copy: the caller's is kept
    unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    index = ShardedIndex.build(
        unit, links=12, ef_construction=60, ef=max(2 * k, 50), seed=seed, shards=shards
    )
    found, sims = index.query(unit, k + 1)
    # drop each point itself (usually the first hit, not always when there are ties)
    rows = np.repeat(np.arange(n), k + 1)
    cols = found.ravel().astype(np.int64)
    weights = np.maximum(sims.ravel().astype(np.float64), 0.0)
    keep = cols != rows
    graph = sparse.csr_matrix((weights[keep], (rows[keep], cols[keep])), shape=(n, n))
    return ((graph + graph.T) * 0.5).tocsr()


def louvain_clusters(
    points: np.ndarray,
    *,
    neighbours: int = 20,
    density: float = 0.06,
    min_cluster_size: int = 10,
    core_share: float = CORE_SHARE,
    extra_graph=None,
    seed: int = 0,
) -> np.ndarray:
    """Louvain communities of the kNN graph of ``points`` (averaged with ``extra_graph``,
    N x N, if given: the salient-cell links of :mod:`.cells`), small groups and loosely
    attached members as noise (-1); labels by decreasing size (module docstring)."""
    from sknetwork.clustering import Louvain

    n = len(points)
    if n < max(3, min_cluster_size):
        return np.full(n, -1, dtype=np.int32)
    graph = knn_graph(points, neighbours, seed)
    if extra_graph is not None:
        graph = ((graph + extra_graph) * 0.5).tocsr()
    total = float(graph.sum())
    if total <= 0:
        return np.full(n, -1, dtype=np.int32)
    # Potts quality with uniform node weights: sum_c in_c / w - gamma (n_c / n)^2, so a
    # group is worth keeping when its link weight per member pair exceeds gamma w / n^2
    louvain = Louvain(
        resolution=density * n * n / total,
        modularity="potts",
        random_state=seed,
        return_probs=False,
        return_aggregate=False,
    )
    labels = merge_fragments(np.asarray(louvain.fit_predict(graph), dtype=np.int64), graph)
    return prune_members(labels, graph, min_cluster_size, core_share)


def merge_fragments(
    labels: np.ndarray, graph, share: float = MERGE_SHARE, lift: float = MERGE_LIFT
) -> np.ndarray:
    """Join communities that are pieces of one larger group.

    The Potts criterion caps a cluster's size: a group of look-alikes much larger than its
    members' link count (a few hundred images, with 20 links each) has too little link
    weight per pair of members to hold together, and comes out as pieces of a few dozen
    that link mostly to each other. Two communities whose mutual link weight is at least
    ``share`` of the smaller one's total are one group; distinct tropes link to each other
    far less. Joined transitively (connected components of those pairs).

    The share alone is no evidence in a small collection: there each image links to a
    large part of it (20 of 100 images), so a trope smaller than its members' link count
    must send a third of its links elsewhere, and the pieces of unrelated images absorb
    it. Fragments of one group link far more than chance (hundreds of times at 60,000
    images); a trope and its surroundings at 100 images, about as much as chance. So two
    communities also need ``lift`` times the link weight that their volumes would give at
    random (``volume_a * volume_b / total``).
    """
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components

    n = len(labels)
    k = int(labels.max()) + 1 if n else 0
    if k < 2:
        return labels
    member = sparse.csr_matrix((np.ones(n), (np.arange(n), labels)), shape=(n, k))
    between = (member.T @ graph @ member).tocoo()  # community x community link weight
    volume = member.T @ np.asarray(graph.sum(axis=1)).ravel()  # each one's link weight
    off = between.row != between.col
    rows, cols, weight = between.row[off], between.col[off], between.data[off]
    expected = volume[rows] * volume[cols] / max(float(volume.sum()), 1e-12)
    strong = (weight >= share * np.minimum(volume[rows], volume[cols])) & (
        weight >= lift * expected
    )
    joined = sparse.csr_matrix(
        (np.ones(int(strong.sum())), (rows[strong], cols[strong])), shape=(k, k)
    )
    _, component = connected_components(joined, directed=False)
    return component[labels]


def prune_members(
    labels: np.ndarray, graph, min_cluster_size: int, core_share: float
) -> np.ndarray:
    """Members with less than ``core_share`` of their link weight inside their community,
    then communities smaller than ``min_cluster_size``, become noise; renumbered by size."""
    labels = np.asarray(labels, dtype=np.int64).copy()
    coo = graph.tocoo()
    inside = np.zeros(len(labels))
    same = labels[coo.row] == labels[coo.col]
    np.add.at(inside, coo.row[same], coo.data[same])
    degree = np.asarray(graph.sum(axis=1)).ravel()
    labels[inside < core_share * np.maximum(degree, 1e-12)] = -1
    found = labels >= 0
    sizes = np.bincount(labels[found]) if found.any() else np.zeros(0, int)
    small = np.zeros(len(labels), dtype=bool)
    small[found] = sizes[labels[found]] < min_cluster_size
    labels[small] = -1
    return renumber_by_size(labels)


def renumber_by_size(labels: np.ndarray) -> np.ndarray:
    """Labels 0.. by decreasing size (ties: first appearance), noise stays -1."""
    labels = np.asarray(labels)
    found = labels[labels >= 0]
    if len(found) == 0:
        return np.full(len(labels), -1, dtype=np.int32)
    uniq, first, sizes = np.unique(found, return_index=True, return_counts=True)
    order = np.lexsort((first, -sizes))
    rank = np.full(int(uniq.max()) + 1, -1, dtype=np.int32)
    rank[uniq[order]] = np.arange(len(order), dtype=np.int32)
    out = np.full(len(labels), -1, dtype=np.int32)
    out[labels >= 0] = rank[found]
    return out


def cluster_members(labels: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(label, member indices in input order) for every label >= 0 that has members.

    One stable sort instead of a ``labels == k`` scan per cluster: at 169k images and
    thousands of clusters, the scans alone took most of a minute.
    """
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    found, starts = np.unique(ordered, return_index=True)
    ends = np.append(starts[1:], len(ordered))
    return [(int(k), order[a:b]) for k, a, b in zip(found, starts, ends, strict=True) if k >= 0]
