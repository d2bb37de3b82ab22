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
    sources.json             the sources ``postermap add`` grew the map with (ingest reads
                             them after SOURCE)
    add/                     the steps of an ``add`` in progress (gone when it finished)
    overrides.toml           the user's keep/drop of clean verdicts (user-edited)
    clusters.toml            the user's cluster curation (template written once)
    catalog.parquet          one row per input file: every stage's table joined by id
    stages/<stage>.json      completion markers
    tables/<stage>.parquet   each stage's own columns, keyed by id
    downloads/               manifest downloads (content-addressed) + journal.jsonl
    ingest/part-*.parquet    resumable ingest parts
    thumbs/ab/<hash>.jpg     one thumbnail per distinct content
    embed/                   shards/*.npy, embeddings.npy (N x dim), ids.npy,
                             <pooling>.npy (extra poolings, rows as embeddings.npy)
    layout.npy, layout_ids.npy   the 2-D layout of the images on the map
    layout-umap.pkl          a UMAP layout's fitted reducer (places images `add` brings)
    grid.json                grid shape (rows, cols) of tables/grid.parquet
    clusters.json, clusters.csv  ranked clusters; per-image export
    neighbours/              neighbours.npy, scores.npy, index.bin, projection.npz
    site/                    the static viewer
    report/                  reports asked for with --report / --gallery
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import io
import json
import logging
import mmap
import os
import pickle
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from postermap.errors import StageOrderError, WorkspaceBusyError, WorkspaceWriteError

log = logging.getLogger(__name__)

MARKER_VERSION = 1
#: mode of every file written: what the user's umask allows of rw-rw-rw- (mkstemp's 0600
#: would hide the site from a web server running as another user)
_UMASK = os.umask(0)
os.umask(_UMASK)
FILE_MODE = 0o666 & ~_UMASK

#: schema metadata key of the columns a person should see (see Workspace.write_table)
SHOWN_COLUMNS_KEY = "postermap.shown_columns"


def read_rows(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A float32 copy of ``vectors[rows]`` (in that order). From a memory-mapped file the
    rows are read through a map of just their span that is closed again: rows read
    through the file's own map stay in the process's resident memory, so one pass over a
    million images' 5 GB of features left all 5 GB counted against every later stage.
    The pages stay in the kernel's file cache; they just no longer belong to the process.
    """
    rows = np.asarray(rows, dtype=np.int64)
    # a view into a map would carry its parent's offset: only the whole file's map
    whole_map = isinstance(vectors, np.memmap) and isinstance(vectors.base, mmap.mmap)
    if not whole_map or not len(rows) or vectors.ndim != 2:
        return np.asarray(vectors[rows], dtype=np.float32)
    low, high = int(rows.min()), int(rows.max()) + 1
    if low < 0 or high > len(vectors):
        raise IndexError(f"rows {low}..{high - 1} outside the {len(vectors)} feature rows")
    window = np.memmap(
        vectors.filename,
        dtype=vectors.dtype,
        mode="r",
        offset=vectors.offset + low * vectors.strides[0],
        shape=(high - low, vectors.shape[1]),
    )
    contiguous = high - low == len(rows) and bool(np.all(np.diff(rows) == 1))
    # a copy either way; a run of rows is copied whole, without an index
    block = np.array(window if contiguous else window[rows - low], dtype=np.float32)
    del window  # the last reference: unmapped here, its pages leave the process
    return block


@dataclass(frozen=True)
class Embeddings:
    """The embed stage's output: ``vectors[i]`` (memory-mapped) belongs to content hash
    ``ids[i]``."""

    ids: np.ndarray
    vectors: np.ndarray

    def take(self, rows: np.ndarray) -> np.ndarray:
        """A float32 copy of the feature rows ``rows`` (:func:`read_rows`)."""
        return read_rows(self.vectors, rows)

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
    ``row * cols + col`` of a ``rows`` x ``cols`` grid (empty cells anywhere), whose cells
    are ``cell`` = (width, height)-shaped, and whose layout was turned by ``angle``
    radians (y pointing down) before the assignment."""

    ids: np.ndarray
    cells: np.ndarray
    rows: int
    cols: int
    cell: tuple[int, int] = (1, 1)
    angle: float = 0.0


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
        """The neighbour index of the projected features (``similar`` queries, ``add``):
        the list of its hnswlib graphs, which lie beside it."""
        return self.neighbours_dir / "index.json"

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
    def export_dir(self) -> Path:
        """Where ``postermap export`` writes unless told otherwise."""
        return self.root / "export"

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.parquet"

    @property
    def settings_path(self) -> Path:
        return self.root / "settings.json"

    @property
    def added_sources_path(self) -> Path:
        return self.root / "sources.json"

    def read_added_sources(self) -> list[dict[str, Any]]:
        """The sources ``postermap add`` grew the map with, in order: ``{"source": ...,
        "metadata": ...}`` each (ingest lists them after the map's own source)."""
        if not self.added_sources_path.exists():
            return []
        return json.loads(self.added_sources_path.read_text())

    def write_added_sources(self, sources: list[dict[str, Any]]) -> None:
        atomic_write_json(self.added_sources_path, sources)

    @property
    def pending_add_dir(self) -> Path:
        """The steps of an ``add`` in progress: each step's outputs are staged here and
        moved into place, and a step's marker says it is done (see
        :mod:`postermap.growing`)."""
        return self.root / "add"

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

    def write_embeddings(self, ids: list[str], parts: list[Path | np.ndarray], dim: int) -> None:
        """Join the feature ``parts`` (``.npy`` files, or arrays such as the vectors of a
        ``--features`` file, in ``ids`` order) into the embeddings file without holding the
        files in memory; ids last, so a torn write is never read."""
        with atomic_path(self.embeddings_path) as tmp:
            merged = np.lib.format.open_memmap(
                tmp, mode="w+", dtype=np.float32, shape=(len(ids), dim)
            )
            # claim the disk space now: a full disk under a memory map would be SIGBUS
            with open(tmp, "r+b") as fh:
                os.posix_fallocate(fh.fileno(), 0, os.path.getsize(tmp))
            offset = 0
            for path in parts:
                part = path if isinstance(path, np.ndarray) else np.load(path, mmap_mode="r")
                merged[offset : offset + len(part)] = part
                offset += len(part)
            merged.flush()
            del merged
        atomic_save_npy(self.embedding_ids_path, np.array(ids))

    def append_embeddings(
        self, ids: list[str], parts: list[Path], extra_parts: dict[str, list[Path]]
    ) -> None:
        """Append the rows of the feature ``parts`` (content hashes ``ids``, in order) and
        of each extra pooling's parts to the embeddings, in place: the existing rows are
        neither copied nor touched. Each file is cut back to the rows ``ids.npy`` lists,
        the new rows are written after them and the header's row count is rewritten last;
        ``ids.npy`` is replaced last of all, so a killed append is redone whole by the
        next one and a reader never sees a row without its id."""
        old = np.load(self._existing(self.embedding_ids_path, "embed"))
        _append_rows(self.embeddings_path, len(old), parts)
        for name, paths in extra_parts.items():
            _append_rows(self.extra_features_path(name), len(old), paths)
        atomic_save_npy(self.embedding_ids_path, np.concatenate([old, np.array(ids)]))

    @property
    def embed_failures_path(self) -> Path:
        return self.embed_dir / "failures.json"

    def write_embed_failures(self, failures: dict[str, str]) -> None:
        """Content hash -> why the image has no features (its row is zeros)."""
        atomic_write_json(self.embed_failures_path, failures)

    def read_embed_failures(self) -> dict[str, str]:
        if not self.embed_failures_path.exists():
            return {}
        return json.loads(self.embed_failures_path.read_text())

    def extra_features_path(self, name: str) -> Path:
        """An extra pooling of the model's feature map (e.g. ``rmac``), float16, rows
        aligned with ``embeddings.npy``."""
        return self.embed_dir / f"{name}.npy"

    def write_extra_features(
        self, name: str, parts: list[Path], rows: int, shape: tuple[int, ...]
    ) -> None:
        """Join the pooling's shard ``parts`` (in embeddings order, ``shape`` per image)
        without holding them in memory."""
        with atomic_path(self.extra_features_path(name)) as tmp:
            merged = np.lib.format.open_memmap(
                tmp, mode="w+", dtype=np.float16, shape=(rows, *shape)
            )
            with open(tmp, "r+b") as fh:  # claim the space now (SIGBUS under a full disk)
                os.posix_fallocate(fh.fileno(), 0, os.path.getsize(tmp))
            offset = 0
            for path in parts:
                part = np.load(path, mmap_mode="r")
                merged[offset : offset + len(part)] = part
                offset += len(part)
            merged.flush()
            del merged

    def read_extra_features(self, name: str) -> np.ndarray | None:
        """The memory-mapped pooling ``name``, or None if the embed stage wrote none (the
        model has no such pooling)."""
        path = self.extra_features_path(name)
        return np.load(path, mmap_mode="r") if path.exists() else None

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

    @property
    def umap_model_path(self) -> Path:
        """The fitted UMAP reducer and projection of a UMAP layout (pickled: the
        workspace's own output, read back only by ``add``)."""
        return self.root / "layout-umap.pkl"

    def write_umap_model(self, model: Any | None) -> None:
        """Keep ``model`` (a :class:`postermap.layout.UmapModel`), or remove a kept one
        (None: a t-SNE layout needs none)."""
        if model is None:
            self.umap_model_path.unlink(missing_ok=True)
            return
        with atomic_path(self.umap_model_path) as tmp:
            with open(tmp, "wb") as fh:
                pickle.dump(model, fh, protocol=pickle.HIGHEST_PROTOCOL)

    def read_umap_model(self) -> Any | None:
        """The kept UMAP model, or None when the layout has none."""
        if not self.umap_model_path.exists():
            return None
        with open(self.umap_model_path, "rb") as fh:
            return pickle.load(fh)  # noqa: S301 -- written by this workspace's reduce

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
        cell = tuple(shape.get("cell", (1, 1)))
        return Grid(
            np.array(table["id"]),
            cells,
            rows,
            cols,
            (cell[0], cell[1]),
            float(shape.get("angle", 0.0)),
        )

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
        atomic_write_json(
            self.root / "grid.json",
            {"rows": grid.rows, "cols": grid.cols, "cell": list(grid.cell), "angle": grid.angle},
        )

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

    # -- the writer's lock ------------------------------------------------------------
    @property
    def lock_path(self) -> Path:
        return self.root / ".lock"

    @contextlib.contextmanager
    def lock(self, command: str, wait: bool = False) -> Iterator[None]:
        """Hold the workspace's writer lock while ``command`` runs.

        One process writes a workspace at a time: a second one refuses at once with a
        :class:`WorkspaceBusyError` naming the holder (or, with ``wait``, blocks until it
        is done). The lock is an ``flock`` on ``.lock``, which the kernel releases when
        its holder dies, so a lock left by a killed run is taken over (the file's old
        contents only say who held it last). Worker processes forked by the holder share
        the lock until they exit; when the holder named in the file is dead, its workers
        are given ``ORPHAN_GRACE`` seconds to die with it. Readers (``serve``,
        ``similar``) take no lock.
        """
        self.create()
        with write_errors(self.lock_path):
            handle = open(self.lock_path, "a+")  # held for the whole block
        try:
            if wait:
                fcntl.flock(handle, fcntl.LOCK_EX)
            elif not _try_lock(handle):
                handle.seek(0)
                holder = handle.read().strip()
                if not (_holder_is_dead(holder) and _try_lock(handle, ORPHAN_GRACE)):
                    raise WorkspaceBusyError(
                        f"{self.root} is being written by {holder or 'another process'}; "
                        f"wait for it to finish, or run the same command with --wait to "
                        f"start when it has"
                    )
            handle.seek(0)
            previous = handle.read().strip()
            if previous:
                log.info("workspace lock: taking over from %s, which has ended", previous)
            handle.seek(0)
            handle.truncate()
            handle.write(
                f"process {os.getpid()} ({command}, since {time.strftime('%Y-%m-%d %H:%M:%S')})"
            )
            handle.flush()
            try:
                yield
            finally:
                handle.seek(0)
                handle.truncate()
                handle.flush()
        finally:
            handle.close()  # closing releases the flock

    def _existing(self, path: Path, stage: str) -> Path:
        if not path.exists():
            raise StageOrderError(f"{path} is missing: run the '{stage}' stage first")
        return path


#: seconds the workers of a killed run get to exit (and let go of its lock)
ORPHAN_GRACE = 30.0


def _try_lock(handle: Any, within: float = 0.0) -> bool:
    """Take the flock on ``handle`` if it is free now (or becomes free ``within`` s)."""
    deadline = time.monotonic() + within
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)


def _holder_is_dead(holder: str) -> bool:
    """Whether the lock file names a process (``process <pid> (...)``) that has exited."""
    words = holder.split()
    if len(words) < 2 or words[0] != "process" or not words[1].isdigit():
        return False
    try:
        os.kill(int(words[1]), 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


def _append_rows(path: Path, keep: int, parts: list[Path]) -> None:
    """Keep the first ``keep`` rows of the ``.npy`` at ``path`` and append the rows of
    ``parts`` (same row shape; cast to the file's dtype); the new row count goes into the
    header last. numpy leaves room in a header for the first axis to grow, so the header
    keeps its length and the data does not move."""
    fmt = np.lib.format
    with write_errors(path), open(path, "r+b") as fh:
        version = fmt.read_magic(fh)
        read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
        shape, fortran, dtype = read(fh)
        if fortran:
            raise StageOrderError(f"{path} is not in C order; run the 'embed' stage again")
        start = fh.tell()
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        added = [np.load(part, mmap_mode="r") for part in parts]
        total = keep + sum(len(rows) for rows in added)
        header = io.BytesIO()
        write = fmt.write_array_header_1_0 if version == (1, 0) else fmt.write_array_header_2_0
        described = {"descr": fmt.dtype_to_descr(dtype), "fortran_order": False}
        write(header, {**described, "shape": (total, *shape[1:])})
        if len(header.getvalue()) != start:
            raise StageOrderError(
                f"{path}: its header has no room for {total} rows; run the 'embed' stage again"
            )
        fh.truncate(start + keep * row_bytes)
        fh.seek(start + keep * row_bytes)
        for rows in added:
            if tuple(rows.shape[1:]) != tuple(shape[1:]):
                raise StageOrderError(
                    f"{path}: new rows of shape {rows.shape[1:]}, the file has {shape[1:]}"
                )
            for at in range(0, len(rows), 4096):
                fh.write(np.ascontiguousarray(rows[at : at + 4096], dtype=dtype).tobytes())
        fh.flush()
        os.fsync(fh.fileno())
        fh.seek(0)
        fh.write(header.getvalue())
        fh.flush()
        os.fsync(fh.fileno())


def thumb_location(thumbs_dir: Path, content_hash: str) -> Path:
    """Thumbnails are stored once per content hash, fanned out over 256 folders (a
    function, so worker processes that only know the folder agree with the workspace)."""
    return thumbs_dir / thumb_name(content_hash)


def thumb_name(content_hash: str) -> str:
    """A thumbnail's path under the thumbnails folder (a string: linking 170k of them
    through pathlib took seconds)."""
    return f"{content_hash[:2]}/{content_hash}.jpg"


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
        with write_errors(path):
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(prefix=f".tmp-{path.name}.", dir=path.parent)
            os.fchmod(fd, FILE_MODE)  # mkstemp makes 0600: the site is read by web servers
            os.close(fd)
            tmp = Path(tmp_name)
            yield tmp
            os.replace(tmp, path)
    finally:
        if tmp is not None:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


@contextlib.contextmanager
def write_errors(path: Path, errnos: frozenset[int] | None = None) -> Iterator[None]:
    """Turn "this file system will not take the write" (full, read-only, no permission,
    size limit; or only ``errnos``) into one :class:`WorkspaceWriteError` naming
    ``path``; other errors pass."""
    errnos = WRITE_ERRNOS if errnos is None else errnos
    try:
        yield
    except WorkspaceWriteError:
        raise
    except OSError as err:
        if err.errno in errnos or _is_short_write(err):
            raise WorkspaceWriteError(describe_write_error(Path(path), err)) from err
        raise


#: errno values that mean "this file system will not take the file", not a bug of ours
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EFBIG})
#: ...of which those that can only come from a write (EACCES may be a read, too)
SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def _is_short_write(err: OSError) -> bool:
    """numpy reports a write the file system cut short without an errno."""
    return err.errno is None and "requested and" in str(err) and "written" in str(err)


def describe_write_error(path: Path, err: OSError) -> str:
    """One line saying which path could not be written, why, and what is left."""
    free_bytes = None
    with contextlib.suppress(OSError):
        stat = os.statvfs(path.parent if path.parent.exists() else path.anchor)
        free_bytes = stat.f_bavail * stat.f_frsize
    short = (
        "the disk is full"
        if free_bytes is not None and free_bytes < 1_000_000
        else ("the write was cut short (a file size limit?)")
    )
    why = {
        errno.ENOSPC: "the disk is full",
        errno.EDQUOT: "the disk quota is exceeded",
        errno.EROFS: "the file system is read-only",
        errno.EACCES: "permission denied",
        errno.EFBIG: "the file is larger than this file system or ulimit allows",
    }.get(err.errno or 0, err.strerror or f"{short}: {err}")
    free = "" if free_bytes is None else f" ({free_bytes / 1e6:,.1f} MB free there)"
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
