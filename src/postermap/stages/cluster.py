"""Cluster: DBSCAN in the 2-D layout, where the map's visible groups live.

The layout is scaled to the unit square (aspect kept) and the radius is given in units of
the mean spacing between images there (``1/sqrt(N)``), so ``dbscan_eps`` means the same on
a 300-image map and a 169k-image one. Noise points get cluster -1. Clusters are numbered
by size, largest first, so numbers are stable across runs with the same inputs.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from sklearn.cluster import DBSCAN

from postermap.config import Settings
from postermap.pipeline import Stage, StageOutcome
from postermap.stages.reduce import load_layout, normalise_layout
from postermap.workspace import Workspace, atomic_write_table


def cluster_layout(xy: np.ndarray, eps: float, min_samples: int) -> np.ndarray:
    """DBSCAN labels for a layout, renumbered 0.. by decreasing size; noise stays -1.

    ``eps`` is in mean image spacings (see the module docstring).
    """
    radius = eps / np.sqrt(len(xy))
    labels = DBSCAN(eps=radius, min_samples=min_samples).fit_predict(normalise_layout(xy))
    found = labels[labels >= 0]
    if len(found) == 0:
        return labels.astype(np.int32)
    sizes = np.bincount(found)
    order = np.lexsort((np.arange(len(sizes)), -sizes))  # by size, ties by first label
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    out = np.where(labels >= 0, rank[np.maximum(labels, 0)], -1)
    return out.astype(np.int32)


def run(ws: Workspace, settings: Settings) -> StageOutcome:
    ids, xy = load_layout(ws)
    labels = cluster_layout(xy, settings.dbscan_eps, settings.dbscan_min_samples)
    atomic_write_table(ws.table_path("cluster"),
                       pa.table({"id": pa.array(ids.tolist(), pa.string()),
                                 "cluster": pa.array(labels, pa.int32())}))
    n_clusters = int(labels.max()) + 1 if len(labels) else 0
    return StageOutcome(counts={"in": len(ids), "clusters": n_clusters,
                                "noise": int((labels < 0).sum())}, items=len(ids))


STAGE = Stage(name="cluster", depends=("reduce",),
              params=("dbscan_eps", "dbscan_min_samples"), run=run)
