"""The folder a run lives in: every artefact's path, reader and writer, and stage markers.

Stages meet only here. Each artefact a stage writes and a later stage or command reads
has one pair of methods on :class:`Workspace` (``write_layout`` / ``read_layout``, ...), so
its path and format are known in one place; nothing else joins paths under the root.

Every file is written under a temporary name and renamed into place, so a killed run
never leaves a half-written file that looks finished. A stage is finished when its marker
``stages/<name>.json`` exists and records the fingerprint of the inputs and parameters it
ran with; markers hold completion data only (counts, timings), never data another stage
reads.

Layout::

    settings.json            the settings the map was last built with
    overrides.toml           the user's keep/drop of clean verdicts (user-edited)
    clusters.toml            the user's cluster curation (template written once)
    catalog.parquet          one row per input file: every stage's table joined by id
    stages/<stage>.json      completion markers
    tables/<stage>.parquet   each stage's own columns, keyed by id
    downloads/               manifest downloads (content-addressed) + journal.jsonl
    ingest/part-*.parquet    resumable ingest parts
    thumbs/ab/<hash>.jpg     one thumbnail per distinct content
    embed/                   shards/*.npy, embeddings.npy (N x dim), ids.npy
    layout.npy, layout_ids.npy   the 2-D layout of the images on the map
    grid.json                grid shape (rows, cols) of tables/grid.parquet
    clusters.json, clusters.csv  ranked clusters; per-image export
    neighbours/              neighbours.npy, scores.npy, index.bin, projection.npz
    site/                    the static viewer
    report/                  reports asked for with --report / --gallery
"""

from __future__ import annotations

import contextlib
import errno
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

from postermap.errors import StageOrderError, WorkspaceWriteError

MARKER_VERSION = 1
#: schema metadata key of the columns a person should see (see Workspace.write_table)
SHOWN_COLUMNS_KEY = "postermap.shown_columns"


@dataclass(frozen=True)
class Embeddings:
    """The embed stage's output: ``vectors[i]`` (memory-mapped) belongs to content hash
    ``ids[i]``."""

    ids: np.ndarray
    vectors: np.ndarray

    def rows_of(self, content_hashes: list[str]) -> np.ndarray:
        """Row of each content hash (all must have been embedded)."""
        row_of = {h: i for i, h in enumerate(self.ids.tolist())}
        return np.fromiter(
            (row_of[h] for h in content_hashes), dtype=np.int64, count=len(content_hashes)
        )


@dataclass(frozen=True)
class Layout:
    """The reduce stage's output: 2-D position ``xy[i]`` of image ``ids[i]`` on the map."""

    ids: np.ndarray
    xy: np.ndarray


@dataclass(frozen=True)
class Grid:
    """The grid stage's output: image ``ids[i]`` sits in flat cell ``cells[i]`` =
    ``row * cols + col`` of a ``rows`` x ``cols`` grid."""

    ids: np.ndarray
    cells: np.ndarray
    rows: int
    cols: int


@dataclass(frozen=True)
class Neighbours:
    """The neighbours stage's output: ``rows[i]`` are the layout rows of image i's most
    similar images (best first, -1 = none), ``scores[i]`` their cosine similarities."""

    rows: np.ndarray
    scores: np.ndarray


@dataclass(frozen=True)
class Workspace:
    """Paths and artefacts of one run. Creating the object touches nothing on disk;
    :meth:`create` does."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root).resolve())

    def create(self) -> Workspace:
        for folder in (self.root, self.stages_dir, self.tables_dir, self.thumbs_dir):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise WorkspaceWriteError(f"cannot create {folder}: {err.strerror}") from err
        return self

    # -- folders and user files ----------------------------------------------------------
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
    def shards_dir(self) -> Path:
        """Resumable embedding shards, one ``.npy`` per ``shard_size`` images."""
        return self.embed_dir / "shards"

    @property
    def ingest_parts_dir(self) -> Path:
        """Resumable ingest parts, one Parquet file per ``PART_SIZE`` inputs."""
        return self.root / "ingest"

    @property
    def downloads_dir(self) -> Path:
        return self.root / "downloads"

    @property
    def neighbours_dir(self) -> Path:
        return self.root / "neighbours"

    @property
    def neighbour_index_path(self) -> Path:
        """The hnswlib index of the projected features (``similar`` queries)."""
        return self.neighbours_dir / "index.bin"

    @property
    def projection_path(self) -> Path:
        """The PCA projection the neighbour index was built in."""
        return self.neighbours_dir / "projection.npz"

    @property
    def site_dir(self) -> Path:
        return self.root / "site"

    @property
    def site_build_dir(self) -> Path:
        """Where the next site is built before it is swapped into :attr:`site_dir`."""
        return self.root / ".tmp-site"

    @property
    def report_dir(self) -> Path:
        return self.root / "report"

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.parquet"

    @property
    def settings_path(self) -> Path:
        return self.root / "settings.json"

    @property
    def overrides_path(self) -> Path:
        return self.root / "overrides.toml"

    @property
    def curation_path(self) -> Path:
        return self.root / "clusters.toml"

    @property
    def clusters_path(self) -> Path:
        return self.root / "clusters.json"

    @property
    def clusters_csv_path(self) -> Path:
        return self.root / "clusters.csv"

    def table_path(self, stage: str) -> Path:
        """The per-stage table (keyed by ``id``) that :mod:`postermap.catalog` joins."""
        return self.tables_dir / f"{stage}.parquet"

    def thumb_path(self, content_hash: str) -> Path:
        return thumb_location(self.thumbs_dir, content_hash)

    def marker_path(self, stage: str) -> Path:
        return self.stages_dir / f"{stage}.json"

    # -- markers -------------------------------------------------------------------------
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

    # -- per-stage tables ----------------------------------------------------------------
    def has_table(self, stage: str) -> bool:
        return self.table_path(stage).exists()

    def read_table(self, stage: str, columns: list[str] | None = None) -> pa.Table:
        path = self._existing(self.table_path(stage), stage)
        return pq.read_table(path, columns=columns)

    def write_table(
        self, stage: str, table: pa.Table, shown_columns: list[str] | None = None
    ) -> None:
        """Write a stage's table; ``shown_columns`` names the columns a person should see
        for each image (kept in the table's schema metadata, read by
        :meth:`shown_columns`)."""
        if shown_columns is not None:
            table = table.replace_schema_metadata({SHOWN_COLUMNS_KEY: json.dumps(shown_columns)})
        atomic_write_table(self.table_path(stage), table)

    def shown_columns(self) -> list[str]:
        """Catalog columns to show per image (the viewer's detail panel): those the ingest
        stage marked, i.e. size, format and the user's metadata."""
        schema = pq.read_schema(self._existing(self.table_path("ingest"), "ingest"))
        raw = (schema.metadata or {}).get(SHOWN_COLUMNS_KEY.encode())
        return json.loads(raw) if raw else []

    # -- embeddings ----------------------------------------------------------------------
    @property
    def embeddings_path(self) -> Path:
        return self.embed_dir / "embeddings.npy"

    @property
    def embedding_ids_path(self) -> Path:
        return self.embed_dir / "ids.npy"

    def read_embeddings(self) -> Embeddings:
        """Content hashes and memory-mapped features, as the embed stage left them."""
        ids = np.load(self._existing(self.embedding_ids_path, "embed"))
        return Embeddings(
            ids, np.load(self._existing(self.embeddings_path, "embed"), mmap_mode="r")
        )

    def write_embeddings(self, ids: list[str], parts: list[Path], dim: int) -> None:
        """Join the feature ``parts`` (``.npy`` files, in ``ids`` order) into the embeddings
        file without holding them in memory; ids last, so a torn write is never read."""
        with atomic_path(self.embeddings_path) as tmp:
            merged = np.lib.format.open_memmap(
                tmp, mode="w+", dtype=np.float32, shape=(len(ids), dim)
            )
            offset = 0
            for path in parts:
                part = np.load(path, mmap_mode="r")
                merged[offset : offset + len(part)] = part
                offset += len(part)
            merged.flush()
            del merged
        atomic_save_npy(self.embedding_ids_path, np.array(ids))

    def embedding_rows(self, image_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(memory-mapped features, row of each image id): image id -> content hash -> row,
        without reading any features."""
        embeddings = self.read_embeddings()
        ingest = self.read_table("ingest", ["id", "content_hash"]).to_pydict()
        hash_of = dict(zip(ingest["id"], ingest["content_hash"], strict=True))
        rows = embeddings.rows_of([hash_of[i] for i in np.asarray(image_ids).tolist()])
        return embeddings.vectors, rows

    # -- layout --------------------------------------------------------------------------
    def read_layout(self) -> Layout:
        ids = np.load(self._existing(self.root / "layout_ids.npy", "reduce"))
        return Layout(ids, np.load(self._existing(self.root / "layout.npy", "reduce")))

    def write_layout(self, layout: Layout) -> None:
        atomic_save_npy(self.root / "layout_ids.npy", layout.ids)
        atomic_save_npy(self.root / "layout.npy", layout.xy)
        self.write_table(
            "reduce",
            pa.table(
                {
                    "id": pa.array(layout.ids.tolist(), pa.string()),
                    "x": pa.array(layout.xy[:, 0]),
                    "y": pa.array(layout.xy[:, 1]),
                }
            ),
        )

    # -- grid ----------------------------------------------------------------------------
    def read_grid(self) -> Grid:
        shape = json.loads(self._existing(self.root / "grid.json", "grid").read_text())
        table = self.read_table("grid").to_pydict()
        rows, cols = int(shape["rows"]), int(shape["cols"])
        cells = np.asarray(table["row"], np.int64) * cols + np.asarray(table["col"], np.int64)
        return Grid(np.array(table["id"]), cells, rows, cols)

    def write_grid(self, grid: Grid) -> None:
        self.write_table(
            "grid",
            pa.table(
                {
                    "id": pa.array(np.asarray(grid.ids).tolist(), pa.string()),
                    "row": pa.array(grid.cells // grid.cols, pa.int32()),
                    "col": pa.array(grid.cells % grid.cols, pa.int32()),
                }
            ),
        )
        atomic_write_json(self.root / "grid.json", {"rows": grid.rows, "cols": grid.cols})

    # -- clusters ------------------------------------------------------------------------
    def read_clusters(self) -> list[dict[str, Any]]:
        """The ranked cluster list (id, size, cohesions, score, name, provenance, ...)."""
        return json.loads(self._existing(self.clusters_path, "cluster").read_text())

    def write_clusters(self, clusters: list[dict[str, Any]], csv_text: str) -> None:
        atomic_write_text(self.clusters_path, json.dumps(clusters, indent=1))
        atomic_write_text(self.clusters_csv_path, csv_text)

    # -- neighbours ----------------------------------------------------------------------
    def read_neighbours(self) -> Neighbours:
        directory = self.neighbours_dir
        rows = np.load(self._existing(directory / "neighbours.npy", "neighbours"))
        return Neighbours(rows, np.load(self._existing(directory / "scores.npy", "neighbours")))

    def write_neighbours(self, neighbours: Neighbours) -> None:
        atomic_save_npy(self.neighbours_dir / "scores.npy", neighbours.scores)
        atomic_save_npy(self.neighbours_dir / "neighbours.npy", neighbours.rows)

    def has_neighbour_index(self) -> bool:
        return self.neighbour_index_path.exists() and self.projection_path.exists()

    def _existing(self, path: Path, stage: str) -> Path:
        if not path.exists():
            raise StageOrderError(f"{path} is missing: run the '{stage}' stage first")
        return path


def thumb_location(thumbs_dir: Path, content_hash: str) -> Path:
    """Thumbnails are stored once per content hash, fanned out over 256 folders (a
    function, so worker processes that only know the folder agree with the workspace)."""
    return thumbs_dir / content_hash[:2] / f"{content_hash}.jpg"


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary sibling of ``path``; rename it onto ``path`` only on success.

    The temporary name starts with ``.tmp-`` so that nothing globbing for finished files
    (``*.npy``, ``*.parquet``) ever picks up a partial one. A full or read-only file
    system becomes one :class:`WorkspaceWriteError` naming the path, and the partial file
    is removed, so nothing half-written is left to look done.
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        if err.errno in WRITE_ERRNOS:
            raise WorkspaceWriteError(describe_write_error(path, err)) from err
        raise
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


#: errno values that mean "this file system will not take the file", not a bug of ours
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG})


def describe_write_error(path: Path, err: OSError) -> str:
    """One line saying which path could not be written, why, and what is left."""
    why = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EFBIG: "the file is larger than this file system or ulimit allows",
    }.get(err.errno or 0, err.strerror or str(err))
    free = ""
    with contextlib.suppress(OSError):
        stat = os.statvfs(path.parent if path.parent.exists() else path.anchor)
        free = f" ({stat.f_bavail * stat.f_frsize / 1e6:,.1f} MB free there)"
    return (
        f"cannot write {path}: {why}{free}. Nothing half-written was kept; free space "
        f"or fix the permissions, then run the same command again to resume"
    )


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
