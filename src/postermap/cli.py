"""Command line: thin shells over :mod:`postermap.pipeline` and the library.

Every setting option comes from the settings table in :mod:`postermap.config`; every
stage command from :data:`postermap.pipeline.STAGE_NAMES`. Expected problems
(:class:`postermap.errors.PostermapError`) become ``click.ClickException`` with the
library's message; anything else propagates.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.logging import RichHandler

from postermap.config import Settings, cli_settings, option_name, setting_types
from postermap.errors import PostermapError
from postermap.growing import MOVE_PENALTY, REBUILD_HINT_GROWTH
from postermap.pipeline import (
    STAGE_NAMES,
    add_source,
    load_settings,
    run_pipeline,
    run_stage,
    save_settings,
    stage_by_name,
)
from postermap.progress import console
from postermap.workspace import Workspace


def _user_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's expected errors into click errors (exit 1, one clear line)."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except PostermapError as err:
            raise click.ClickException(str(err)) from err

    return wrapper


def _setting_option(field: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A click option for one row of the settings table (unset = keep the current value)."""
    meta, kind = field.metadata, setting_types()[field.name]
    help_text = meta["help"].replace("`", "'")
    if kind is bool:
        return click.option(
            option_name(field.name), field.name, is_flag=True, default=None, help=help_text
        )
    if meta["choices"]:
        click_type: Any = click.Choice(list(meta["choices"]))
    elif field.name in ("metadata", "features"):
        click_type = click.Path(exists=True, dir_okay=False, path_type=Path)
    else:
        click_type = kind
    return click.option(
        option_name(field.name),
        field.name,
        type=click_type,
        metavar=meta["metavar"],
        help=help_text,
    )


def _options(group: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """All setting options of one group (``map``: every command; ``source``: commands that
    read a source)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for field in reversed([f for f in cli_settings() if f.metadata["group"] == group]):
            func = _setting_option(field)(func)
        if group == "map":
            func = click.option(
                "--config",
                "config_path",
                type=click.Path(exists=True, dir_okay=False, path_type=Path),
                help="TOML file with any of the settings (see README).",
            )(func)
        return func

    return decorate


SOURCE = click.Path(exists=True, path_type=Path)
WORKSPACE = click.Path(exists=True, file_okay=False, path_type=Path)


def _settings(ws: Workspace | None, config_path: Path | None, **overrides: Any) -> Settings:
    base = load_settings(ws) if ws is not None else None
    for name in ("metadata", "features"):
        if isinstance(overrides.get(name), Path):
            overrides[name] = str(overrides[name].resolve())
    return Settings.load(config_path, base=base, **overrides)


@click.group()
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="postermap")
def main(verbose: int) -> None:
    """postermap: a large image collection as one zoomable map of visual similarity."""
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(
        level=level,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    logging.getLogger("postermap").setLevel(min(level, logging.INFO))
    # libvips reports every finished thread pool at INFO; only its warnings matter to a user.
    logging.getLogger("pyvips").setLevel(logging.WARNING)


WAIT = click.option(
    "--wait", is_flag=True, help="If another process is writing WORKSPACE, wait for it."
)
OUTPUT = click.option(
    "-o",
    "--output",
    "workspace",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Workspace folder.",
)


@main.command()
@click.argument("source", type=SOURCE)
@OUTPUT
@click.option("--until", type=click.Choice(list(STAGE_NAMES)), help="Stop after this stage.")
@click.option(
    "--strict", is_flag=True, help="Exit with status 2 if any image hit an internal error."
)
@WAIT
@_options("source")
@_options("map")
@_user_errors
def run(
    source: Path,
    workspace: Path,
    until: str | None,
    strict: bool,
    wait: bool,
    config_path: Path | None,
    **overrides: Any,
) -> None:
    """Run every stage on SOURCE (a folder of images, or a CSV/TSV/Parquet/JSONL manifest
    of image URLs); finished stages are skipped."""
    ws = Workspace(workspace).create()
    overrides["metadata"] = overrides.get("metadata") or _default_metadata(source)
    settings = _settings(ws, config_path, source=str(source.resolve()), **overrides)
    with ws.lock("postermap run", wait=wait):
        records = run_pipeline(ws, settings, until=until)
    done = [r["stage"] for r in records if not r["skipped"]]
    click.echo(f"workspace: {ws.root}")
    click.echo(f"stages run: {', '.join(done) or 'none (all up to date)'}")
    if (ws.site_dir / "index.html").exists():
        click.echo(f"map: {ws.site_dir / 'index.html'}  (postermap serve {workspace})")
    errors = status_count(ws, "error")
    if errors:
        click.echo(
            f"warning: {errors:,} image(s) hit an internal error and are not on the map "
            f"(status error; reasons in {ws.catalog_path} and in the report of "
            f"`postermap clean {workspace} --report`)",
            err=True,
        )
        if strict:
            raise SystemExit(2)


@main.command()
@click.argument("source", type=SOURCE)
@OUTPUT
@click.option(
    "--metadata",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CSV with a `filename` column for the added images (default: SOURCE/metadata.csv).",
)
@click.option(
    "--move-penalty",
    type=float,
    default=MOVE_PENALTY,
    show_default=True,
    help="Grid cost of moving one image already on the map by one cell (lower: a tighter "
    "grid, more of the map's images change cell).",
)
@click.option("--workers", type=int, help="Processes decoding images and rendering tiles.")
@WAIT
@_user_errors
def add(
    source: Path,
    workspace: Path,
    metadata: Path | None,
    move_penalty: float,
    workers: int | None,
    wait: bool,
) -> None:
    """Grow the finished map in WORKSPACE by the images of SOURCE (a folder or a manifest)
    without rebuilding it: the map's images keep their places, cells and clusters."""
    ws = Workspace(workspace)
    if not ws.catalog_path.exists():
        raise click.ClickException(f"{ws.root} holds no map yet: run `postermap run` first")
    overrides = {"workers": workers} if workers else {}
    settings = _settings(ws, None, **overrides)
    if metadata is None and _default_metadata(source):
        metadata = Path(str(_default_metadata(source)))
    with ws.lock("postermap add", wait=wait):
        report = add_source(ws, settings, source, metadata, move_penalty)
    click.echo(f"workspace: {ws.root}")
    click.echo(
        f"added: {report['new_rows']:,} file(s), {report['placed']:,} placed on the map; "
        f"{report['moved']:,} image(s) already on it changed cell "
        f"({report['moved_share']:.2%}); {report['seconds']:.1f} s"
    )
    if report["grown_by"] > REBUILD_HINT_GROWTH:
        click.echo(
            f"the map grew by {report['grown_by']:.0%}: a full rebuild gives a tighter map "
            f"(delete {ws.marker_path('reduce')} and run again; everything moves)"
        )


def status_count(ws: Workspace, status: str) -> int:
    """How many catalog rows have ``status`` (0 before the first catalog)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    if not ws.catalog_path.exists():
        return 0
    statuses = pq.read_table(ws.catalog_path, columns=["status"])["status"]
    return int(pc.sum(pc.equal(statuses, status)).as_py() or 0)


@main.command()
@click.argument("source", type=SOURCE)
@OUTPUT
@click.option("--force", is_flag=True, help="Run even if the stage is up to date.")
@WAIT
@_options("source")
@_options("map")
@_user_errors
def ingest(
    source: Path,
    workspace: Path,
    force: bool,
    wait: bool,
    config_path: Path | None,
    **overrides: Any,
) -> None:
    """Ingest SOURCE (a folder of images, or a manifest of URLs to download)."""
    ws = Workspace(workspace).create()
    overrides["metadata"] = overrides.get("metadata") or _default_metadata(source)
    settings = _settings(ws, config_path, source=str(source.resolve()), **overrides)
    with ws.lock("postermap ingest", wait=wait):
        save_settings(ws, settings)
        run_stage(ws, settings, stage_by_name("ingest"), force=force)


def _clean_report(ws: Workspace) -> Path:
    from postermap.reports.clean import write_clean_report

    return write_clean_report(ws)


def _seam_report(ws: Workspace) -> Path:
    from postermap.reports.grid import write_seam_report

    return write_seam_report(ws)


#: the stage commands with a ``--report``: (help, writer)
REPORTS: dict[str, tuple[str, Callable[[Workspace], Path]]] = {
    "clean": ("Also write WORKSPACE/report/clean.html and clean.csv.", _clean_report),
    "grid": ("Also write WORKSPACE/report/grid-seams.png (distortion per cell).", _seam_report),
}


def _stage_command(name: str) -> None:
    """``postermap NAME WORKSPACE``: run one stage (and, if it has one, write its report)."""
    report = REPORTS.get(name)

    @_user_errors
    def command(
        workspace: Path,
        force: bool,
        wait: bool,
        config_path: Path | None,
        report_flag: bool = False,
        **overrides: Any,
    ) -> None:
        ws = Workspace(workspace)
        settings = _settings(ws, config_path, **overrides)
        with ws.lock(f"postermap {name}", wait=wait):
            save_settings(ws, settings)
            run_stage(ws, settings, stage_by_name(name), force=force)
            if report_flag and report is not None:
                click.echo(str(report[1](ws)))

    command = _options("map")(command)
    command = WAIT(command)
    if report is not None:
        command = click.option("--report", "report_flag", is_flag=True, help=report[0])(command)
    command = click.option("--force", is_flag=True, help="Run even if the stage is up to date.")(
        command
    )
    command = click.argument("workspace", type=WORKSPACE)(command)
    main.command(name=name, help=stage_by_name(name).doc)(command)


for _name in STAGE_NAMES[1:]:
    _stage_command(_name)


@main.command()
@click.argument("workspace", type=WORKSPACE)
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
@click.argument("workspace", type=WORKSPACE)
@click.option(
    "--gallery",
    is_flag=True,
    help="Also write a contact sheet per cluster and report/clusters/index.html.",
)
@_user_errors
def clusters(workspace: Path, gallery: bool) -> None:
    """Print the clusters of WORKSPACE, most interesting first."""
    from rich.table import Table

    from postermap.reports.clusters import cluster_table_rows, write_gallery

    ws = Workspace(workspace)
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
@click.argument("workspace", type=WORKSPACE)
@click.option("-k", "k", default=20, show_default=True, help="How many similar images.")
@_user_errors
def similar(image: str, workspace: Path, k: int) -> None:
    """Print the images of WORKSPACE most similar to IMAGE (an id on the map, or any image
    file, which is embedded on the fly)."""
    import pyarrow.parquet as pq

    from postermap.errors import NotOnMapError, StageOrderError
    from postermap.images import ImageLoadError
    from postermap.similarity import similar_to_file, similar_to_id

    ws = Workspace(workspace)
    if not ws.has_neighbour_index():
        raise StageOrderError(f"{ws.root} has no similarity index: run 'postermap run'")
    if Path(image).is_file():
        settings = load_settings(ws)
        try:
            hits = similar_to_file(
                ws, Path(image), settings.model, settings.thumb_size, k, settings.features
            )
        except ImageLoadError as err:
            raise click.ClickException(f"{image}: {err}") from err
    else:
        try:
            hits = similar_to_id(ws, image, k)
        except NotOnMapError as err:
            raise click.ClickException(
                f"{image} is neither an image file nor the id of an image on the map "
                f"(see catalog.parquet)"
            ) from err
    rows = {
        r["id"]: r
        for r in pq.read_table(ws.catalog_path, columns=["id", "title", "source"]).to_pylist()
    }
    for image_id, score in hits:
        click.echo(
            f"{score:.3f}\t{image_id}\t{rows[image_id]['title']}\t{rows[image_id]['source']}"
        )


@main.command()
@click.argument("workspace", type=WORKSPACE)
@click.option(
    "--to",
    "fmt",
    type=click.Choice(["parquet", "csv"]),
    default="parquet",
    show_default=True,
    help="File format.",
)
@click.option(
    "-o",
    "--output",
    "output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File to write (default: WORKSPACE/export/map.<format>).",
)
@click.option(
    "--embeddings",
    is_flag=True,
    help="Also write each image's CNN features (a list column; Parquet only).",
)
@_user_errors
def export(workspace: Path, fmt: str, output: Path | None, embeddings: bool) -> None:
    """Write the map as one table (catalog, layout, grid cell, cluster, metadata) for
    Embedding Atlas, FiftyOne or pandas."""
    from postermap.export import export_table, write_export

    ws = Workspace(workspace)
    path = output or ws.export_dir / f"map.{fmt}"
    click.echo(str(write_export(export_table(ws, embeddings=embeddings), path, fmt)))


@main.command("fetch-default")
@click.argument("dest", type=click.Path(file_okay=False, path_type=Path))
@_user_errors
def fetch_default(dest: Path) -> None:
    """Fetch the embedded default image set (Noto emoji from npm) into DEST/images."""
    from postermap.datasets import fetch_emoji

    click.echo(str(fetch_emoji(dest)))


def _default_metadata(source: Path) -> str | None:
    default = source / "metadata.csv"
    return str(default.resolve()) if source.is_dir() and default.exists() else None
