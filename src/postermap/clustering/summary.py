"""Scoring and naming the clusters of a labelling: what the cluster stage writes and
``postermap add`` refreshes when new images have joined clusters."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from postermap.clustering.names import name_clusters
from postermap.clustering.score import ClusterInfo, describe_clusters
from postermap.workspace import Workspace


def summarise_clusters(
    ws: Workspace,
    ids: list[str],
    labels: np.ndarray,
    embeddings: np.ndarray,
    rows: np.ndarray,
    seed: int,
    model: str | None,
    curated: dict[int, str],
) -> list[ClusterInfo]:
    """The ranked clusters of ``labels`` (aligned with ``ids``; ``embeddings[rows]`` their
    features), scored and named from their titles and colours in the ingest table.

    ``model`` made the features (None: they came from a file, so no ImageNet names);
    ``curated`` are clusters.toml's names, which win over the automatic ones.
    """
    ingest = ws.read_table("ingest", ["id", "title", "colour_hist"]).to_pydict()
    position = {image_id: i for i, image_id in enumerate(ingest["id"])}
    order = [position[i] for i in ids]
    colour = np.array([ingest["colour_hist"][i] for i in order], dtype=np.float32)
    titles = [ingest["title"][i] for i in order]
    infos = describe_clusters(labels, embeddings, colour, seed=seed, rows=rows)
    name_clusters(infos, labels, embeddings, rows, titles, model, curated)
    return infos


def cluster_table(ids: list[str], labels: np.ndarray, infos: list[ClusterInfo]) -> pa.Table:
    """The cluster stage's table: each image's cluster label and its cluster's name."""
    names = {info.id: info.name for info in infos}
    return pa.table(
        {
            "id": pa.array(ids, pa.string()),
            "cluster": pa.array(labels, pa.int32()),
            "cluster_name": pa.array([names.get(int(k)) for k in labels], pa.string()),
        }
    )
