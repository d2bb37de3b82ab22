"""Grid assignment: quality against the exact solution, speed against FLAS and strip-sort.

    python -m benchmarks.grid                # the full table (exact 10k takes minutes)
    python -m benchmarks.grid --quick        # 2k/5k and 50k only

Ours runs with workers=2 (this machine's cores; only the exact block/window solves use
them); FLAS (vc-flas with its defaults, from the strip layout) is single-threaded. Above
10k ours is postermap.grid.large (two quick starts, pair swaps, the better one refined),
so "ours vs FLAS" is what that buys over FLAS alone and what it costs in time. The holes
table compares empty cells where they cost least with empty cells at the end of the last
row, same solver. Peak memory is
what tracemalloc sees in this process (numpy and Python allocations; a worker process's
own window is ~8 MB more). Cost = sum of squared distances between each point (min-max
normalised per axis) and its cell centre. Every ratio is against a baseline run in the
same process on the same points.
Writes benchmarks/results/grid.json.
"""

from __future__ import annotations

import argparse
import logging
import tracemalloc

import numpy as np

from benchmarks.common import (
    RESULTS,
    blob_layout,
    gaussian_mixture,
    timed,
    tsne_layout,
    write_result,
)
from postermap.grid import assign_to_grid, grid_cost, grid_shape, normalise_points
from postermap.grid.exact import assign_exact
from postermap.grid.flas import flas_arrangement, strip_layout
from postermap.grid.quality import distance_preservation_quality
from postermap.grid.swaps import refine_swaps

log = logging.getLogger("benchmarks.grid")


def measure(fn, *args, memory: bool = False, **kwargs) -> tuple[np.ndarray, float, float]:
    """(result, seconds, peak MB of Python-tracked memory incl. numpy arrays).

    Tracing memory slows allocation-heavy Python code several-fold, so the time comes from
    an untraced call and, with ``memory=True``, the peak from a second, traced call.
    """
    with timed() as t:
        result = fn(*args, **kwargs)
    peak = float("nan")
    if memory:
        tracemalloc.start()
        fn(*args, **kwargs)
        peak = tracemalloc.get_traced_memory()[1] / 1e6
        tracemalloc.stop()
    return result, t["seconds"], peak


def dpq_window(
    features: np.ndarray, cells: np.ndarray, rows: int, cols: int, side: int = 40
) -> float:
    """DPQ_16 on the central side x side window of the grid (DPQ is O(N^2))."""
    r, c = cells // cols, cells % cols
    r0, c0 = (rows - side) // 2, (cols - side) // 2
    inside = (r >= r0) & (r < r0 + side) & (c >= c0) & (c < c0 + side)
    local = (r[inside] - r0) * side + (c[inside] - c0)
    return distance_preservation_quality(features[inside], local, side)


def quality_rows(sets: list[tuple[str, np.ndarray, np.ndarray | None]]) -> list[dict]:
    out = []
    for name, xy, features in sets:
        rows, cols = grid_shape(len(xy))
        # the optimum: every cell a candidate, so the empty ones go where they cost least
        exact, t_exact, _ = measure(
            assign_exact, normalise_points(xy), np.arange(rows * cols), rows, cols
        )
        ours, t_ours, _ = measure(assign_to_grid, xy, rows, cols, exact_max=0, workers=2)
        strips = strip_layout(normalise_points(xy), rows, cols)
        large, t_large, _ = measure(assign_to_grid, xy, rows, cols, method="large")
        c_exact = grid_cost(xy, exact, rows, cols)
        row = {
            "set": name,
            "n": len(xy),
            "exact_s": t_exact,
            "ours_s": t_ours,
            "ours_vs_exact": grid_cost(xy, ours, rows, cols) / c_exact,
            "large_s": t_large,
            "large_vs_exact": grid_cost(xy, large, rows, cols) / c_exact,
            "strip_vs_exact": grid_cost(xy, strips, rows, cols) / c_exact,
        }
        if features is not None:
            row["dpq16_ours"] = dpq_window(features, ours, rows, cols)
            row["dpq16_exact"] = dpq_window(features, exact, rows, cols)
            row["dpq16_strip"] = dpq_window(features, strips, rows, cols)
        print(
            " ".join(
                f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in row.items()
            ),
            flush=True,
        )
        out.append(row)
    return out


def holes_rows(sets: list[tuple[str, np.ndarray]]) -> list[dict]:
    """Empty cells where they cost least vs at the end of the last row, same solver."""
    out = []
    for name, xy, rows, cols in sets:
        anywhere, t_any, _ = measure(assign_to_grid, xy, rows, cols, workers=2)
        at_end, t_end, _ = measure(assign_to_grid, xy, rows, cols, workers=2, holes_anywhere=False)
        row = {
            "set": name,
            "n": len(xy),
            "grid": f"{rows}x{cols}",
            "holes": rows * cols - len(xy),
            "anywhere_s": t_any,
            "at_end_s": t_end,
            "at_end_vs_anywhere": grid_cost(xy, at_end, rows, cols)
            / grid_cost(xy, anywhere, rows, cols),
        }
        print(
            " ".join(
                f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in row.items()
            ),
            flush=True,
        )
        out.append(row)
    return out


def scale_rows(sets: list[tuple[str, np.ndarray]]) -> list[dict]:
    out = []
    for name, xy in sets:
        rows, cols = grid_shape(len(xy))
        ours, t_ours, mem_ours = measure(assign_to_grid, xy, rows, cols, workers=2, memory=True)
        strips, t_strip, _ = measure(strip_layout, normalise_points(xy), rows, cols)
        c_ours = grid_cost(xy, ours, rows, cols)
        row = {
            "set": name,
            "n": len(xy),
            "ours_s": t_ours,
            "ours_peak_mb": mem_ours,
            "strip_s": t_strip,
            "strip_vs_ours": grid_cost(xy, strips, rows, cols) / c_ours,
        }
        flas, t_flas, mem_flas = measure(
            flas_arrangement, normalise_points(xy), rows, cols, memory=True
        )
        row.update(
            flas_s=t_flas,
            flas_peak_mb=mem_flas,
            flas_vs_ours=grid_cost(xy, flas, rows, cols) / c_ours,
            ours_time_vs_flas=t_ours / t_flas,
        )
        print(
            " ".join(
                f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}" for k, v in row.items()
            ),
            flush=True,
        )
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sets only")
    parser.add_argument("--million", action="store_true", help="also run 1M points")
    parser.add_argument("--scale-only", action="store_true", help="skip the exact solves")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with timed() as t:  # numba compiles (or loads from its disk cache) the swap sweep once
        refine_swaps(np.random.default_rng(0).random((4, 2)), np.arange(4), 2, 2)
    print(f"swap refinement compile/load: {t['seconds']:.2f} s")
    sizes = [2000, 5000] if args.quick else [2000, 5000, 10_000]
    sets = [(f"tsne-{n}", tsne_layout(n), gaussian_mixture(n)) for n in sizes]
    if not args.quick:
        sets.append(("uniform-10000", np.random.default_rng(1).random((10_000, 2)), None))
        sets += [(f"blobs-10000-s{s}", blob_layout(10_000, seed=s), None) for s in (0, 1)]
    results = {"quality": [] if args.scale_only else quality_rows(sets)}
    results["holes"] = holes_rows(
        [
            ("tsne-1797", tsne_layout(2000)[:1797], 42, 43),
            ("tsne-50000", tsne_layout(50_000), *_with_holes(50_000)),
        ]
    )
    big = [("tsne-50000", tsne_layout(50_000))]
    if not args.quick:
        big.append(("tsne-169000", tsne_layout(169_000)))
        big.append(("blobs-169000", blob_layout(169_000)))
    if args.million:
        big.append(("blobs-1000000", blob_layout(1_000_000)))
    results["scale"] = scale_rows(big)
    RESULTS.mkdir(exist_ok=True)
    name = (
        "grid-quick.json" if args.quick else "grid-scale.json" if args.scale_only else "grid.json"
    )
    write_result(name, results)


def _with_holes(n: int) -> tuple[int, int]:
    """A landscape grid for n points with most of a row left empty."""
    cols = int(np.sqrt(n * 1.6)) + 1
    return -(-n // cols), cols


if __name__ == "__main__":
    main()
