"""Command line: thin shells over :mod:`postermap.pipeline` and the stage modules.

User errors (bad path, bad setting, a stage run out of order) become
``click.ClickException`` with a message a person can act on; anything else propagates.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path

import click
from rich.console import Console
from rich.logging import RichHandler

from postermap.config import Settings, SettingsError
from postermap.datasets import DatasetError, fetch_emoji
from postermap.manifest import ManifestError
from postermap.pipeline import (
    NothingToMapError,
    StageOrderError,
    load_settings,
    run_pipeline,
    run_stage,
    save_settings,
    stage_by_name,
)
from postermap.progress import console
from postermap.workspace import Workspace

USER_ERRORS = (SettingsError, StageOrderError, DatasetError, ManifestError, NothingToMapError)


def _user_errors(func):
    """Turn the library's user-facing errors into click errors (exit 1, one clear line)."""
    from postermap.sources import IngestError

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except (*USER_ERRORS, IngestError) as err:
            raise click.ClickException(str(err)) from err

    return wrapper


def _apply(options: list, func):
    for option in reversed(options):
        func = option(func)
    return func


def _setting_options(func):
    """Options shared by ``run`` and the stage commands; unset ones keep their value."""
    return _apply(
        [
            click.option(
                "--config",
                "config_path",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="TOML file of settings (see README).",
            ),
            click.option("--workers", type=int, help="Processes for decoding images."),
            click.option(
                "--ray",
                "ray",
                metavar="auto|local|ADDRESS",
                help="Run decode, embedding and tile rendering as Ray tasks: 'auto' "
                "joins this machine's cluster (or RAY_ADDRESS), 'local' starts "
                "one here, or give an address. Needs postermap[ray].",
            ),
            click.option("--model", help="Embedding model (default efficientnet-lite0)."),
            click.option("--batch-size", type=int, help="Images per model batch."),
            click.option("--perplexity", type=float, help="t-SNE perplexity."),
            click.option("--seed", type=int, help="Random seed for PCA, t-SNE and the grid."),
            click.option("--dbscan-eps", type=float, help="DBSCAN radius in mean image spacings."),
            click.option("--dbscan-min-samples", type=int, help="DBSCAN core point count."),
            click.option("--cell-size", type=int, help="Pixels per grid cell at full zoom."),
            click.option(
                "--cluster-method",
                type=click.Choice(["hdbscan", "dbscan"]),
                help="Clustering algorithm.",
            ),
            click.option(
                "--cluster-space",
                type=click.Choice(["layout", "embedding"]),
                help="Cluster the 2-D layout or the embedding space (PCA-30).",
            ),
            click.option("--min-cluster-size", type=int, help="HDBSCAN's smallest cluster."),
            click.option(
                "--hdbscan-selection",
                type=click.Choice(["leaf", "eom"]),
                help="HDBSCAN cluster selection (leaf: tight tropes).",
            ),
            click.option(
                "--near-cosine",
                type=float,
                help="CNN cosine similarity that confirms a near duplicate.",
            ),
            click.option(
                "--near-phash",
                type=int,
                help="Most perceptual-hash bits a near duplicate may differ in.",
            ),
            click.option(
                "--keep-near-duplicates",
                is_flag=True,
                default=None,
                help="Flag near duplicates but keep them on the map.",
            ),
        ],
        func,
    )


def _source_options(func):
    """Options of commands that read a source (``run``, ``ingest``)."""
    return _apply(
        [
            click.option(
                "--metadata",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="CSV with a 'filename' column (default: SOURCE/metadata.csv).",
            ),
            click.option("--url-column", help="Manifest column holding the image URLs."),
            click.option("--title-column", help="Manifest column holding the titles."),
            click.option("--id-column", help="Manifest column holding your own ids."),
            click.option("--concurrency", type=int, help="Downloads in flight overall."),
            click.option("--per-host", type=int, help="Downloads in flight per host."),
            click.option("--retries", type=int, help="Retries of a transient download failure."),
            click.option("--timeout", type=float, help="Read timeout per request, seconds."),
            click.option("--max-bytes", type=int, help="Largest download accepted, bytes."),
            click.option(
                "--retry-failed",
                is_flag=True,
                default=None,
                help="Re-run: try transient download failures again.",
            ),
        ],
        func,
    )


SOURCE = click.Path(exists=True, path_type=Path)


def _settings(ws: Workspace | None, config_path: Path | None, **overrides) -> Settings:
    base = load_settings(ws) if ws is not None else None
    return Settings.load(config_path, base=base, **overrides)


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="postermap")
def main(verbose: int) -> None:
    """postermap: a large image collection as one zoomable map of visual similarity."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(message)s", handlers=[RichHandler(console=console, show_path=False)]
    )
    logging.getLogger("postermap").setLevel(min(level, logging.INFO))
    # libvips reports every finished thread pool at INFO; only its warnings matter to a user.
    logging.getLogger("pyvips").setLevel(logging.WARNING)


@main.command()
@click.argument("source", type=SOURCE)
@click.option(
    "-o",
    "--output",
    "workspace",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Workspace folder.",
)
@click.option(
    "--until",
    type=click.Choice(
        ["ingest", "embed", "clean", "reduce", "grid", "cluster", "neighbours", "tiles"]
    ),
    help="Stop after this stage.",
)
@_source_options
@_setting_options
@_user_errors
def run(
    source: Path,
    workspace: Path,
    metadata: Path | None,
    until: str | None,
    config_path: Path | None,
    **overrides,
) -> None:
    """Run every stage on SOURCE (a folder of images, or a CSV/TSV/Parquet/JSONL manifest
    of image URLs); finished stages are skipped."""
    ws = Workspace(workspace).create()
    settings = _settings(
        ws,
        config_path,
        source=str(source.resolve()),
        metadata=_metadata_for(source, metadata),
        **overrides,
    )
    records = run_pipeline(ws, settings, until=until)
    done = [r["stage"] for r in records if not r["skipped"]]
    click.echo(f"workspace: {ws.root}")
    click.echo(f"stages run: {', '.join(done) or 'none (all up to date)'}")
    if (ws.site_dir / "index.html").exists():
        click.echo(f"map: {ws.site_dir / 'index.html'}  (postermap serve {workspace})")


@main.command()
@click.argument("source", type=SOURCE)
@click.option(
    "-o",
    "--output",
    "workspace",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Workspace folder.",
)
@click.option("--force", is_flag=True, help="Run even if the stage is up to date.")
@_source_options
@_setting_options
@_user_errors
def ingest(
    source: Path,
    workspace: Path,
    metadata: Path | None,
    force: bool,
    config_path: Path | None,
    **overrides,
) -> None:
    """Ingest SOURCE (a folder of images, or a manifest of URLs to download)."""
    ws = Workspace(workspace).create()
    settings = _settings(
        ws,
        config_path,
        source=str(source.resolve()),
        metadata=_metadata_for(source, metadata),
        **overrides,
    )
    save_settings(ws, settings)
    run_stage(ws, settings, stage_by_name("ingest"), force=force)


def _clean_report(ws: Workspace) -> Path:
    from postermap.clean_report import write_clean_report

    return write_clean_report(ws)


def _seam_report(ws: Workspace) -> Path:
    from postermap.stages.grid import write_seam_report

    return write_seam_report(ws)


def _stage_command(
    name: str, doc: str, report: tuple[str, Callable[[Workspace], Path]] | None = None
) -> None:
    """``postermap NAME WORKSPACE``: run one stage (and, if it has one, write its report)."""

    @_user_errors
    def command(
        workspace: Path, force: bool, config_path: Path | None, report_flag=False, **overrides
    ) -> None:
        ws = Workspace(workspace)
        settings = _settings(ws, config_path, **overrides)
        save_settings(ws, settings)
        run_stage(ws, settings, stage_by_name(name), force=force)
        if report_flag and report is not None:
            click.echo(str(report[1](ws)))

    command = _setting_options(command)
    if report is not None:
        command = click.option("--report", "report_flag", is_flag=True, help=report[0])(command)
    command = click.option("--force", is_flag=True, help="Run even if the stage is up to date.")(
        command
    )
    command = click.argument(
        "workspace", type=click.Path(exists=True, file_okay=False, path_type=Path)
    )(command)
    main.command(name=name, help=doc)(command)


for _name, _doc, _report in [
    ("embed", "Compute CNN features for every distinct readable image.", None),
    (
        "clean",
        "Flag exact and near duplicates and boring images (applies overrides.toml).",
        ("Also write WORKSPACE/report/clean.html and clean.csv.", _clean_report),
    ),
    ("reduce", "Lay the embeddings out in 2-D (PCA + openTSNE).", None),
    (
        "grid",
        "Snap the 2-D layout onto a gapless grid.",
        ("Also write WORKSPACE/report/grid-seams.png (distortion per cell).", _seam_report),
    ),
    ("cluster", "Find, score and name clusters (applies clusters.toml).", None),
    ("neighbours", "Index the embeddings and store every image's 20 most similar images.", None),
    ("tiles", "Render the tile pyramid and write the viewer site.", None),
]:
    _stage_command(_name, _doc, _report)


@main.command()
@click.argument("workspace", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port (0 = any free).")
@click.option("--open", "open_browser", is_flag=True, help="Open the map in a browser.")
def serve(workspace: Path, host: str, port: int, open_browser: bool) -> None:
    """Serve WORKSPACE/site over HTTP and print its URL (Ctrl-C stops)."""
    from postermap.serve import serve_site

    site = Workspace(workspace).site_dir
    if not (site / "index.html").exists():
        raise click.ClickException(f"{site} has no viewer yet: run 'postermap run' first")
    serve_site(site, host=host, port=port, open_browser=open_browser)


@main.command()
@click.argument("workspace", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--gallery",
    is_flag=True,
    help="Also write a contact sheet per cluster and report/clusters/index.html.",
)
def clusters(workspace: Path, gallery: bool) -> None:
    """Print the clusters of WORKSPACE, most interesting first."""
    from rich.table import Table

    from postermap.gallery import cluster_table_rows, write_gallery

    ws = Workspace(workspace)
    if not (ws.root / "clusters.json").exists():
        raise click.ClickException(f"{ws.root} has no clusters yet: run 'postermap run' first")
    table = Table(title="clusters")
    for column, justify in (
        ("rank", "right"),
        ("name", "left"),
        ("size", "right"),
        ("score", "right"),
        ("named from", "left"),
    ):
        table.add_column(column, justify=justify)
    for rank, name, size, score, provenance in cluster_table_rows(ws):
        table.add_row(str(rank), name, f"{size:,}", f"{score:.2f}", provenance)
    Console().print(table)
    if gallery:
        click.echo(str(write_gallery(ws)))


@main.command()
@click.argument("image")
@click.argument("workspace", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-k", "k", default=20, show_default=True, help="How many similar images.")
def similar(image: str, workspace: Path, k: int) -> None:
    """Print the images of WORKSPACE most similar to IMAGE (an id on the map, or any image
    file, which is embedded on the fly)."""
    import pyarrow.parquet as pq

    from postermap.gallery import similar_for_file, similar_for_id
    from postermap.images import ImageLoadError

    ws = Workspace(workspace)
    if not (ws.root / "neighbours" / "index.bin").exists():
        raise click.ClickException(f"{ws.root} has no similarity index: run 'postermap run'")
    try:
        if Path(image).is_file():
            settings = load_settings(ws)
            hits = similar_for_file(ws, Path(image), settings.model, settings.thumb_size, k)
        else:
            hits = similar_for_id(ws, image, k)
    except KeyError as err:
        raise click.ClickException(
            f"{image} is neither an image file nor the id of an image "
            f"on the map (see catalog.parquet)"
        ) from err
    except ImageLoadError as err:
        raise click.ClickException(f"{image}: {err}") from err
    rows = {
        r["id"]: r
        for r in pq.read_table(ws.catalog_path, columns=["id", "title", "source"]).to_pylist()
    }
    for image_id, score in hits:
        click.echo(
            f"{score:.3f}\t{image_id}\t{rows[image_id]['title']}\t{rows[image_id]['source']}"
        )


@main.command("fetch-default")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@_user_errors
def fetch_default(dest: Path) -> None:
    """Fetch the embedded default image set (Noto emoji from npm) into DEST/images."""
    click.echo(str(fetch_emoji(dest)))


def _metadata_for(source: Path, metadata: Path | None) -> str | None:
    if metadata is not None:
        return str(metadata.resolve())
    default = source / "metadata.csv"
    return str(default.resolve()) if source.is_dir() and default.exists() else None
