"""Cluster: find the visual tropes, score, name and curate them.

By default clusters are Louvain communities of a graph that links every image to its
most similar images twice over: by the whole picture (a kNN graph of the regional
max-pooled features, ``embed/rmac.npy``, PCA-32 whitened) and by its best-matching
salient cells (``embed/cells.npy``, see :mod:`postermap.clustering.cells`), which is
what finds tropes of small motifs. HDBSCAN or DBSCAN, and the 2-D layout, remain as
options. See
:mod:`postermap.clustering` for finding, scoring and naming, :mod:`postermap.curation` for
``clusters.toml``. Outputs: the cluster table (id, cluster, cluster_name), the ranked
cluster list and its per-image CSV export, and, the first time, the ``clusters.toml``
template.
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import numpy as np

from postermap.clustering import (
    EMBEDDING_DIMS,
    GRAPH_DIMS,
    cell_graph,
    clusters_csv,
    find_clusters,
    whiten,
)
from postermap.clustering.summary import cluster_table, summarise_clusters
from postermap.config import StageSettings
from postermap.curation import apply_curation, curation_fingerprint, read_curation, write_template
from postermap.stage import Stage, StageOutcome
from postermap.vectors import Projection
from postermap.workspace import Workspace

log = logging.getLogger(__name__)


def run(ws: Workspace, settings: StageSettings) -> StageOutcome:
    layout = ws.read_layout()
    embeddings, rows = ws.embedding_rows(layout.ids)
    space = (
        layout.xy
        if settings.cluster_space == "layout"
        else _embedding_space(ws, settings, embeddings, rows)
    )
    extra_graph = _cell_links(ws, settings, rows)
    labels = find_clusters(
        space,
        settings.cluster_method,
        eps=settings.dbscan_eps,
        min_samples=settings.dbscan_min_samples,
        min_cluster_size=settings.min_cluster_size,
        selection=settings.hdbscan_selection,
        neighbours=settings.cluster_neighbours,
        density=settings.cluster_density,
        extra_graph=extra_graph,
        seed=settings.seed,
    )
    id_list = layout.ids.tolist()
    curation = read_curation(ws.curation_path)
    labels = apply_curation(labels, id_list, curation)
    if settings.features:
        log.info(
            "cluster: vectors from %s, not the ImageNet model: clusters are named from "
            "title keywords, else numbered",
            settings.features,
        )
    model = None if settings.features else settings.model
    infos = summarise_clusters(
        ws, id_list, labels, embeddings, rows, settings.seed, model, curation.names
    )
    ws.write_table("cluster", cluster_table(id_list, labels, infos))
    ws.write_clusters([asdict(i) for i in infos], clusters_csv(id_list, labels, infos))
    if write_template(ws.curation_path, infos):
        log.info("cluster: wrote %s; edit it to rename, drop or merge clusters", ws.curation_path)
    return StageOutcome(
        counts={"in": len(id_list), "clusters": len(infos), "noise": int((labels < 0).sum())},
        items=len(id_list),
    )


def _embedding_space(
    ws: Workspace, settings: StageSettings, embeddings: np.ndarray, rows: np.ndarray
) -> np.ndarray:
    """The clustered vectors: a PCA of the chosen features, fitted on a sample and applied
    chunk by chunk (the features stay memory-mapped)."""
    features = embeddings
    if settings.cluster_features != "avg":
        features = ws.read_extra_features(settings.cluster_features)
        if features is None:
            log.info(
                "cluster: %s stores no %s pooling; clustering its features",
                _vector_source(settings),
                settings.cluster_features,
            )
            features = embeddings
    graph = settings.cluster_method == "louvain"
    dims = GRAPH_DIMS if graph else EMBEDDING_DIMS
    projection = Projection.fit(features, rows, dims, settings.seed, renormalise=False)
    space = projection.transform(features, rows)
    return whiten(space) if graph else space


def _cell_links(ws: Workspace, settings: StageSettings, rows: np.ndarray):
    """The salient-cell image graph (Louvain in the embedding space only), or None."""
    if (
        settings.cluster_method != "louvain"
        or settings.cluster_space != "embedding"
        or settings.cluster_cells == 0
    ):
        return None
    cells = ws.read_extra_features("cells")
    if cells is None:
        log.info(
            "cluster: %s stores no salient cells; linking by features", _vector_source(settings)
        )
        return None
    return cell_graph(
        cells,
        rows,
        settings.cluster_cells,
        neighbours=settings.cluster_neighbours,
        seed=settings.seed,
    )


def _vector_source(settings: StageSettings) -> str:
    """Where the features came from, for log lines."""
    return f"--features {settings.features}" if settings.features else f"model {settings.model}"


STAGE = Stage(
    name="cluster",
    depends=("reduce",),
    run=run,
    version=5,  # Louvain on R-MAC and cell links, pieces joined above chance; names by lift
    input_fingerprint=curation_fingerprint,
    doc="Find, score and name clusters (applies clusters.toml).",
)
