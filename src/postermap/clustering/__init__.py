"""Finding, scoring and naming the visual tropes of a collection.

* :mod:`.find` — Louvain communities of a kNN graph in the embedding space (default), or
  HDBSCAN / DBSCAN in the 2-D layout or the embedding space; labels by size, noise -1.
* :mod:`.cells` — the second half of the default graph: images linked by their
  best-matching salient cells (small motifs).
* :mod:`.score` — per cluster: size, CNN cohesion, colour cohesion and an
  interestingness score that ranks semantic tropes above colour-only groups.
* :mod:`.names` — names from what is distinctive for a cluster against the whole
  collection: its title words, else its ImageNet concepts (lift with a support floor).
* :mod:`.summary` — both for a labelling, from the workspace's titles and colours (the
  cluster stage, and ``add`` once new images joined).
"""

from __future__ import annotations

from postermap.clustering.cells import cell_graph
from postermap.clustering.find import (
    EMBEDDING_DIMS,
    GRAPH_DIMS,
    cluster_members,
    find_clusters,
    knn_graph,
    louvain_clusters,
    renumber_by_size,
    whiten,
)
from postermap.clustering.names import (
    auto_name,
    clusters_csv,
    distinctive_classes,
    imagenet_concepts,
    name_clusters,
    title_keywords,
)
from postermap.clustering.score import ClusterInfo, describe_clusters

__all__ = [
    "EMBEDDING_DIMS",
    "GRAPH_DIMS",
    "ClusterInfo",
    "auto_name",
    "cell_graph",
    "cluster_members",
    "clusters_csv",
    "describe_clusters",
    "distinctive_classes",
    "find_clusters",
    "imagenet_concepts",
    "knn_graph",
    "louvain_clusters",
    "name_clusters",
    "renumber_by_size",
    "title_keywords",
    "whiten",
]
