"""Runs the stages in order, skipping those whose marker matches their fingerprint.

A stage's fingerprint hashes its name, code version, the settings it reads and the
fingerprints of the stages it depends on (plus, for ingest, a fingerprint of the source
folder). So a re-run of a finished workspace does no work, a changed DBSCAN radius re-runs
only ``cluster`` and ``tiles``, and a new image in the source folder re-runs everything.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from postermap.catalog import write_catalog
from postermap.config import Settings
from postermap.progress import print_summary
from postermap.workspace import Workspace, atomic_write_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageOutcome:
    """What a stage reports: per-status or per-kind counts and how many images it handled."""

    counts: dict[str, int]
    items: int
    extra: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline. ``run`` reads and writes only inside the workspace."""

    name: str
    depends: tuple[str, ...]
    params: tuple[str, ...]
    run: Callable[[Workspace, Settings], StageOutcome]
    version: int = 1
    #: fingerprint of inputs outside the settings (source folder, overrides file)
    input_fingerprint: Callable[[Workspace, Settings], str] | None = None


class StageOrderError(RuntimeError):
    """A stage was asked to run before the stages it reads from."""


class NothingToMapError(ValueError):
    """The collection has too few usable images for the stage (a user error, not a bug)."""


def stages() -> list[Stage]:
    """All stages in pipeline order (imported lazily: torch loads only when embed runs)."""
    from postermap.stages import clean, cluster, embed, grid, ingest, neighbours, reduce, tiles

    return [
        ingest.STAGE,
        embed.STAGE,
        clean.STAGE,
        reduce.STAGE,
        grid.STAGE,
        cluster.STAGE,
        neighbours.STAGE,
        tiles.STAGE,
    ]


def stage_by_name(name: str) -> Stage:
    for stage in stages():
        if stage.name == name:
            return stage
    raise KeyError(f"no stage named {name!r}; stages: {', '.join(s.name for s in stages())}")


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
    payload = {
        "stage": stage.name,
        "version": stage.version,
        "params": settings.subset(stage.params),
        "upstream": upstream,
        "input": stage.input_fingerprint(ws, settings) if stage.input_fingerprint else None,
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
    outcome = stage.run(ws, settings)
    seconds = time.perf_counter() - started
    write_catalog(ws)
    record = {
        "fingerprint": fp,
        "params": settings.subset(stage.params),
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
    """Remember the map's settings for later stage commands. Where the work ran (``ray``)
    is a choice per invocation, not a property of the map, so it is not kept."""
    atomic_write_text(ws.settings_path, dataclasses.replace(settings, ray=None).to_json())


def load_settings(ws: Workspace) -> Settings:
    """The settings a workspace was last run with (defaults if it has none yet)."""
    if not ws.settings_path.exists():
        return Settings()
    return Settings.from_mapping(
        json.loads(ws.settings_path.read_text()), origin=str(ws.settings_path)
    )
