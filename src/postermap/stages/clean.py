"""Clean: decide what goes on the map (see :mod:`postermap.cleaning` for the rules).

Reads the ingest table and the embeddings, writes ``tables/clean.parquet`` (status,
reason, duplicate_of, similarity per row), applying ``overrides.toml`` last.
"""

from __future__ import annotations

from postermap.cleaning import (
    INPUT_COLUMNS,
    CleanParams,
    clean_collection,
    mark_failed,
    unit_features,
    verdict_counts,
    verdict_table,
)
from postermap.config import StageSettings
from postermap.overrides import apply_overrides, overrides_fingerprint, read_overrides
from postermap.stage import Stage, StageOutcome
from postermap.workspace import Workspace


def run(ws: Workspace, settings: StageSettings) -> StageOutcome:
    rows = ws.read_table("ingest", list(INPUT_COLUMNS)).to_pylist()
    mark_failed(rows, ws.read_embed_failures())
    embeddings = ws.read_embeddings()
    features = unit_features(rows, embeddings.ids, embeddings.vectors)
    params = CleanParams(
        near_cosine=settings.near_cosine,
        near_phash=settings.near_phash,
        keep_near_duplicates=settings.keep_near_duplicates,
    )
    verdicts = clean_collection(rows, features, params)
    verdicts = apply_overrides(rows, verdicts, read_overrides(ws.overrides_path))
    table = verdict_table(rows, verdicts)
    ws.write_table("clean", table)
    return StageOutcome(counts=verdict_counts(table), items=len(rows))


STAGE = Stage(
    name="clean",
    depends=("ingest", "embed"),
    run=run,
    version=7,  # status error for images without features
    input_fingerprint=overrides_fingerprint,
    doc="Flag exact and near duplicates and boring images (applies overrides.toml).",
)
