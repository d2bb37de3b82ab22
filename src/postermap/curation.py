"""``WORKSPACE/clusters.toml``: the user's edits to the automatic clusters.

The cluster stage writes a commented template listing the clusters it found the first
time it runs and never overwrites the file afterwards. Sections the user adds::

    [clusters.3]
    name = "sports cars"      # rename
    drop = true               # not a trope: its members become unclustered (-1)
    merge_into = 5            # its members join cluster 5
    add = ["<id>", "<id>"]    # pin images into this cluster
    remove = ["<id>"]         # take images out of it (they become unclustered)

Cluster numbers refer to the clustering the template was written for (same settings and
images); changing the clustering settings renumbers clusters, so start a new file then.
A new trope of the user's own takes a number from :data:`NEW_TROPE_BASE` up (the viewer's
selection export picks the next free one): clustering never makes that many clusters,
so such a section survives a re-clustering and only ``add`` (and ``name``) mean
anything in it.
Only the parsed content enters the stage fingerprint: comments can change freely.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from postermap.config import read_toml
from postermap.errors import SettingsError
from postermap.workspace import atomic_write_text

if TYPE_CHECKING:
    from postermap.clustering import ClusterInfo
    from postermap.config import StageSettings
    from postermap.workspace import Workspace

log = logging.getLogger(__name__)

FILE_NAME = "clusters.toml"
KEYS = {"name", "drop", "merge_into", "add", "remove"}
#: numbers from here up are the user's own tropes, never found by clustering
NEW_TROPE_BASE = 1_000_000


@dataclass
class Curation:
    names: dict[int, str] = field(default_factory=dict)
    drop: set[int] = field(default_factory=set)
    merge: dict[int, int] = field(default_factory=dict)
    add: dict[int, list[str]] = field(default_factory=dict)
    remove: dict[int, list[str]] = field(default_factory=dict)


def read_curation(path: Path) -> Curation:
    """Parse and validate ``clusters.toml`` (missing file = no edits)."""
    data = read_toml(path, allowed={"clusters"})
    curation = Curation()
    for key, edits in data.get("clusters", {}).items():
        if not key.lstrip("-").isdigit() or not isinstance(edits, dict):
            raise SettingsError(f"{path}: [clusters.{key}] must be a cluster number")
        k = int(key)
        bad = set(edits) - KEYS
        if bad:
            raise SettingsError(
                f"{path}: [clusters.{k}] unknown key(s) "
                f"{', '.join(sorted(bad))}; use {', '.join(sorted(KEYS))}"
            )
        if "name" in edits:
            curation.names[k] = str(edits["name"])
        if edits.get("drop"):
            curation.drop.add(k)
        if "merge_into" in edits:
            curation.merge[k] = int(edits["merge_into"])
        for kind in ("add", "remove"):
            if kind in edits:
                ids = edits[kind]
                if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                    raise SettingsError(f"{path}: [clusters.{k}] {kind} must be a list of ids")
                getattr(curation, kind)[k] = ids
    return curation


def curation_fingerprint(ws: Workspace, settings: StageSettings) -> str:
    curation = read_curation(ws.curation_path)
    payload = json.dumps(
        {
            "names": curation.names,
            "drop": sorted(curation.drop),
            "merge": curation.merge,
            "add": curation.add,
            "remove": curation.remove,
        },
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def apply_curation(labels: np.ndarray, ids: list[str], curation: Curation) -> np.ndarray:
    """Labels after merges, drops, removals and additions (cluster numbers are kept)."""
    out = labels.copy()
    known = set(np.unique(labels[labels >= 0]).tolist())
    for k in sorted(
        set(curation.merge)
        | curation.drop
        | set(curation.add)
        | set(curation.remove)
        | set(curation.names)
    ):
        if k not in known and not (k >= NEW_TROPE_BASE and k in curation.add):
            log.warning(
                "%s: there is no cluster %d (clusters: 0..%d)",
                FILE_NAME,
                k,
                max(known) if known else -1,
            )
    for source, target in curation.merge.items():
        out[labels == source] = target
    for k in curation.drop:
        out[out == k] = -1
    index = {image_id: i for i, image_id in enumerate(ids)}
    for k, members in curation.remove.items():
        for image_id in members:
            if image_id in index and out[index[image_id]] == k:
                out[index[image_id]] = -1
    for k, members in curation.add.items():
        missing = [m for m in members if m not in index]
        if missing:
            log.warning(
                "%s: cannot add %d id(s) to cluster %d, they are not on the map: %s",
                FILE_NAME,
                len(missing),
                k,
                ", ".join(missing[:5]),
            )
        for image_id in members:
            if image_id in index:
                out[index[image_id]] = k
    return out


def write_template(path: Path, clusters: list[ClusterInfo]) -> bool:
    """Write the commented template unless the file exists; True if written."""
    if path.exists():
        return False
    lines = [
        "# postermap cluster curation for this workspace. postermap wrote this file once",
        "# and never overwrites it. Add sections like the example, then re-run",
        "# `postermap run` (or `postermap cluster`): only clustering and tiles re-run.",
        "#",
        "# [clusters.3]",
        '# name = "sports cars"      # rename',
        "# drop = true               # not a trope: members become unclustered",
        "# merge_into = 5            # members join cluster 5",
        '# add = ["<image id>"]      # pin images into this cluster',
        '# remove = ["<image id>"]   # take images out of it',
        "#",
        "# Clusters found (number: size, score, automatic name), best first:",
    ]
    for info in clusters:
        lines.append(f"#   {info.id}: {info.size} images, score {info.score:.2f}, {info.name}")
    atomic_write_text(path, "\n".join(lines) + "\n")
    return True
