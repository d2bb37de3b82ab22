"""Clean: mark exact duplicates, by identical bytes and by identical decoded pixels.

Nothing is deleted: a duplicate keeps its row with ``status = duplicate``, a ``reason``
(``same_bytes`` or ``same_pixels``) and ``duplicate_of`` naming the representative. The
representative of a group is its first member by relative path, so the choice is
deterministic and does not depend on the order files were read in.
"""

from __future__ import annotations

import logging
from collections import defaultdict

import pyarrow as pa

from postermap.catalog import read_table
from postermap.config import Settings
from postermap.pipeline import Stage, StageOutcome
from postermap.workspace import Workspace, atomic_write_table

log = logging.getLogger(__name__)


def find_exact_duplicates(rows: list[dict]) -> dict[str, tuple[str, str]]:
    """Map id -> (representative id, reason) for every non-representative exact copy.

    Args:
        rows: dicts with ``id``, ``path``, ``status``, ``content_hash``, ``pixel_hash``.

    Returns:
        ``{duplicate_id: (representative_id, "same_bytes" | "same_pixels")}``.
    """
    readable = sorted((r for r in rows if r["status"] == "ok"), key=lambda r: r["path"])
    verdicts: dict[str, tuple[str, str]] = {}
    for key, reason in (("content_hash", "same_bytes"), ("pixel_hash", "same_pixels")):
        groups: dict[str, list[dict]] = defaultdict(list)
        for row in readable:
            if row["id"] not in verdicts:
                groups[row[key]].append(row)
        for members in groups.values():
            representative = members[0]["id"]
            for member in members[1:]:
                verdicts[member["id"]] = (representative, reason)
    return verdicts


def run(ws: Workspace, settings: Settings) -> StageOutcome:
    ingest = read_table(ws, "ingest")
    rows = ingest.select(["id", "path", "status", "reason", "content_hash", "pixel_hash"])
    rows = rows.to_pylist()
    verdicts = find_exact_duplicates(rows)
    out = {"id": [], "status": [], "reason": [], "duplicate_of": []}
    for row in rows:
        status, reason, duplicate_of = row["status"], row["reason"], None
        if row["id"] in verdicts:
            duplicate_of, why = verdicts[row["id"]]
            status, reason = "duplicate", why
        out["id"].append(row["id"])
        out["status"].append(status)
        out["reason"].append(reason)
        out["duplicate_of"].append(duplicate_of)
    schema = pa.schema([(name, pa.string()) for name in out])  # all-null columns stay strings
    atomic_write_table(ws.table_path("clean"), pa.table(out, schema=schema))
    counts: dict[str, int] = {"in": len(rows)}
    for status in out["status"]:
        counts[status] = counts.get(status, 0) + 1
    for reason in ("same_bytes", "same_pixels"):
        counts[f"duplicate:{reason}"] = sum(1 for _, why in verdicts.values() if why == reason)
    log.info("clean: %d exact duplicates among %d images", len(verdicts), len(rows))
    return StageOutcome(counts=counts, items=len(rows))


STAGE = Stage(name="clean", depends=("ingest",), params=(), run=run)
