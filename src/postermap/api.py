"""The Python API, for notebooks and scripts: ``postermap.build``, ``postermap.open``, ``Map``.

The names here are fixed so scripts can rely on them::

    import postermap

    m = postermap.build("posters/", "work/posters", cell_size=96)   # runs what is needed
    m = postermap.open("work/posters")                               # an existing map
    m.catalog            # pyarrow.Table, one row per input file
    m.embeddings         # memory-mapped features + the content hash of each row
    m.clusters           # [{"id", "name", "size", "score", "members": [image ids]}, ...]
    m.similar("3f2a...")  # [(image id, cosine), ...], also for any image file
    m.serve()            # a local server for the map; in Jupyter, ``m`` shows it inline
    m.to_pandas()        # the catalog as a DataFrame (needs pandas)
    m.add("new posters/")  # grow the map; its images keep their places

Everything goes through the same library as the CLI: settings are the CLI's (see
``postermap.config.Settings``), errors are :class:`postermap.errors.PostermapError`.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from postermap.config import Settings
from postermap.errors import NotOnMapError, StageOrderError
from postermap.pipeline import add_source, load_settings, run_pipeline
from postermap.workspace import Embeddings, Workspace

if TYPE_CHECKING:
    import pandas
    import pyarrow as pa

__all__ = ["Map", "build", "open"]


def build(source: str | Path, workspace: str | Path, **settings: Any) -> Map:
    """Build (or bring up to date) the map of ``source`` in ``workspace``; like
    ``postermap run``: finished stages are skipped.

    Args:
        source: a folder of images or a manifest of URLs (CSV, TSV, Parquet, JSON Lines).
        workspace: the folder the map lives in (created if missing).
        **settings: any setting of :class:`postermap.config.Settings` by name, e.g.
            ``cell_size=96, reducer="umap"``; unset ones keep the workspace's values.

    Returns:
        The :class:`Map`.

    Example:
        >>> m = postermap.build("data/emoji/images", "work/emoji")  # doctest: +SKIP
        >>> len(m.clusters) > 0  # doctest: +SKIP
        True
    """
    source = Path(source).resolve()
    ws = Workspace(Path(workspace)).create()
    if "metadata" not in settings and source.is_dir() and (source / "metadata.csv").exists():
        settings["metadata"] = str(source / "metadata.csv")
    if settings.get("features"):  # the workspace keeps it: a path that works from anywhere
        settings["features"] = str(Path(settings["features"]).resolve())
    values = Settings.load(base=load_settings(ws), source=str(source), **settings)
    with ws.lock("postermap.build"):
        run_pipeline(ws, values)
    return Map(ws.root)


def open(workspace: str | Path) -> Map:  # noqa: A001 -- the API's name, as postermap.open
    """The map in ``workspace``, as a previous ``build`` or ``postermap run`` left it.

    Raises:
        StageOrderError: the workspace holds no finished map yet.
    """
    ws = Workspace(Path(workspace))
    if not ws.catalog_path.exists():
        raise StageOrderError(f"{ws.root} holds no map yet: run postermap.build or run")
    return Map(ws.root)


class Map:
    """A finished map: its tables, features, clusters and a viewer you can open."""

    def __init__(self, workspace: str | Path) -> None:
        self.workspace = Workspace(Path(workspace))
        self._server: Any = None

    def __repr__(self) -> str:
        return f"Map({str(self.workspace.root)!r})"

    @property
    def catalog(self) -> pa.Table:
        """One row per input file: id, status, reason, layout, grid cell, cluster,
        metadata (see README, Output contract)."""
        import pyarrow.parquet as pq

        return pq.read_table(self.workspace.catalog_path)

    @property
    def embeddings(self) -> Embeddings:
        """The CNN features, memory-mapped: ``.vectors[i]`` belongs to content hash
        ``.ids[i]`` (the catalog's ``content_hash`` column joins them to image ids;
        byte-identical copies share one row)."""
        return self.workspace.read_embeddings()

    @property
    def clusters(self) -> list[dict[str, Any]]:
        """The clusters, most interesting first: id, name, size, score and the image ids
        of their members (plus the cohesions, ImageNet classes and title keywords)."""
        table = self.workspace.read_table("cluster", ["id", "cluster"]).to_pydict()
        members: dict[int, list[str]] = {}
        for image_id, label in zip(table["id"], table["cluster"], strict=True):
            members.setdefault(int(label), []).append(image_id)
        return [
            {**info, "members": members.get(int(info["id"]), [])}
            for info in self.workspace.read_clusters()
        ]

    def similar(self, image: str | Path, k: int = 20) -> list[tuple[str, float]]:
        """The ``k`` images on the map most similar to ``image``: the id of an image on
        the map, or any image file (embedded now, as the pipeline embeds).

        Raises:
            NotOnMapError: ``image`` is neither a file nor the id of an image on the map.
            ImageLoadError: the file cannot be decoded.
        """
        from postermap.similarity import similar_to_file, similar_to_id

        if Path(image).is_file():
            settings = load_settings(self.workspace)
            return similar_to_file(
                self.workspace,
                Path(image),
                settings.model,
                settings.thumb_size,
                k,
                features=settings.features,
            )
        if not isinstance(image, str):
            raise NotOnMapError(f"{image} is not a file")
        return similar_to_id(self.workspace, image, k)

    def add(self, source: str | Path, metadata: str | Path | None = None) -> dict[str, Any]:
        """Grow the map by the images of ``source`` (a folder or a manifest) without
        rebuilding it, like ``postermap add``: the images on the map keep their places,
        grid cells and clusters; the new ones are cleaned against the whole collection.

        Args:
            source: a folder of images or a manifest of URLs.
            metadata: a CSV with a ``filename`` column (default: ``source/metadata.csv``).

        Returns:
            What was done: ``new_rows``, ``placed``, ``moved`` (images already on the map
            that changed cell), ``moved_share``, per-step reports and ``seconds``.

        Example:
            >>> m = postermap.open("work/emoji")  # doctest: +SKIP
            >>> m.add("more emoji/")["moved_share"]  # doctest: +SKIP
            0.0
        """
        source = Path(source).resolve()
        if metadata is None and source.is_dir() and (source / "metadata.csv").exists():
            metadata = source / "metadata.csv"
        ws = self.workspace
        with ws.lock("postermap.add"):
            return add_source(ws, load_settings(ws), source, Path(metadata) if metadata else None)

    def serve(self, port: int = 0, host: str = "127.0.0.1") -> str:
        """Serve the map's site in a background thread (once); returns its URL."""
        from postermap.serve import make_server

        if self._server is None:
            site = self.workspace.site_dir
            if not (site / "index.html").exists():
                raise StageOrderError(f"{site} has no viewer yet: build the map first")
            self._server = make_server(site, host, port)
            threading.Thread(target=self._server.serve_forever, daemon=True).start()
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/"

    def stop(self) -> None:
        """Stop the server :meth:`serve` started."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def _repr_html_(self) -> str:
        """Jupyter shows the map inline: an iframe of the served site."""
        url = self.serve()
        return (
            f'<iframe src="{url}" width="100%" height="600" style="border:0" '
            f'title="postermap: {self.workspace.root.name}"></iframe>'
        )

    def to_pandas(self) -> pandas.DataFrame:
        """The catalog as a pandas DataFrame (needs ``pip install 'postermap[pandas]'``)."""
        try:
            import pandas  # noqa: F401 -- only to say what is missing
        except ImportError as err:
            from postermap.errors import SettingsError

            raise SettingsError("to_pandas needs pandas: pip install 'postermap[pandas]'") from err
        return self.catalog.to_pandas()
