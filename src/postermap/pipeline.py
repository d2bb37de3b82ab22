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

from postermap.catalog import write_catalog
from postermap.config import Settings, stage_settings
from postermap.errors import StageOrderError
from postermap.progress import print_summary
from postermap.stage import Stage
from postermap.stages import clean, cluster, embed, grid, ingest, neighbours, reduce, tiles
from postermap.workspace import SPACE_ERRNOS, Workspace, atomic_write_text, write_errors

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
