"""Neighbours: every image's most similar images ("more like this", :mod:`postermap.similarity`).

Outputs: the neighbour rows and scores, the index (hnswlib graphs) and its PCA projection.
"""

from __future__ import annotations

from postermap.config import StageSettings
from postermap.similarity import NEIGHBOURS, SIMILAR_DIMS, all_neighbours, build_index, save_index
from postermap.stage import Stage, StageOutcome
from postermap.vectors import Projection
from postermap.workspace import Workspace


def run(ws: Workspace, settings: StageSettings) -> StageOutcome:
    ids = ws.read_layout().ids
    embeddings, rows = ws.embedding_rows(ids)
    projection = Projection.fit(embeddings, rows, SIMILAR_DIMS, settings.seed)
    vectors = projection.transform(embeddings, rows)
    index = build_index(vectors, settings.seed)
    neighbours = all_neighbours(index, vectors, NEIGHBOURS)
    save_index(ws, index, projection)
    ws.write_neighbours(neighbours)
    return StageOutcome(counts={"in": len(ids), "k": neighbours.rows.shape[1]}, items=len(ids))


STAGE = Stage(
    name="neighbours",
    depends=("reduce",),
    run=run,
    version=3,  # 3: the index as two graphs built at once
    doc="Index the embeddings and store every image's 20 most similar images.",
)
