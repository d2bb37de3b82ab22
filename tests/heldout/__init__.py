"""Held-out evaluation sets for the clean and cluster stages.

The clean/cluster thresholds were tuned on tests/cleanset.py and tests/tropes.py (posters
composed from Noto emoji). Scores on the set a threshold was tuned on say little about
other collections, so these sets are built from other sources with other recipes, and
every set, tuning or held-out, is written in one labels format (:mod:`.labels`) and
scored by one evaluation (:mod:`.evaluate`); ``benchmarks/judgement.py`` prints them side
by side.

Sets (``SETS[name](out_dir, seed) -> out_dir``):

``cleanset``, ``tropes`` (tuning)
    tests/cleanset.py and tests/tropes.py as they are (Noto emoji, npm
    ``emoji-datasource-google``, Apache-2.0), relabelled.
``clipart-posters`` (held out, ~540 images)
    Open Clip Art drawings (Debian ``openclipart-png``, public domain) on crops of
    scikit-image's sample photos (PyPI ``scikit-image`` wheel, only its bundled CC0 /
    public-domain photos; nothing is installed), noise, gradients and paper; DejaVu titles
    (Debian ``fonts-dejavu-core``, Bitstream Vera licence); 2:3 at 300x450 PNG and
    600x900 JPEG. See :mod:`.clipart`.
``icon-posters`` (held out, ~540 images)
    KDE Oxygen icons (Debian ``oxygen-icon-theme``, LGPL-3+) on GNOME wallpapers (Debian
    ``gnome-backgrounds``, CC BY-SA 3.0), radial gradients, splits, stripes and halftone;
    Liberation titles in banners (Debian ``fonts-liberation2``, SIL OFL 1.1); 27:40 at
    270x400 / 540x800, mostly JPEG. See :mod:`.icons`.
``openmoji`` (held out, real, ~1,490 images)
    OpenMoji's emoji (npm ``openmoji``, CC BY-SA 4.0) as drawn, all distinct, with their
    group as category and the hard look-alike families marked. See :mod:`.openmoji`.

Both poster sets plant exact copies, ten kinds of near duplicate, trope siblings (six
large motifs, two small round ones), five kinds of boring image and three kinds of hard
keeper: see :mod:`.posters`.

:func:`fetch_sources` installs or downloads what the sets need, through apt-get, npm and
pip (idempotent; Debian packages need root). ``python -m tests.heldout fetch`` runs it;
``python -m tests.heldout build NAME OUT [--seed N]`` builds one set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from tests.heldout import clipart, icons, openmoji, sources, tuning


class Builder(Protocol):
    """``build(out_dir, seed) -> out_dir``; ``scale`` shrinks every count (for tests)."""

    def __call__(self, out: Path, seed: int, scale: float = 1.0) -> Path: ...


SETS: dict[str, Builder] = {
    "cleanset": tuning.build_cleanset,
    "tropes": tuning.build_tropes,
    clipart.NAME: clipart.build,
    icons.NAME: icons.build,
    openmoji.NAME: openmoji.build,
}
#: the sets the current thresholds were tuned on
TUNING = frozenset({"cleanset", "tropes"})
#: external sources per set ("noto-emoji": the project's default set)
SET_SOURCES: dict[str, tuple[str, ...]] = {
    "cleanset": ("noto-emoji",),
    "tropes": ("noto-emoji",),
    clipart.NAME: clipart.SOURCES,
    icons.NAME: icons.SOURCES,
    openmoji.NAME: openmoji.SOURCES,
}
#: bump when a generator changes, so cached builds are rebuilt
VERSIONS: dict[str, int] = {name: 1 for name in SETS} | {clipart.NAME: 2, icons.NAME: 2}


def missing_sources(name: str) -> list[str]:
    """Sources set ``name`` needs that are not on this machine (empty: it can be built)."""
    needed = SET_SOURCES[name]
    gone = [s for s in needed if s != "noto-emoji" and not sources.is_available(s)]
    if "noto-emoji" in needed and not tuning.emoji_available():
        gone.append("noto-emoji")
    return gone


def fetch_sources(names: list[str] | None = None) -> dict[str, Path]:
    """Install or download every source the given sets (default: all) need; returns the
    path of each source. Idempotent; raises :class:`sources.SourceUnavailable` with the
    reason when a source cannot be had."""
    needed: list[str] = []
    for name in names or list(SETS):
        if name not in SETS:
            raise KeyError(f"unknown set {name!r}; known: {', '.join(SETS)}")
        needed += SET_SOURCES[name]
    paths: dict[str, Path] = {}
    if "noto-emoji" in needed:
        paths["noto-emoji"] = tuning.fetch_emoji()
    paths.update(sources.fetch(s for s in dict.fromkeys(needed) if s != "noto-emoji"))
    return paths
