"""What a stage is: the contract between :mod:`postermap.pipeline` and ``stages/*``.

A stage module exposes ``STAGE = Stage(...)``. It reads its inputs from the workspace,
calls library code, writes its outputs through the workspace and returns a
:class:`StageOutcome`; it never imports another stage. The settings a stage reads are
declared in :mod:`postermap.config` (each setting lists its stages), not here.

This module imports nothing of the package at run time, so every layer may depend on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from postermap.config import StageSettings
    from postermap.workspace import Workspace


@dataclass(frozen=True)
class StageOutcome:
    """What a stage reports: per-status or per-kind counts and how many images it handled.

    ``counts`` go into the stage's marker and its summary table; ``extra`` holds other
    completion data worth keeping in the marker (timings of parts, say) — never data a
    later stage reads: that belongs in a workspace artefact.
    """

    counts: dict[str, int]
    items: int
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Stage:
    """One step of the pipeline. ``run`` reads and writes only inside the workspace."""

    name: str
    #: stages whose outputs this one reads (their fingerprints enter this one's)
    depends: tuple[str, ...]
    run: Callable[[Workspace, StageSettings], StageOutcome]
    #: bump when the code changes what the stage writes, so old workspaces re-run it
    version: int | str = 1
    #: fingerprint of inputs outside the settings (source folder, overrides file)
    input_fingerprint: Callable[[Workspace, StageSettings], str] | None = None
    #: one line for the CLI help of ``postermap <name>``
    doc: str = ""
