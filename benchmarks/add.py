"""`postermap add` against a full rebuild: time, images moved, grid cost, tiles, copies.

    python -m benchmarks.add --n 20000 --m 100 1000      # the README's figures
    python -m benchmarks.add --n 5000 --m 100            # a quick look
    python -m benchmarks.add --n 169000 --m 1000 --no-rebuild   # baseline: the build of N

Data: the features-only workspace of benchmarks/scale.py (2,000 generated posters'
ingest rows and thumbnails, repeated with fresh ids, and random clustered 1,280-d
features), built once for N + max(M) images. The first N rows are the map; the next M
rows are "added": their ingest rows and features are appended (this stands in for
ingesting and embedding the new files, which costs the same per image as in a full run;
the printed estimate adds it at the per-image rates of benchmarks/results/scale-169000.json).
Among the added rows, ``--planted`` are copies of images on the map: half with the same
bytes (content and pixel hash), half near copies (the same thumbnail measurements and the
same features plus a little noise). Near duplicates are kept on the map, as in the scale
benchmark (the synthetic posters share themes), and detected by their reason.

Per M, in one process each (so the start-up cost is the same): the map of N built
(clean .. tiles), then `grow` (add's steps after ingest: clean, layout, grid, cluster,
neighbours, markers, tiles), then a full rebuild of the same N + M rows (clean .. tiles).
The grid cost (squared distance of each point, min-max normalised over all N + M, to its
cell centre, as benchmarks/grid.py measures it) is compared with a fresh assignment of
the same positions to a grid of N + M (the grid a rebuild of this layout would get), for
several move penalties. Writes benchmarks/results/add.json (N = 20,000) or add-N.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.common import CACHE, RESULTS, write_result
from benchmarks.scale import features_workspace
from postermap.grid import (
    assign_to_grid,
    cell_centres,
    grid_cost,
    map_shape,
    normalise_points,
)
from postermap.grid.insert import insert_points
from postermap.growing import MOVE_PENALTY
from postermap.workspace import Workspace

POST_EMBED = ["clean", "reduce", "grid", "cluster", "neighbours", "tiles"]
PENALTIES = [0.0, 2.0, 10.0, 50.0, 100.0, 200.0, 300.0, 500.0, 1000.0, 3000.0]

#: one process: the stages after embed (a rebuild) or add's steps (grow)
BUILD = """
import json, sys, time
from postermap.config import Settings
from postermap.pipeline import run_stage, save_settings, stage_by_name
from postermap.workspace import Workspace
ws = Workspace(sys.argv[1])
settings = Settings(keep_near_duplicates=True)
save_settings(ws, settings)
start = time.perf_counter()
for name in sys.argv[2].split(","):
    run_stage(ws, settings, stage_by_name(name))
print(json.dumps({"seconds": time.perf_counter() - start}))
"""
GROW = """
import json, sys, time
from postermap.pipeline import grow, load_settings
from postermap.workspace import Workspace
ws = Workspace(sys.argv[1])
start = time.perf_counter()
report = grow(ws, load_settings(ws), float(sys.argv[2]))
print(json.dumps({"seconds": time.perf_counter() - start, "report": report}, default=str))
"""


def run_python(code: str, *args: str) -> dict:
    """Run ``code`` in a fresh interpreter; its last stdout line is JSON."""
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        raise SystemExit(f"failed: {args}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def plant_copies(table: pa.Table, features: np.ndarray, n: int, m: int, planted: int, seed: int):
    """Make the last ``planted`` of the rows n..n+m copies of random rows of the map:
    the first half byte copies, the rest near copies. Returns the table, features and the
    planted rows as (row, source row, kind)."""
    rng = np.random.default_rng(seed)
    rows = table.to_pylist()
    plants = []
    sources = rng.choice(n, size=planted, replace=False)
    for k, source in enumerate(sources):
        at = n + m - planted + k
        copy = dict(rows[source])
        kind = "exact" if k < planted // 2 else "near"
        copy["id"], copy["path"] = rows[at]["id"], rows[at]["path"]
        if kind == "exact":
            copy["content_hash"] = rows[source]["content_hash"]
            copy["pixel_hash"] = rows[source]["pixel_hash"]
            features[at] = features[source]
        else:
            copy["content_hash"] = copy["pixel_hash"] = rows[at]["content_hash"]
            noise = rng.normal(0, 0.02, features.shape[1]).astype(np.float32)
            features[at] = np.maximum(features[source] * (1 + noise), 0)
        rows[at] = copy
        plants.append((at, int(source), kind))
    return pa.Table.from_pylist(rows, schema=table.schema), plants


def make_workspace(src: Workspace, dest: Path, rows: int, table: pa.Table, features: np.ndarray):
    """A workspace of the first ``rows`` rows (ingest table, thumbnails, features)."""
    dest.mkdir(parents=True)
    os.symlink(src.thumbs_dir, dest / "thumbs", target_is_directory=True)
    ws = Workspace(dest).create()
    ws.write_table("ingest", table.slice(0, rows))
    ws.embed_dir.mkdir(parents=True, exist_ok=True)
    hashes = table.slice(0, rows)["content_hash"].to_pylist()
    unique = list(dict.fromkeys(hashes))
    position = {h: i for i, h in enumerate(table["content_hash"].to_pylist()) if i < rows}
    np.save(ws.embeddings_path, features[[position[h] for h in unique]])
    np.save(ws.embedding_ids_path, np.array(unique))
    for stage in ("ingest", "embed"):
        ws.write_marker(stage, {"fingerprint": f"bench-{rows}", "counts": {}, "items": rows})
    return ws


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--m", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--planted", type=int, default=20)
    parser.add_argument(
        "--reuse-base", action="store_true", help="reuse the map of N a previous run built"
    )
    parser.add_argument(
        "--no-rebuild",
        action="store_true",
        help="skip the rebuild of N + M; the same run's build of N is the baseline",
    )
    args = parser.parse_args()
    total = args.n + max(args.m)
    root = CACHE / f"add-{args.n}"
    source = Workspace(root / "ws")
    if (
        not (source.root / "stages" / "embed.json").exists()
        or len(np.load(source.embedding_ids_path)) != total
    ):
        shutil.rmtree(source.root, ignore_errors=True)
        features_workspace(total, root)
    rates = json.loads((RESULTS / "scale-169000.json").read_text())
    per_image = {s["stage"]: s["seconds"] / rates["n"] for s in rates["stages"]}
    new_file_seconds = per_image["ingest"] + per_image["embed"]
    results = []
    for m in args.m:
        print(f"== N={args.n} M={m}", flush=True)
        table = source.read_table("ingest")
        features = np.array(np.load(source.embeddings_path, mmap_mode="r")[: args.n + m])
        planted = min(args.planted, m // 5)
        table, plants = plant_copies(table.slice(0, args.n + m), features, args.n, m, planted, m)
        work = root / f"m{m}"
        base = work / "base"
        if args.reuse_base and (base / "stages" / "tiles.json").exists():
            build = json.loads((base / "build.json").read_text())
        else:
            shutil.rmtree(work, ignore_errors=True)
            make_workspace(source, base, args.n, table, features)
            build = run_python(BUILD, str(base), ",".join(POST_EMBED))
            build["when"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
            (base / "build.json").write_text(json.dumps(build))
        print(f"build_n_seconds: {build['seconds']:.1f}", flush=True)
        # the add works on a copy: hard links, but a real copy of the file add appends to
        shutil.rmtree(work / "grown", ignore_errors=True)
        subprocess.run(["cp", "-al", str(base), str(work / "grown")], check=True)
        grown = Workspace(work / "grown")
        grown.embeddings_path.unlink()
        shutil.copy(base / "embed" / "embeddings.npy", grown.embeddings_path)
        shutil.rmtree(work / "full", ignore_errors=True)
        base_grid, base_layout = grown.read_grid(), grown.read_layout()
        # the added rows: ingest rows and features appended (stands in for ingest+embed)
        grown.write_table("ingest", table)
        known = set(np.load(grown.embedding_ids_path).tolist())
        new_hashes = [
            h
            for h in dict.fromkeys(table.slice(args.n)["content_hash"].to_pylist())
            if h not in known
        ]
        position = {h: i for i, h in enumerate(table["content_hash"].to_pylist())}
        part = work / "new-features.npy"
        np.save(part, features[[position[h] for h in new_hashes]])
        grown.append_embeddings(new_hashes, [part], {})
        added = run_python(GROW, str(grown.root), str(MOVE_PENALTY))
        report = added["report"]
        print(
            f"add_seconds: {added['seconds']:.1f} moved_share: {report['moved_share']:.4f}",
            flush=True,
        )
        full = None
        if args.no_rebuild:  # the build of N stands in for the rebuild of N + M
            reused = args.reuse_base and "when" in build
            rebuild = {
                "seconds": build["seconds"],
                "baseline": f"build of N, run at {build['when']}"
                if reused
                else "build of N, same run",
            }
        else:
            full = make_workspace(source, work / "full", args.n + m, table, features)
            rebuild = run_python(BUILD, str(full.root), ",".join(POST_EMBED))
            rebuild["baseline"] = "rebuild of N + M, same run"
        print(f"rebuild_seconds: {rebuild['seconds']:.1f} ({rebuild['baseline']})", flush=True)
        row = {
            "baseline": rebuild["baseline"],
            "n": args.n,
            "m": m,
            "build_n_seconds": build["seconds"],
            "add_seconds": added["seconds"],
            "rebuild_seconds": rebuild["seconds"],
            "ratio_post_embed": added["seconds"] / rebuild["seconds"],
            "new_files_seconds_estimated": m * new_file_seconds,
            "ratio_with_ingest_embed_estimated": (added["seconds"] + m * new_file_seconds)
            / (rebuild["seconds"] + (args.n + m) * new_file_seconds),
            "moved": report["moved"],
            "moved_share": report["moved_share"],
            "steps": report["steps"],
            "tiles": grown.read_marker("tiles")["counts"],
            "rebuild_tiles": full.read_marker("tiles")["counts"] if full else None,
        }
        row.update(grid_costs(grown, base_grid, base_layout))
        row["rebuild_own_layout_cost"] = full.read_marker("grid").get("cost") if full else None
        row["planted"] = detection(grown, table, plants)
        results.append(row)
        print(
            json.dumps({k: v for k, v in row.items() if k not in ("steps",)}, default=str),
            flush=True,
        )
        for key in ("ratio_post_embed", "ratio_with_ingest_embed_estimated", "moved_share"):
            print(f"{key}: {row[key]:.4f}")
        for entry in row["penalties"]:
            print(
                f"penalty {entry['penalty']:>6}: moved {entry['moved_share']:.2%} "
                f"(>1 cell {entry['moved_more_than_one_cell_share']:.2%}), "
                f"cost x{entry['cost_vs_rebuild']:.3f} "
                f"(in cells x{entry['cell_cost_vs_rebuild']:.3f}) "
                "of a rebuild's grid of the same layout"
            )
        print(f"planted: {row['planted']}", flush=True)
    name = "add.json" if args.n == 20_000 else f"add-{args.n}.json"
    write_result(name, {"n": args.n, "rows": results, "per_image_ingest_embed": new_file_seconds})


def grid_costs(ws: Workspace, base, base_layout) -> dict:
    """The grown grid's cost, and insertion at several penalties, against a fresh
    assignment of the same positions (all in the frame the grid was assigned in).

    Two measures. ``cost_vs_rebuild``: :func:`grid_cost`, points and cell centres each
    min-max normalised to [0, 1]; on a grid that grew by rows at the bottom this
    stretches every old image's cell against its position (a grid of 411 rows grown by
    3 moves the last row's centres 3 cells from where its points normalise to) and counts
    that as cost although nothing moved. ``cell_cost_vs_rebuild``: squared distance in
    cells between each point and its cell centre, each grid in the frame it was
    assigned in (the grown grid in the old grid's cells, where its old images sit; the
    fresh grid in its own): how far each image is from where the layout puts it, on the
    map a person sees.
    """
    from postermap.growing import grid_frame

    grid, layout = ws.read_grid(), ws.read_layout()
    at = {i: k for k, i in enumerate(layout.ids.tolist())}
    xy = layout.xy[[at[i] for i in grid.ids.tolist()]]
    n_old = len(base.ids)
    old_xy, new_xy = grid_frame(xy[:n_old], xy[n_old:], base)
    frame = np.concatenate([old_xy, new_xy])
    rows, cols = map_shape(len(frame), base.cell, 16 / 10)
    started = time.perf_counter()
    fresh = assign_to_grid(frame, rows, cols, seed=0, workers=2)
    fresh_seconds = time.perf_counter() - started
    fresh_cost = grid_cost(frame, fresh, rows, cols)
    fresh_cells = cells_cost(normalise_points(frame) * [cols, rows], fresh, rows, cols)
    out = {
        "grid_cost_add": grid_cost(frame, grid.cells, grid.rows, grid.cols),
        "grid_cost_fresh_same_layout": fresh_cost,
        "cell_cost_add": cells_cost(frame, grid.cells, grid.rows, grid.cols),
        "cell_cost_fresh_same_layout": fresh_cells,
        "fresh_shape": [rows, cols],
        "add_shape": [grid.rows, grid.cols],
        "fresh_assignment_seconds": fresh_seconds,
    }
    out["cost_vs_rebuild"] = out["grid_cost_add"] / fresh_cost
    out["cell_cost_vs_rebuild"] = out["cell_cost_add"] / fresh_cells
    penalties = []
    for penalty in PENALTIES:
        old_cells, new_cells, r, c = insert_points(
            base.cells, old_xy, new_xy, base.rows, base.cols, move_penalty=penalty
        )
        before = np.stack([base.cells // base.cols, base.cells % base.cols], 1)
        after = np.stack([old_cells // c, old_cells % c], 1)
        cells = np.concatenate([old_cells, new_cells])
        shift = np.abs(before - after).max(axis=1)
        penalties.append(
            {
                "penalty": penalty,
                "moved_share": float((shift > 0).mean()),
                "moved_more_than_one_cell_share": float((shift > 1).mean()),
                "cost_vs_rebuild": grid_cost(frame, cells, r, c) / fresh_cost,
                "cell_cost_vs_rebuild": cells_cost(frame, cells, r, c) / fresh_cells,
            }
        )
    out["penalties"] = penalties
    return out


def cells_cost(points: np.ndarray, cells: np.ndarray, rows: int, cols: int) -> float:
    """Sum of squared distances, in cells, between points (in cell units) and the centres
    of their flat cells."""
    centres = cell_centres(cells, rows, cols) * [cols, rows]
    diff = np.asarray(points, np.float64) - centres
    return float(np.einsum("ij,ij->", diff, diff))


def detection(ws: Workspace, table: pa.Table, plants: list[tuple[int, int, str]]) -> dict:
    """How many planted copies the add flagged, and of the image they copy."""
    clean = ws.read_table("clean").to_pydict()
    verdict = {
        i: (s, r or "", d)
        for i, s, r, d in zip(
            clean["id"], clean["status"], clean["reason"], clean["duplicate_of"], strict=True
        )
    }
    ids = table["id"].to_pylist()
    out = {}
    for kind in ("exact", "near"):
        mine = [(at, src) for at, src, k in plants if k == kind]
        flagged = [
            (at, src)
            for at, src in mine
            if verdict[ids[at]][0] == "duplicate"
            or verdict[ids[at]][1].startswith("near_duplicate")
        ]
        out[kind] = {
            "planted": len(mine),
            "flagged": len(flagged),
            "of_the_source": sum(1 for at, src in flagged if verdict[ids[at]][2] == ids[src]),
        }
    return out


if __name__ == "__main__":
    main()
