"""Reduce: the embeddings of the images on the map -> a 2-D layout (:mod:`postermap.layout`);
for UMAP also the fitted reducer, which ``add`` places new images with."""

from __future__ import annotations

import numpy as np

from postermap.catalog import ok_ids
from postermap.config import StageSettings
from postermap.layout import reduce_to_2d
from postermap.stage import Stage, StageOutcome
from postermap.workspace import Layout, Workspace


def run(ws: Workspace, settings: StageSettings) -> StageOutcome:
    ids = np.array(ok_ids(ws))
    embeddings, rows = ws.embedding_rows(ids)
    xy, model = reduce_to_2d(
        embeddings,
        settings.pca_dims,
        settings.perplexity,
        settings.seed,
        n_jobs=settings.workers,
        rows=rows,
        method=settings.reducer,
        umap_neighbors=settings.umap_neighbors,
        umap_min_dist=settings.umap_min_dist,
    )
    # before the layout: an `add` that finds the layout finds its model too
    ws.write_umap_model(model)
    ws.write_layout(Layout(ids, xy))
    return StageOutcome(counts={"in": len(ids), "out": len(ids)}, items=len(ids))


STAGE = Stage(
    name="reduce",
    depends=("embed", "clean"),
    run=run,
    version=2,
    doc="Lay the embeddings out in 2-D (PCA + openTSNE, or UMAP).",
)
