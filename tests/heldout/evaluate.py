"""Scores a ``postermap run SET -o WORKSPACE`` against the set's ``labels.csv``.

Plain functions returning plain dicts (JSON-ready). Undefined ratios (nothing expected,
nothing flagged) are None, never a flattering 1.0.

Definitions, and why:

* **Same picture.** An original and its planted copies form a group (the original's
  filename). Which member the clean stage keeps is its own business (the largest, for near
  duplicates; the first by path, for exact copies), so a flag is *correct* when the
  flagged image and its ``duplicate_of`` are in the same group, and a group with k planted
  copies earns at most k correct flags towards recall.
* **Exact duplicates**: precision = correct ``duplicate`` flags / all ``duplicate`` flags;
  recall = correct flags (capped per group) / planted exact copies.
* **Near duplicates**: the same with status ``near_duplicate``. A boring image flagged as
  a near duplicate of another boring one (two placeholder cards) is off the map either
  way; it is counted apart (``boring_flagged_as_near``), not as a near-duplicate error.
* **Keep images wrongly removed**: a ``keep`` image whose status is not ``ok``, unless it
  was removed as a copy of a member of its own group (its picture is still on the map).
* **Boring**: precision and recall of status ``boring`` against role ``boring``.
* **Tropes**: per planted trope, the cluster holding most of its members (members off the
  map or in noise count against recall); recall = members in that cluster / members,
  purity = members in it / its size. ARI of clusters against trope labels over the trope
  members, every unclustered member its own singleton (so noise is not one big "cluster").
* **Categories**: ARI of clusters against ``category`` over the labelled images on the
  map, noise as singletons (for the real set: agreement with its source categories).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

from tests.heldout.labels import Label, read_labels

log = logging.getLogger(__name__)

CATALOG_COLUMNS = ("id", "path", "status", "reason", "duplicate_of", "cluster")


@dataclass(frozen=True)
class Item:
    """One labelled image and what the pipeline decided about it."""

    label: Label
    status: str
    reason: str
    duplicate_of: str | None  # filename
    cluster: int | None  # None: not on the map or noise

    @property
    def name(self) -> str:
        return self.label.filename


def read_catalog(workspace: Path) -> list[dict]:
    import pyarrow.parquet as pq

    table = pq.read_table(workspace / "catalog.parquet")
    return table.select([c for c in CATALOG_COLUMNS if c in table.column_names]).to_pylist()


def join(labels: list[Label], rows: list[dict]) -> list[Item]:
    """Pair labels with catalog rows by path relative to the set folder.

    ``duplicate_of`` in the catalog is an id (the content hash), and byte-identical copies
    share one id, so an id maps to its kept row (the one not marked ``duplicate``).
    """
    by_path = {Path(r["path"]).as_posix(): r for r in rows}
    by_id: dict[str, str] = {}
    for r in sorted(rows, key=lambda r: r["status"] == "duplicate"):
        by_id.setdefault(r["id"], Path(r["path"]).as_posix())
    items, missing = [], []
    for label in labels:
        row = by_path.get(label.filename)
        if row is None:
            missing.append(label.filename)
            continue
        cluster = row.get("cluster")
        on_map = row["status"] == "ok" and cluster is not None and cluster >= 0
        dup = row.get("duplicate_of")
        items.append(
            Item(
                label,
                row["status"],
                row.get("reason") or "",
                by_id.get(dup) if dup else None,
                int(cluster) if on_map else None,
            )
        )
    if missing:
        raise ValueError(f"{len(missing)} labelled images not in the catalog, e.g. {missing[:3]}")
    return items


def evaluate_run(set_dir: Path, workspace: Path) -> dict:
    """All metrics for one built set and the workspace of its run."""
    return evaluate(join(read_labels(set_dir), read_catalog(workspace)))


def evaluate(items: list[Item]) -> dict:
    group = _groups(items)
    return {
        "images": len(items),
        "on_map": sum(i.status == "ok" for i in items),
        "exact": _copies(items, group, "duplicate", "duplicate"),
        "near": _copies(items, group, "near_duplicate", "near_duplicate"),
        "keep": _keep(items, group),
        "boring": _boring(items),
        "tropes": _tropes(items),
        "categories": _categories(items),
    }


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _groups(items: list[Item]) -> dict[str, str | None]:
    """filename -> same-picture group (the original's filename), None for boring."""
    out: dict[str, str | None] = {}
    for i in items:
        role = i.label.role
        if role in ("duplicate", "near_duplicate"):
            out[i.name] = i.label.duplicate_of
        elif role == "keep":
            out[i.name] = i.name
        else:
            out[i.name] = None
    return out


def _correct_pair(item: Item, group: dict[str, str | None]) -> bool:
    g = group.get(item.name)
    return g is not None and item.duplicate_of is not None and group.get(item.duplicate_of) == g


def _family(kind: str) -> str:
    """Breakdown key: keeper/trope/near/exact/boring kinds in full, ``pair:<x>`` and
    ``face:<x>`` by their prefix (hundreds of families)."""
    if kind.startswith(("pair:", "face:")):
        return kind.split(":")[0]
    return kind or "-"


def _copies(items: list[Item], group, status: str, role: str) -> dict:
    kind_of = {i.name: i.label.kind for i in items}
    flagged = [i for i in items if i.status == status and i.label.role != "boring"]
    expected = [i for i in items if i.label.role == role]
    want = Counter(group[i.name] for i in expected)
    got = Counter(group[i.name] for i in flagged if _correct_pair(i, group))
    correct = sum(min(n, want[g]) for g, n in got.items())
    wrong = [i for i in flagged if not _correct_pair(i, group)]
    # per planted kind: recognised when taken off as a copy of its own group (as exact or
    # near, whichever the group's flags came out as), or kept while a member of its group
    # was taken off as a copy of it
    as_copy = [i for i in items if i.status in ("duplicate", "near_duplicate")]
    kept_for = {i.duplicate_of for i in as_copy if _correct_pair(i, group)}
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for i in expected:
        found = (i in as_copy and _correct_pair(i, group)) or (
            i.status == "ok" and i.name in kept_for
        )
        by_kind[_family(i.label.kind)][0] += int(found)
        by_kind[_family(i.label.kind)][1] += 1
    return {
        "precision": _ratio(sum(1 for i in flagged if _correct_pair(i, group)), len(flagged)),
        "recall": _ratio(correct, len(expected)),
        "flagged": len(flagged),
        "expected": len(expected),
        # any copy verdict counts here: an exact copy called a near duplicate is recognised
        "recognised": _ratio(sum(a for a, _ in by_kind.values()), len(expected)),
        "recognised_by_kind": dict(sorted(by_kind.items())),
        "false_positives_by_kind": dict(Counter(_family(i.label.kind) for i in wrong)),
        "false_positive_examples": [
            [i.name, i.label.kind, i.duplicate_of, kind_of.get(i.duplicate_of or "", "")]
            for i in wrong[:12]
        ],
        "boring_flagged_as_near": sum(
            1 for i in items if i.status == status and i.label.role == "boring"
        ),
    }


def _keep(items: list[Item], group) -> dict:
    keeps = [i for i in items if i.label.role == "keep"]
    removed = [
        i
        for i in keeps
        if i.status != "ok"
        and not (i.status in ("duplicate", "near_duplicate") and _correct_pair(i, group))
    ]
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for i in keeps:
        by_kind[_family(i.label.kind)][1] += 1
    for i in removed:
        by_kind[_family(i.label.kind)][0] += 1
    by_category: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for i in keeps:
        if i.label.category:
            by_category[i.label.category][1] += 1
            by_category[i.label.category][0] += i in removed
    return {
        "total": len(keeps),
        "removed": len(removed),
        "share": _ratio(len(removed), len(keeps)),
        "removed_by_kind": dict(sorted(by_kind.items())),
        "removed_as": dict(Counter(_verdict(i) for i in removed)),
        "removed_by_category": dict(sorted(by_category.items())),
        "examples": [[i.name, i.label.kind, i.status, i.reason] for i in removed[:12]],
    }


def _verdict(item: Item) -> str:
    if item.status == "boring":
        return "boring:" + item.reason.split(":")[0]
    return item.status


def _boring(items: list[Item]) -> dict:
    flagged = [i for i in items if i.status == "boring"]
    expected = [i for i in items if i.label.role == "boring"]
    correct = sum(1 for i in flagged if i.label.role == "boring")
    by_kind: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for i in expected:
        by_kind[_family(i.label.kind)][0] += i.status == "boring"
        by_kind[_family(i.label.kind)][1] += 1
    return {
        "precision": _ratio(correct, len(flagged)),
        "recall": _ratio(correct, len(expected)),
        "flagged": len(flagged),
        "expected": len(expected),
        "off_map": sum(1 for i in expected if i.status != "ok"),
        "found_by_kind": dict(sorted(by_kind.items())),
        "false_alarms_by_kind": dict(
            Counter(_family(i.label.kind) for i in flagged if i.label.role != "boring")
        ),
        "missed_as": dict(Counter(i.status for i in expected if i.status != "boring")),
    }


def _singletons(values: list[int | None]) -> list[int]:
    """Cluster labels with every None its own negative label."""
    return [v if v is not None else -(k + 1) for k, v in enumerate(values)]


def _ari(truth: list[str], clusters: list[int | None]) -> float | None:
    if len(set(truth)) < 2:
        return None
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(truth, _singletons(clusters)))


def _tropes(items: list[Item]) -> dict:
    members = [i for i in items if i.label.trope]
    if not members:
        return {"per_trope": {}, "mean_recall": None, "mean_purity": None, "ari": None}
    size_of = Counter(i.cluster for i in items if i.cluster is not None)
    per: dict[str, dict] = {}
    for trope in sorted({i.label.trope for i in members}):
        mine = [i for i in members if i.label.trope == trope]
        counts = Counter(i.cluster for i in mine if i.cluster is not None)
        if not counts:
            per[trope] = {"size": len(mine), "recall": 0.0, "purity": 0.0, "cluster": None}
        else:
            best, n = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
            per[trope] = {
                "size": len(mine),
                "recall": n / len(mine),
                "purity": n / size_of[best],
                "cluster": best,
            }
        per[trope]["off_map"] = sum(1 for i in mine if i.status != "ok")
    return {
        "per_trope": per,
        "mean_recall": sum(v["recall"] for v in per.values()) / len(per),
        "mean_purity": sum(v["purity"] for v in per.values()) / len(per),
        "ari": _ari([i.label.trope for i in members], [i.cluster for i in members]),
    }


def _categories(items: list[Item]) -> dict:
    labelled = [i for i in items if i.label.category and i.status == "ok"]
    return {
        "images": len(labelled),
        "clustered": _ratio(sum(i.cluster is not None for i in labelled), len(labelled)),
        "ari": _ari([i.label.category for i in labelled], [i.cluster for i in labelled]),
    }
