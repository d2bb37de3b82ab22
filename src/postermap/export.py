"""``postermap export``: the map as one flat table, for the tools people take data to next.

One row per input file: its id, the absolute path of the file (``filepath``, as FiftyOne
names it), title, status and reason, the 2-D layout (``x``, ``y``), the grid cell
(``row``, ``col``), the cluster and its name, size and format, and every metadata column;
optionally the CNN features as a fixed-size list column ``embedding``. Embedding Atlas
opens it with ``embedding-atlas map.parquet --x x --y y``; pandas and FiftyOne read the
Parquet or CSV directly.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from postermap.errors import SettingsError, StageOrderError
from postermap.workspace import Workspace

log = logging.getLogger(__name__)

FORMATS = ("parquet", "csv")
#: catalog columns every export carries (when the catalog has them), in this order
BASE_COLUMNS = (
    "id",
    "filepath",
    "source",
    "path",
    "title",
    "status",
    "reason",
    "duplicate_of",
    "x",
    "y",
    "row",
    "col",
    "cluster",
    "cluster_name",
    "render_error",
)


def export_table(ws: Workspace, embeddings: bool = False) -> pa.Table:
    """The export of ``ws`` (see the module docstring)."""
    if not ws.catalog_path.exists():
        raise StageOrderError(f"{ws.root} holds no map yet: run 'postermap run' first")
    catalog = pq.read_table(ws.catalog_path)
    catalog = catalog.append_column("filepath", catalog["file"])
    shown = [c for c in ws.shown_columns() if c in catalog.column_names]
    names = [c for c in BASE_COLUMNS if c in catalog.column_names]
    table = catalog.select(names + [c for c in shown if c not in names])
    if embeddings:
        table = table.append_column("embedding", _embedding_column(ws, catalog))
    return table


def write_export(table: pa.Table, path: Path, fmt: str) -> Path:
    """Write ``table`` as ``fmt`` (``parquet`` or ``csv``) to ``path``, atomically."""
    from postermap.workspace import atomic_path

    if fmt not in FORMATS:
        raise SettingsError(f"export format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if fmt == "csv" and "embedding" in table.column_names:
        raise SettingsError("CSV cannot hold the embedding vectors: export them as parquet")
    with atomic_path(path) as tmp:
        if fmt == "parquet":
            pq.write_table(table, tmp)
        else:
            pacsv.write_csv(table, tmp)
    log.info("export: %d rows, %d columns -> %s", table.num_rows, table.num_columns, path)
    return path


def _embedding_column(ws: Workspace, catalog: pa.Table) -> pa.Array:
    """Each row's features as a fixed-size list (null for files that have none, including
    those the embed stage failed on: their stored rows are zeros, not features)."""
    embeddings = ws.read_embeddings()
    failed = ws.read_embed_failures()
    row_of = {h: i for i, h in enumerate(embeddings.ids.tolist()) if h not in failed}
    hashes = catalog["content_hash"].to_pylist()
    dim = embeddings.vectors.shape[1]
    values = np.zeros((len(hashes), dim), dtype=np.float32)
    valid = np.zeros(len(hashes), dtype=bool)
    for i, h in enumerate(hashes):
        if h in row_of:
            values[i] = embeddings.vectors[row_of[h]]
            valid[i] = True
    flat = pa.array(values.ravel(), pa.float32())
    column = pa.FixedSizeListArray.from_arrays(flat, dim)
    if not valid.all():
        column = pa.FixedSizeListArray.from_arrays(flat, dim, mask=pa.array(~valid))
    return column
