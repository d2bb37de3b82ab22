"""Runs the stages in order, skipping those whose marker matches their fingerprint.

This module is the one place that knows every stage. A stage's fingerprint hashes its
name, code version, the settings it reads that affect its output (declared in
:mod:`postermap.config`), the fingerprints of the stages it depends on, and its own
inputs outside the settings (the source listing, ``overrides.toml``, ``clusters.toml``).
So a re-run of a finished workspace does no work, a changed DBSCAN radius re-runs only
``cluster`` and ``tiles``, and a new image in the source folder re-runs everything.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

from postermap.catalog import write_catalog
from postermap.config import Settings, stage_settings
from postermap.errors import SettingsError, StageOrderError
from postermap.growing import MOVE_PENALTY, clear_pending, grow_map, grown_by
from postermap.progress import print_summary
from postermap.stage import Stage
from postermap.stages import clean, cluster, embed, grid, ingest, neighbours, reduce, tiles
from postermap.workspace import (
    SPACE_ERRNOS,
    Workspace,
    atomic_write_json,
    atomic_write_text,
    write_errors,
)

log = logging.getLogger(__name__)

#: Every stage, in pipeline order (stage modules are thin: importing them loads no model).
STAGES: tuple[Stage, ...] = tuple(
    module.STAGE for module in (ingest, embed, clean, reduce, grid, cluster, neighbours, tiles)
)
STAGE_NAMES = tuple(stage.name for stage in STAGES)


def stages() -> list[Stage]:
    """All stages in pipeline order."""
    return list(STAGES)


def stage_by_name(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise StageOrderError(f"no stage named {name!r}; stages: {', '.join(STAGE_NAMES)}")


def fingerprint(ws: Workspace, settings: Settings, stage: Stage) -> str:
    upstream = {}
    for dep in stage.depends:
        marker = ws.read_marker(dep)
        if marker is None:
            raise StageOrderError(
                f"stage '{stage.name}' needs '{dep}' to have run first "
                f"(no marker in {ws.stages_dir})"
            )
        upstream[dep] = marker["fingerprint"]
    view = settings.for_stage(stage.name)
    payload = {
        "stage": stage.name,
        "version": stage.version,
        "params": settings.subset(stage_settings(stage.name)),
        "upstream": upstream,
        "input": stage.input_fingerprint(ws, view) if stage.input_fingerprint else None,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:24]


def run_stage(ws: Workspace, settings: Settings, stage: Stage, force: bool = False) -> dict:
    """Run ``stage`` unless its marker is current; return its marker record."""
    ws.create()
    fp = fingerprint(ws, settings, stage)
    if not force and ws.is_done(stage.name, fp):
        log.info("%s: up to date, skipped", stage.name)
        marker = ws.read_marker(stage.name)
        assert marker is not None
        return {**marker, "skipped": True}
    log.info("%s: running", stage.name)
    started = time.perf_counter()
    with write_errors(ws.root, SPACE_ERRNOS):  # a write the stage did not name itself
        outcome = stage.run(ws, settings.for_stage(stage.name))
    seconds = time.perf_counter() - started
    write_catalog(ws)
    record = {
        "fingerprint": fp,
        "params": settings.subset(stage_settings(stage.name)),
        "counts": outcome.counts,
        "items": outcome.items,
        "seconds": round(seconds, 3),
        "images_per_second": round(outcome.items / seconds, 2) if seconds > 0 else None,
        **outcome.extra,
    }
    ws.write_marker(stage.name, record)
    print_summary(stage.name, record)
    return {**record, "skipped": False}


def run_pipeline(ws: Workspace, settings: Settings, until: str | None = None) -> list[dict]:
    """Run every stage in order (up to and including ``until``); finished ones are skipped."""
    ws.create()
    save_settings(ws, settings)
    records = []
    for stage in stages():
        records.append({"stage": stage.name, **run_stage(ws, settings, stage)})
        if stage.name == until:
            break
    return records


def save_settings(ws: Workspace, settings: Settings) -> None:
    """Remember the map's settings for later stage commands (per-invocation choices such
    as ``ray`` are not kept: see ``remember`` in :mod:`postermap.config`)."""
    atomic_write_text(ws.settings_path, settings.to_json())


def load_settings(ws: Workspace) -> Settings:
    """The settings a workspace was last run with (defaults if it has none yet)."""
    if not ws.settings_path.exists():
        return Settings()
    return Settings.from_mapping(
        json.loads(ws.settings_path.read_text()), origin=str(ws.settings_path)
    )


#: the step of :func:`postermap.growing.grow_map` that stands in for each stage
GROWN_BY = {
    "embed": "embed",
    "clean": "clean",
    "reduce": "layout",
    "grid": "grid",
    "cluster": "cluster",
    "neighbours": "neighbours",
}


def add_source(
    ws: Workspace,
    settings: Settings,
    source: Path,
    metadata: Path | None = None,
    move_penalty: float = MOVE_PENALTY,
) -> dict:
    """Grow the finished map in ``ws`` by the images of ``source`` without rebuilding it
    (``postermap add``): the map's images keep their places, cells and clusters.

    The source is registered in the workspace (ingest lists it after the map's own, so a
    full ``run`` of the same settings maps the same files), ingest reads it, the growing
    steps (:func:`postermap.growing.grow_map`) embed, clean and place the new images, the
    stage markers are brought up to date and the site is rendered again. A killed ``add``
    resumes when run again with the same source (another source is refused until then).

    Returns:
        What was done: per-step reports, the share of the map's images that moved cell,
        seconds.
    """
    started = time.perf_counter()
    ws.create()
    entry = {
        "source": str(Path(source).resolve()),
        "metadata": str(Path(metadata).resolve()) if metadata else None,
    }
    plan_path = ws.pending_add_dir / "plan.json"
    if plan_path.exists():
        plan = json.loads(plan_path.read_text())
        if plan["source"] != entry["source"]:
            raise SettingsError(
                f"an add of {plan['source']} to {ws.root} was interrupted; run "
                f"`postermap add {plan['source']} -o {ws.root}` to finish it first"
            )
        log.info("add: resuming the add of %s", entry["source"])
    else:
        _require_finished(ws, settings)
        atomic_write_json(plan_path, entry)
    added = ws.read_added_sources()
    own = settings.source and str(Path(settings.source).resolve()) == entry["source"]
    if not own and not any(s["source"] == entry["source"] for s in added):
        ws.write_added_sources([*added, entry])
    run_stage(ws, settings, stage_by_name("ingest"))
    report = {"source": entry["source"], **grow(ws, settings, move_penalty)}
    report["seconds"] = round(time.perf_counter() - started, 3)
    history = ws.read_added_sources()
    for item in history:
        if item["source"] == entry["source"]:
            item.setdefault("adds", []).append(
                {k: report[k] for k in ("new_rows", "placed", "moved", "seconds")}
            )
    if history:
        ws.write_added_sources(history)
    clear_pending(ws)
    return report


def grow(ws: Workspace, settings: Settings, move_penalty: float = MOVE_PENALTY) -> dict:
    """The part of :func:`add_source` after ingest: the growing steps for every row
    ingest added, the stage markers brought up to date, the site rendered again."""
    started = time.perf_counter()
    reports = grow_map(ws, settings, move_penalty)
    for name, step in GROWN_BY.items():
        marker = ws.read_marker(name) or {}
        stage = stage_by_name(name)
        ws.write_marker(
            name,
            {**marker, "fingerprint": fingerprint(ws, settings, stage), "added": reports[step]},
        )
    tiles = run_stage(ws, settings, stage_by_name("tiles"))  # it writes the catalog first
    if tiles.get("skipped"):
        write_catalog(ws)
    return {
        "new_rows": reports["clean"].get("new", 0),
        "placed": reports["layout"].get("new", 0),
        "moved": reports["grid"].get("moved", 0),
        "moved_share": reports["grid"].get("moved_share", 0.0),
        "grown_by": grown_by(reports),
        "steps": reports,
        "tiles_seconds": tiles.get("seconds"),
        "seconds": round(time.perf_counter() - started, 3),
    }


def _require_finished(ws: Workspace, settings: Settings) -> None:
    """``add`` grows a finished map: every stage must be current."""
    for stage in STAGES:
        if not ws.is_done(stage.name, fingerprint(ws, settings, stage)):
            raise StageOrderError(
                f"the map in {ws.root} is not finished (stage '{stage.name}' is not up to "
                f"date): run `postermap run` first, then add"
            )
