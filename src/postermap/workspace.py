"""The folder a run lives in: its paths, atomic writes and stage markers.

Every file a stage produces is written under a temporary name and renamed into place,
so a killed run never leaves a half-written file that looks finished. A stage is finished
when its marker ``stages/<name>.json`` exists and records the fingerprint of the inputs and
parameters it ran with; a changed fingerprint means the stage (and what depends on it) runs again.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

MARKER_VERSION = 1


@dataclass(frozen=True)
class Workspace:
    """Paths of one run. Creating the object touches nothing on disk; :meth:`create` does."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())

    def create(self) -> Workspace:
        for folder in (self.root, self.stages_dir, self.tables_dir, self.thumbs_dir):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    # -- well-known paths -------------------------------------------------------------------
    @property
    def stages_dir(self) -> Path:
        return self.root / "stages"

    @property
    def tables_dir(self) -> Path:
        return self.root / "tables"

    @property
    def thumbs_dir(self) -> Path:
        return self.root / "thumbs"

    @property
    def embed_dir(self) -> Path:
        return self.root / "embed"

    @property
    def site_dir(self) -> Path:
        return self.root / "site"

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.parquet"

    @property
    def settings_path(self) -> Path:
        return self.root / "settings.json"

    def table_path(self, stage: str) -> Path:
        """The per-stage table (keyed by ``id``) that :mod:`postermap.catalog` joins."""
        return self.tables_dir / f"{stage}.parquet"

    def thumb_path(self, content_hash: str) -> Path:
        """Thumbnails are stored once per content hash, fanned out over 256 folders."""
        return self.thumbs_dir / content_hash[:2] / f"{content_hash}.jpg"

    def marker_path(self, stage: str) -> Path:
        return self.stages_dir / f"{stage}.json"

    # -- markers ---------------------------------------------------------------------------
    def read_marker(self, stage: str) -> dict[str, Any] | None:
        path = self.marker_path(stage)
        if not path.exists():
            return None
        return json.loads(path.read_text())

    def is_done(self, stage: str, fingerprint: str) -> bool:
        marker = self.read_marker(stage)
        return marker is not None and marker.get("fingerprint") == fingerprint

    def write_marker(self, stage: str, record: dict[str, Any]) -> None:
        atomic_write_text(
            self.marker_path(stage),
            json.dumps({"version": MARKER_VERSION, "stage": stage, **record}, indent=2),
        )

    def clear_marker(self, stage: str) -> None:
        self.marker_path(stage).unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` only on success.

    The temporary name starts with ``.tmp-`` so that nothing globbing for finished files
    (``*.npy``, ``*.parquet``) ever picks up a partial one.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, separators=(",", ":"), ensure_ascii=False))


def atomic_save_npy(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, array)


def atomic_write_table(path: Path, table: pa.Table) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
