"""Clean stage: every clean figure on every labelled set, the trade-off curves, and the
stage's logic timed at 169,000 images.

    python -m benchmarks.clean [--sets NAME-SEED ...] [--n 169000] [--no-scale] [--no-curves]

**Sets** (tests/heldout, one labels format, one evaluation):

* ``clipart-posters-0`` is the **tuning set**: every clean threshold was chosen on it, and
  on nothing else;
* held out: ``clipart-posters-1`` (the same recipe with a new seed: not a new collection),
  ``icon-posters-0`` and ``-1`` (another generator: other motifs, backgrounds, fonts,
  layouts), ``openmoji-0`` (real: 1,488 distinct emoji, every one should stay),
  ``cleanset-0`` and ``tropes-0`` (the generators the old thresholds were tuned on).

Each set is built once (cached in benchmarks/.cache/heldout/, shared with
benchmarks/judgement.py), ingested and embedded once by ``postermap run SET -o WS
--until embed`` (benchmarks/.cache/clean-runs/), then :func:`clean_collection` runs in
this process on the workspace's rows, features and thumbnails, and the verdicts are
scored by tests/heldout/evaluate.py. The table marks the tuning set.

**Curves**: near-duplicate precision / recall and the keepers wrongly removed on every
set, for ``near_layout`` (the share of a picture's regions that must match) and for
``graphic_layout`` (the same for graphics, with no grade and no mirror) swept over a
range; the defaults are marked.

**Scale**: clean_collection on N synthetic rows (random measurements and layout
signatures, clustered 1280-d embeddings, 1% planted near-duplicate pairs whose copies
are the same signature slightly shifted and recompressed), timed against one
exact-duplicate pass over the same rows. Writes benchmarks/results/clean.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import CACHE, heldout_set, peak_rss_mb, write_result
from postermap.cleaning import (
    INPUT_COLUMNS,
    CleanParams,
    clean_collection,
    find_exact_duplicates,
    unit_features,
)
from postermap.images import CHROMA_SIDE, SIGNATURE_SIDE
from postermap.workspace import Workspace
from tests.heldout import fetch_sources
from tests.heldout.evaluate import evaluate, join
from tests.heldout.labels import read_labels

REPO = Path(__file__).resolve().parents[1]
POSTERMAP = REPO / ".venv" / "bin" / "postermap"
TUNING = "clipart-posters-0"
DEFAULT_SETS = (
    "clipart-posters-0",
    "clipart-posters-1",
    "icon-posters-0",
    "icon-posters-1",
    "openmoji-0",
    "cleanset-0",
    "tropes-0",
)
LAYOUTS = (0.6, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
GRAPHIC_LAYOUTS = (0.9, 0.95, 0.98, 1.0)


def embedded(folder: Path, key: str) -> Workspace:
    """A workspace of the set with ingest and embed done (postermap skips what is done)."""
    ws = CACHE / "clean-runs" / key
    ws.parent.mkdir(parents=True, exist_ok=True)
    log = ws.parent / f"{key}.log"
    with open(log, "w") as out:
        done = subprocess.run(
            [str(POSTERMAP), "run", str(folder), "-o", str(ws), "--until", "embed"],
            stdout=out,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"postermap run failed on {folder.name}: see {log}")
    return Workspace(ws)


class Collection:
    """Rows, features and thumbnails of one embedded set, ready for clean_collection."""

    def __init__(self, ws: Workspace, folder: Path) -> None:
        self.rows = ws.read_table("ingest", list(INPUT_COLUMNS)).to_pylist()
        embeddings = ws.read_embeddings()
        self.features = unit_features(self.rows, embeddings.ids, embeddings.vectors)
        self.labels = read_labels(folder)
        self.ws = ws

    def thumbnail(self, content_hash: str) -> Image.Image | None:
        with Image.open(self.ws.thumb_path(content_hash)) as image:
            return image.convert("RGB")

    def score(self, params: CleanParams) -> tuple[dict, float]:
        """Metrics of clean_collection with ``params`` and its seconds."""
        start = time.perf_counter()
        verdicts = clean_collection(self.rows, self.features, params, self.thumbnail)
        seconds = time.perf_counter() - start
        catalog = []
        for row in self.rows:
            verdict = verdicts.get(row["id"])
            catalog.append(
                {
                    "id": row["id"],
                    "path": row["path"],
                    "status": verdict.status if verdict else row["status"],
                    "reason": (verdict.reason if verdict else row["reason"]) or "",
                    "duplicate_of": verdict.duplicate_of if verdict else None,
                }
            )
        return evaluate(join(self.labels, catalog)), seconds


def _f(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _pr(m: dict) -> str:
    return f"{_f(m.get('precision'))} / {_f(m.get('recall'))}"


def _keep(m: dict) -> str:
    k = m["keep"]
    return "-" if k["share"] is None else f"{100 * k['share']:.1f}% ({k['removed']})"


def figures_table(results: dict) -> str:
    lines = [
        "| set | images | on map | exact P / R | near-dup P / R | keepers wrongly removed "
        "| boring P / R | clean s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        m = r["metrics"]
        label = f"{key} (tuning)" if key == TUNING else f"{key} (held out)"
        on_map = f"{100 * m['on_map'] / max(m['images'], 1):.1f}%"
        lines.append(
            f"| {label} | {m['images']} | {on_map} | {_pr(m['exact'])} | {_pr(m['near'])} "
            f"| {_keep(m)} | {_pr(m['boring'])} | {r['seconds']:.1f} |"
        )
    return "\n".join(lines)


def breakdown(results: dict) -> str:
    lines = []
    for key, r in results.items():
        m = r["metrics"]
        near = m["near"]["recognised_by_kind"]
        boring = m["boring"]["found_by_kind"]
        lines += [
            f"{key}:",
            "  near duplicates missed (kind recognised/planted): "
            + (", ".join(f"{k} {a}/{b}" for k, (a, b) in near.items() if a < b) or "none"),
            f"  near-duplicate false positives by kind: {m['near']['false_positives_by_kind']}",
            f"  keepers removed as: {m['keep']['removed_as'] or 'none'}; by kind: "
            + (
                ", ".join(f"{k} {a}/{b}" for k, (a, b) in m["keep"]["removed_by_kind"].items() if a)
                or "none"
            ),
            "  boring missed (kind found/planted): "
            + (", ".join(f"{k} {a}/{b}" for k, (a, b) in boring.items() if a < b) or "none")
            + f"; false alarms {m['boring']['false_alarms_by_kind'] or 'none'}",
        ]
    return "\n".join(lines)


def curves(collections: dict[str, Collection]) -> dict:
    """near-dup P / R and keepers removed per set for each value of the two layout
    thresholds (the other at its default)."""
    out: dict = {"near_layout": {}, "graphic_layout": {}}
    for name, values in (("near_layout", LAYOUTS), ("graphic_layout", GRAPHIC_LAYOUTS)):
        for value in values:
            params = dataclasses.replace(CleanParams(), **{name: value})
            row = {}
            for key, collection in collections.items():
                m, _ = collection.score(params)
                row[key] = {
                    "precision": m["near"]["precision"],
                    "recall": m["near"]["recall"],
                    "keep_removed": m["keep"]["removed"],
                }
            out[name][value] = row
            print(f"  {name} {value}: done", flush=True)
    return out


def curves_table(curve: dict, name: str, default: float) -> str:
    keys = list(next(iter(curve.values())))
    header = (
        f"| {name} | " + " | ".join(f"{k}{' (tuning)' if k == TUNING else ''}" for k in keys) + " |"
    )
    lines = [header, "|" + "---|" * (len(keys) + 1)]
    for value, row in curve.items():
        mark = " (default)" if value == default else ""
        cells = [
            f"{_f(c['precision'])} / {_f(c['recall'])}, {c['keep_removed']} kept removed"
            for c in row.values()
        ]
        lines.append(f"| {value}{mark} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- scale


def synthetic(n: int, seed: int = 0) -> tuple[list[dict], np.ndarray]:
    """N rows like ingest's, with clustered features and random layout signatures; n/100
    planted pairs are the same picture (signature shifted by a pixel, noise added)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(500, 1280)).astype(np.float32)
    features = np.empty((n, 1280), np.float32)
    for start in range(0, n, 20_000):
        m = min(20_000, n - start)
        features[start : start + m] = (
            centres[rng.integers(0, 500, m)] + rng.normal(size=(m, 1280)).astype(np.float32) * 0.8
        )
    pairs = rng.choice(n, size=(n // 100, 2), replace=False)
    features[pairs[:, 1]] = features[pairs[:, 0]] + rng.normal(size=(len(pairs), 1280)) * 0.05
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    phash = [f"{v:016x}" for v in rng.integers(0, 2**63, n)]
    grey = _smooth_pictures(rng, n, SIGNATURE_SIDE)
    chroma = (rng.normal(size=(n, 2, CHROMA_SIDE, CHROMA_SIDE)) * 20).astype(np.int8)
    for a, b in pairs:
        phash[b] = phash[a]
        grey[b] = np.clip(np.roll(grey[a], 1, axis=1) + rng.normal(0, 2, grey[a].shape), 0, 255)
        chroma[b] = chroma[a]
    tail = bytes([0, 0, 255, 255, 128, 128, 128])
    rows = [
        {
            "id": f"{i:032x}",
            "path": f"p{i:07d}.jpg",
            "status": "ok",
            "content_hash": f"{i:032x}",
            "pixel_hash": f"{i:032x}",
            "width": 500,
            "height": 750,
            "format": "jpg",
            "bytes": 40_000,
            "phash": phash[i],
            "gray_std": 40.0,
            "detail": 10.0,
            "edge_p99": 80.0,
            "edge_sharp": 90.0,
            "colours": 200.0,
            "block": 1.0,
            "flat": 0.2,
            "signature": grey[i].astype(np.uint8).tobytes() + chroma[i].tobytes() + tail,
        }
        for i in range(n)
    ]
    return rows, features


def _smooth_pictures(rng: np.random.Generator, n: int, side: int) -> np.ndarray:
    """Random pictures with structure at several scales (independent per row)."""
    out = np.empty((n, side, side), np.float32)
    for start in range(0, n, 10_000):
        m = min(10_000, n - start)
        total = np.zeros((m, side, side), np.float32)
        for cells, weight in ((4, 1.0), (8, 0.6), (16, 0.3)):
            coarse = rng.random((m, cells, cells)).astype(np.float32)
            total += weight * np.kron(coarse, np.ones((side // cells, side // cells), np.float32))
        out[start : start + m] = 255 * (total - total.min()) / np.ptp(total)
    return out


def scale(n: int) -> dict:
    rows, features = synthetic(n)
    start = time.perf_counter()
    find_exact_duplicates(rows)
    baseline = time.perf_counter() - start
    start = time.perf_counter()
    verdicts = clean_collection(rows, features, CleanParams())
    seconds = time.perf_counter() - start
    near = sum(1 for v in verdicts.values() if v.status == "near_duplicate")
    return {
        "n": n,
        "seconds": seconds,
        "images_per_s": n / seconds,
        "exact_pass_seconds": baseline,
        "vs_exact_pass": seconds / baseline,
        "near_duplicates_found": near,
        "planted": n // 100,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", default=list(DEFAULT_SETS), help="NAME-SEED")
    parser.add_argument("--n", type=int, default=169_000)
    parser.add_argument("--no-scale", action="store_true")
    parser.add_argument("--no-curves", action="store_true")
    args = parser.parse_args()
    fetch_sources(sorted({key.rsplit("-", 1)[0] for key in args.sets}))
    collections: dict[str, Collection] = {}
    results: dict[str, dict] = {}
    for key in args.sets:
        name, seed = key.rsplit("-", 1)
        folder, _ = heldout_set(name, int(seed))
        collections[key] = Collection(embedded(folder, key), folder)
        metrics, seconds = collections[key].score(CleanParams())
        results[key] = {"tuning": key == TUNING, "seconds": seconds, "metrics": metrics}
        print(f"{key}: {metrics['images']} images, clean {seconds:.1f} s", flush=True)
    print()
    print(figures_table(results))
    print()
    print(breakdown(results))
    out: dict = {"tuning_set": TUNING, "params": dataclasses.asdict(CleanParams())}
    out["sets"] = results
    if not args.no_curves:
        print("\ntrade-off curves:")
        curve = curves(collections)
        out["curves"] = curve
        defaults = CleanParams()
        print()
        print(curves_table(curve["near_layout"], "near_layout", defaults.near_layout))
        print()
        print(curves_table(curve["graphic_layout"], "graphic_layout", defaults.graphic_layout))
    if not args.no_scale:
        out["scale"] = scale(args.n)
        print(
            "\nscale: "
            + " ".join(
                f"{k}: {v:.2f}" if isinstance(v, float) else f"{k}: {v}"
                for k, v in out["scale"].items()
            )
        )
    write_result("clean.json", out)


if __name__ == "__main__":
    main()
