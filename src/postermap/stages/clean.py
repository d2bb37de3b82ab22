"""Clean: decide what goes on the map (see :mod:`postermap.cleaning` for the rules).

Reads the ingest table, the embeddings and (for the pixel check of graphics that look
like near duplicates) their thumbnails; writes ``tables/clean.parquet`` (status, reason,
duplicate_of, similarity per row), applying ``overrides.toml`` last.
"""

from __future__ import annotations

import logging

from PIL import Image

from postermap.cleaning import (
    INPUT_COLUMNS,
    CleanParams,
    clean_collection,
    mark_failed,
    unit_rows,
    verdict_counts,
    verdict_table,
)
from postermap.config import StageSettings
from postermap.images import DECODE_ERRORS
from postermap.overrides import apply_overrides, overrides_fingerprint, read_overrides
from postermap.stage import Stage, StageOutcome
from postermap.workspace import Workspace

log = logging.getLogger(__name__)


def run(ws: Workspace, settings: StageSettings) -> StageOutcome:
    rows = ws.read_table("ingest", list(INPUT_COLUMNS)).to_pylist()
    mark_failed(rows, ws.read_embed_failures())
    embeddings = ws.read_embeddings()
    features = unit_rows(rows, embeddings.ids, embeddings.vectors)
    params = CleanParams(
        near_cosine=settings.near_cosine,
        near_layout=settings.near_layout,
        keep_near_duplicates=settings.keep_near_duplicates,
    )

    def thumbnail(content_hash: str) -> Image.Image | None:
        try:
            with Image.open(ws.thumb_path(content_hash)) as image:
                return image.convert("RGB")
        except DECODE_ERRORS as err:
            log.warning("clean: thumbnail of %s unreadable (%s)", content_hash, err)
            return None

    verdicts = clean_collection(rows, features, params, thumbnail, settings.workers)
    verdicts = apply_overrides(rows, verdicts, read_overrides(ws.overrides_path))
    table = verdict_table(rows, verdicts)
    ws.write_table("clean", table)
    return StageOutcome(counts=verdict_counts(table), items=len(rows))


STAGE = Stage(
    name="clean",
    depends=("ingest", "embed"),
    run=run,
    version=8,  # layout-confirmed near duplicates, templates, boring by effective size
    input_fingerprint=overrides_fingerprint,
    doc="Flag exact and near duplicates and boring images (applies overrides.toml).",
)
