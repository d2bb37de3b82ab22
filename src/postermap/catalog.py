"""The table of images: one row per input file, every stage's columns joined by ``id``.

Stages never edit each other's output. Each writes its own table ``tables/<stage>.parquet``
keyed by ``id``; :func:`write_catalog` joins them into ``catalog.parquet`` after every stage,
later stages' columns overriding earlier ones of the same name (``clean`` sets ``status``
and ``reason`` that ``ingest`` first wrote).
"""

from __future__ import annotations

import logging

import pyarrow as pa
import pyarrow.compute as pc

from postermap.workspace import Workspace, atomic_write_table

log = logging.getLogger(__name__)

STATUSES = ("ok", "duplicate", "near_duplicate", "boring", "corrupt", "failed", "error")
#: Tables joined onto the ingest table, in pipeline order.
JOINED_TABLES = ("clean", "reduce", "grid", "cluster", "tiles")


def write_catalog(ws: Workspace) -> pa.Table:
    """Join the per-stage tables that exist into ``catalog.parquet`` (atomically)."""
    catalog = ws.read_table("ingest")
    for stage in JOINED_TABLES:
        if not ws.has_table(stage):
            continue
        extra = ws.read_table(stage)
        # a left join by id (Table.join cannot carry list columns such as colour_hist)
        rows = extra.take(pc.index_in(catalog["id"], value_set=extra["id"]))
        for name in extra.column_names:
            if name == "id":
                continue
            if name in catalog.column_names:
                catalog = catalog.drop_columns([name])
            catalog = catalog.append_column(name, rows[name])
    catalog = catalog.sort_by([("source", "ascending")])
    atomic_write_table(ws.catalog_path, catalog)
    return catalog


def ok_ids(ws: Workspace) -> list[str]:
    """Ids of the images that go on the map (status ``ok`` after cleaning), sorted."""
    table = ws.read_table("clean", ["id", "status"])
    mask = pc.equal(table["status"], "ok")
    return sorted(table.filter(mask)["id"].to_pylist())
