import itertools

import numpy as np
import pytest

from postermap.grid import assign_to_grid, grid_cost, grid_shape, normalise_points
from postermap.grid.exact import assign_exact
from postermap.grid.flas import strip_layout


def clustered(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.uniform(0, 10, size=(12, 2))
    spread = rng.uniform(0.2, 1.2, size=(n, 1))
    return centres[rng.integers(0, 12, n)] + rng.normal(size=(n, 2)) * spread


@pytest.mark.parametrize("n, aspect", [(1, 1.0), (7, 1.0), (50, 2.0), (333, 0.5), (2500, 1.3)])
def test_output_is_a_valid_injection_with_holes_at_the_end(n, aspect):
    rng = np.random.default_rng(n)
    rows, cols = grid_shape(n, aspect)
    assert rows * cols >= n and (rows - 1) * cols < n
    cells = assign_to_grid(
        rng.normal(size=(n, 2)), rows, cols, exact_max=100, block_size=64, window=8
    )
    assert cells.dtype == np.int64
    assert sorted(cells.tolist()) == list(range(n))  # distinct, and holes only at the end


def test_exact_solver_matches_brute_force_on_tiny_cases():
    rng = np.random.default_rng(0)
    for _ in range(5):
        points = rng.random((6, 2))
        rows, cols = 2, 3
        cells = np.arange(6)
        best = min(
            itertools.permutations(range(6)),
            key=lambda perm: grid_cost(points, np.array(perm), rows, cols),
        )
        got = assign_exact(points, cells, rows, cols)
        assert grid_cost(points, got, rows, cols) == pytest.approx(
            grid_cost(points, np.array(best), rows, cols)
        )


def test_scalable_solver_is_close_to_exact_and_beats_strip_sort():
    xy = clustered(1500, seed=1)
    rows, cols = grid_shape(len(xy))
    exact = grid_cost(xy, assign_to_grid(xy, rows, cols, exact_max=10_000), rows, cols)
    blocks = grid_cost(
        xy, assign_to_grid(xy, rows, cols, exact_max=0, block_size=256, window=16), rows, cols
    )
    strips = grid_cost(xy, strip_layout(normalise_points(xy), rows, cols), rows, cols)
    assert blocks <= exact * 1.03
    assert blocks < strips * 0.8


def test_flas_method_is_valid_deterministic_and_beats_plain_flas():
    from postermap.grid.flas import flas_arrangement

    xy = clustered(3000, seed=4)
    rows, cols = grid_shape(len(xy))
    a = assign_to_grid(xy, rows, cols, method="flas", window=8, max_passes=2, seed=1)
    b = assign_to_grid(xy, rows, cols, method="flas", window=8, max_passes=2, seed=1)
    assert np.array_equal(a, b)
    assert sorted(a.tolist()) == list(range(len(xy)))
    plain = flas_arrangement(normalise_points(xy), rows, cols, seed=1)
    strips = strip_layout(normalise_points(xy), rows, cols)
    assert grid_cost(xy, a, rows, cols) < grid_cost(xy, plain, rows, cols)
    assert grid_cost(xy, a, rows, cols) < 0.8 * grid_cost(xy, strips, rows, cols)


def test_pair_swaps_fix_a_crossed_pair_and_never_raise_the_cost():
    from postermap.grid.swaps import refine_swaps, swap_offsets

    rows, cols = 3, 4
    cells = np.arange(10)  # two holes at the end of the last row
    points = np.stack([(cells % cols + 0.5) / cols, (cells // cols + 0.5) / rows], axis=1)
    crossed = cells.copy()
    crossed[[1, 6]] = crossed[[6, 1]]
    assert np.array_equal(refine_swaps(points, crossed, rows, cols, radius=2), cells)

    xy = clustered(2000, seed=3)
    rows, cols = grid_shape(len(xy), 1.4)
    start = strip_layout(normalise_points(xy), rows, cols)
    for radius in (2, 4):  # radius 1 cannot improve strips: rows and columns are sorted
        out = refine_swaps(normalise_points(xy), start, rows, cols, radius=radius)
        assert sorted(out.tolist()) == list(range(len(xy)))
        assert grid_cost(xy, out, rows, cols) < 0.9 * grid_cost(xy, start, rows, cols)
    assert len(swap_offsets(1)) == 2 and len(swap_offsets(2)) == 6


def test_parallel_workers_give_the_same_result():
    xy = clustered(6000, seed=5)
    rows, cols = grid_shape(len(xy))
    one = assign_to_grid(xy, rows, cols, method="blocks", block_size=256, window=16, max_passes=2)
    two = assign_to_grid(
        xy, rows, cols, method="blocks", block_size=256, window=16, max_passes=2, workers=2
    )
    assert np.array_equal(one, two)


def test_deterministic_for_a_seed():
    xy = clustered(3000, seed=2)
    xy[:100] = xy[0]  # ties
    rows, cols = grid_shape(len(xy))
    a = assign_to_grid(xy, rows, cols, exact_max=0, block_size=256, window=16, seed=7)
    b = assign_to_grid(xy, rows, cols, exact_max=0, block_size=256, window=16, seed=7)
    assert np.array_equal(a, b)


def test_bad_input_is_rejected():
    with pytest.raises(ValueError, match="cells for"):
        assign_to_grid(np.zeros((10, 2)), 3, 3)
    with pytest.raises(ValueError, match="NaN"):
        assign_to_grid(np.array([[0.0, np.nan], [1.0, 1.0]]), 1, 2)


def test_dpq_is_one_for_a_perfect_line_and_low_for_a_shuffle():
    from postermap.grid.quality import distance_preservation_quality

    values = np.arange(60, dtype=float)[:, None]
    in_order = np.arange(60)
    assert distance_preservation_quality(values, in_order, cols=60) == pytest.approx(1.0)
    shuffled = np.random.default_rng(0).permutation(60)
    assert distance_preservation_quality(values, shuffled, cols=60) < 0.5


def test_dpq_matches_the_reference_implementation():
    metrics = pytest.importorskip("vc_flas.metrics")
    from postermap.grid.quality import distance_preservation_quality

    rng = np.random.default_rng(1)
    rows, cols = 7, 9
    x = rng.random((rows * cols, 4))
    cells = rng.permutation(rows * cols)
    arranged = np.empty_like(x)
    arranged[cells] = x
    expected = metrics.distance_preservation_quality(arranged.reshape(rows, cols, 4), p=16)
    assert distance_preservation_quality(x, cells, cols) == pytest.approx(expected, rel=1e-6)


def test_seam_map_is_dark_where_nothing_moved():
    from postermap.grid.quality import seam_map

    rows, cols = 4, 5
    cells = np.arange(rows * cols)
    xy = np.stack([(cells % cols + 0.5) / cols, (cells // cols + 0.5) / rows], axis=1)
    xy[0] = [1.0, 1.0]  # one point dragged across the map
    image = np.asarray(seam_map(xy, cells, rows, cols))
    assert image.shape == (rows, cols, 3)
    assert image[0, 0].sum() > image[2, 2].sum()
