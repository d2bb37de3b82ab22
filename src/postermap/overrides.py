"""``WORKSPACE/overrides.toml``: the user's word on what stays on the map.

::

    # ids from catalog.parquet or report/clean.csv
    keep = ["3f2a...", "9bc1..."]   # back on the map, whatever clean said
    drop = ["77e0..."]              # off the map (status "boring", reason "user_drop")

The clean stage applies it last; its fingerprint includes this file, so editing it and
re-running re-does ``clean`` and what depends on it, nothing upstream. Unknown ids are
reported, not silently ignored. Corrupt or failed rows cannot be kept (there is no image).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from postermap.cleaning import Verdict
from postermap.config import read_toml
from postermap.errors import SettingsError

if TYPE_CHECKING:
    from postermap.config import StageSettings
    from postermap.workspace import Workspace

log = logging.getLogger(__name__)

FILE_NAME = "overrides.toml"


@dataclass(frozen=True)
class Overrides:
    keep: frozenset[str] = field(default_factory=frozenset)
    drop: frozenset[str] = field(default_factory=frozenset)


def read_overrides(path: Path) -> Overrides:
    """Parse and validate the overrides file (missing = no overrides)."""
    data = read_toml(path, allowed={"keep", "drop"})
    lists = {}
    for key in ("keep", "drop"):
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SettingsError(f"{path}: '{key}' must be a list of id strings")
        lists[key] = frozenset(value)
    both = lists["keep"] & lists["drop"]
    if both:
        raise SettingsError(f"{path}: id(s) both kept and dropped: {', '.join(sorted(both))}")
    return Overrides(**lists)


def overrides_fingerprint(ws: Workspace, settings: StageSettings) -> str:
    path = ws.overrides_path
    data = path.read_bytes() if path.exists() else b""
    return hashlib.sha256(data).hexdigest()[:16]


def apply_overrides(
    rows: list[dict], verdicts: dict[str, Verdict], overrides: Overrides
) -> dict[str, Verdict]:
    """Verdicts with the user's keep/drop applied (a new dict; ``verdicts`` is untouched)."""
    out = dict(verdicts)
    by_id = {row["id"]: row for row in rows}
    unknown = sorted((overrides.keep | overrides.drop) - set(by_id))
    if unknown:
        log.warning(
            "%s: %d id(s) not in the catalog: %s",
            FILE_NAME,
            len(unknown),
            ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else ""),
        )
    for image_id in sorted(overrides.keep & set(by_id)):
        row = by_id[image_id]
        if row["status"] != "ok":
            log.warning(
                "%s: cannot keep %s, it is %s (%s)",
                FILE_NAME,
                image_id,
                row["status"],
                row["reason"],
            )
            continue
        was = out.get(image_id)
        if was is not None and was.status != "ok":
            out[image_id] = Verdict(
                "ok",
                f"kept by {FILE_NAME} (was {was.status}: {was.reason})",
                was.duplicate_of,
                was.similarity,
            )
    for image_id in sorted(overrides.drop & set(by_id)):
        out[image_id] = Verdict("boring", f"user_drop: dropped by {FILE_NAME}")
    return out
