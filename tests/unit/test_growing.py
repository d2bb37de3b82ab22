"""The pieces of `postermap add`: appending embeddings in place, inserting points into a
grid, placing new points and voting their clusters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from postermap.grid import assign_to_grid, grid_cost
from postermap.grid.insert import cell_units, grown_shape, insert_points
from postermap.growing import _insert_neighbour, place_by_neighbours, vote_clusters
from postermap.workspace import Workspace, _append_rows


def _embeddings(tmp_path, n: int) -> Workspace:
    ws = Workspace(tmp_path / "ws").create()
    ws.embed_dir.mkdir()
    np.save(ws.embeddings_path, np.arange(n * 4, dtype=np.float32).reshape(n, 4))
    np.save(ws.extra_features_path("rmac"), np.ones((n, 2, 3), np.float16))
    np.save(ws.embedding_ids_path, np.array([f"h{i}" for i in range(n)]))
    return ws


def test_append_embeddings_keeps_old_rows_and_survives_a_torn_append(tmp_path):
    ws = _embeddings(tmp_path, 5)
    part = tmp_path / "part.npy"
    np.save(part, np.full((99_996, 4), 7, np.float32))  # the row count gains a digit
    extra = tmp_path / "part.rmac.npy"
    np.save(extra, np.zeros((99_996, 2, 3), np.float16))
    # a killed append: rows and header written, ids not
    _append_rows(ws.embeddings_path, 5, [part])
    ws.append_embeddings([f"n{i}" for i in range(99_996)], [part], {"rmac": [extra]})
    got = ws.read_embeddings()
    assert got.vectors.shape == (100_001, 4) and len(got.ids) == 100_001
    assert np.array_equal(got.vectors[:5], np.arange(20, dtype=np.float32).reshape(5, 4))
    assert (got.vectors[5:] == 7).all() and got.ids[5] == "n0"
    rmac = ws.read_extra_features("rmac")
    assert rmac.shape == (100_001, 2, 3) and (rmac[:5] == 1).all() and (rmac[5:] == 0).all()


def _clustered_grid(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    xy = rng.normal(size=(n, 2))
    rows, cols = 10, n // 10
    cells = assign_to_grid(xy, rows, cols, seed=seed)
    lo, hi = xy.min(axis=0), xy.max(axis=0)
    return xy, cells, rows, cols, lambda p: cell_units((p - lo) / (hi - lo), rows, cols)


def test_insert_points_with_a_high_penalty_moves_no_old_point():
    xy, cells, rows, cols, units = _clustered_grid(200)
    new = np.random.default_rng(1).normal(size=(15, 2))
    old_cells, new_cells, r, c = insert_points(
        cells, units(xy), units(new), rows, cols, move_penalty=1e6
    )
    assert (r, c) == grown_shape(rows, cols, 215, cols / rows) and r * c >= 215
    before = np.stack([cells // cols, cells % cols], 1)
    after = np.stack([old_cells // c, old_cells % c], 1)
    assert (before == after).all()
    assert len(set(np.concatenate([old_cells, new_cells]).tolist())) == 215


def test_insert_points_with_no_penalty_gives_a_cheaper_grid():
    xy, cells, rows, cols, units = _clustered_grid(200)
    new = np.random.default_rng(2).normal(size=(20, 2))
    everything = np.concatenate([xy, new])
    costs = {}
    for penalty in (0.0, 1e6):
        old_cells, new_cells, r, c = insert_points(
            cells, units(xy), units(new), rows, cols, move_penalty=penalty
        )
        costs[penalty] = grid_cost(everything, np.concatenate([old_cells, new_cells]), r, c)
    assert costs[0.0] <= costs[1e6]


def test_placement_follows_the_closest_look_alike():
    xy = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    labels = np.array([[1, 0, 2]])
    placed = place_by_neighbours(xy, labels, np.array([[0.95, 0.80, 0.70]], np.float32))
    assert np.linalg.norm(placed[0] - xy[1]) < 0.1
    even = place_by_neighbours(xy, labels, np.array([[0.9, 0.9, 0.9]], np.float32))
    assert np.allclose(even[0], xy.mean(axis=0), atol=1e-5)


def test_tsne_placement_moves_new_points_onto_their_neighbours():
    """New points whose nearest map images are one group's core, started beside it (as a
    weighted mean of a slightly mixed neighbourhood puts them), end on that core; the
    map does not move and the result is the same twice."""
    from postermap.layout import tsne_place

    rng = np.random.default_rng(0)
    left = rng.normal((-30, 0), 2, (200, 2))
    reference = np.concatenate([left, rng.normal((30, 0), 2, (200, 2))])
    kept = reference.copy()
    core = np.argsort(np.linalg.norm(left - (-30, 0), axis=1))[:25]
    neighbours = np.stack([core, core])
    distances = np.tile(np.linspace(0.1, 0.5, 25), (2, 1))
    start = np.array([[-25.0, 0.0], [-33.0, 4.0]])  # both 5 from the core's centre
    placed = tsne_place(reference, start, neighbours, distances)
    assert (np.linalg.norm(placed - (-30, 0), axis=1) < 2).all(), placed
    np.testing.assert_array_equal(reference, kept)
    np.testing.assert_array_equal(tsne_place(reference, start, neighbours, distances), placed)
    # a point whose distances are not finite stays where it started, the others move
    broken = distances.copy()
    broken[1, 3] = np.nan
    again = tsne_place(reference, start, neighbours, broken)
    np.testing.assert_array_equal(again[1], start[1])
    assert np.linalg.norm(again[0] - (-30, 0)) < 2


def test_vote_clusters_needs_a_floor_of_votes():
    votes = np.array([[3, 3, 3, 3, 1, 1, -1, -1, 2, 2], [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]])
    assert vote_clusters(votes) == [3, -1]


@pytest.mark.parametrize(
    ("rows", "scores", "score", "expected"),
    [
        ([4, 5, 6], [0.9, 0.8, 0.7], 0.85, [4, 9, 5]),
        ([4, 5, 6], [0.9, 0.8, 0.7], 0.95, [9, 4, 5]),
        ([4, -1, -1], [0.9, 0.0, 0.0], 0.5, [4, 9, -1]),
    ],
)
def test_a_new_neighbour_goes_in_its_place(rows, scores, score, expected):
    rows, scores = np.array(rows, np.int32), np.array(scores, np.float32)
    _insert_neighbour(rows, scores, 9, score)
    assert rows.tolist() == expected
    assert (np.diff(scores[rows >= 0]) <= 0).all()


def _tiles(root):
    return {p.relative_to(root): p for p in root.rglob("*.jpg")}


def _pixels(path):
    import pyvips

    image = pyvips.Image.new_from_file(str(path))
    return np.ndarray(
        buffer=image.write_to_memory(), dtype=np.uint8, shape=(image.height, image.width, 3)
    )


# PNG squares in square cells, and 2:3 JPEGs, whose cells are crops of a scaled decode
@pytest.mark.parametrize(
    ("suffix", "thumb", "cell"), [("png", (64, 64), (64, 64)), ("jpg", (86, 128), (64, 96))]
)
def test_a_partial_pyramid_update_matches_a_full_render(tmp_path, suffix, thumb, cell):
    from postermap.mosaic import pyramid_levels, render_pyramid, update_pyramid
    from postermap.runner import make_runner
    from tests.conftest import draw_image

    thumbs = [
        str(draw_image(tmp_path / "t" / f"{i}.{suffix}", seed=i, size=thumb)) for i in range(40)
    ]
    before = [[thumbs[r * 9 + c] if r * 9 + c < 36 else None for c in range(9)] for r in range(5)]
    after = [row[:] for row in before]
    after[0][0], after[4][8], after[4][0] = thumbs[38], thumbs[39], None  # new, new, emptied
    after = [*after, [thumbs[36], None, None, None, None, None, None, None, None]]  # grown
    changed = {(0, 0), (4, 8), (4, 0), (5, 0)}
    args = (cell, "#202124", 90)
    with make_runner(None, 1) as runner:
        render_pyramid(before, *args, tmp_path / "old", runner)
        levels, _ = render_pyramid(after, *args, tmp_path / "full", runner)
    assert levels == pyramid_levels(9 * cell[0], 6 * cell[1]) == 3
    with make_runner(None, 2, mp_context="spawn") as runner:  # tile rows in two processes
        got = update_pyramid(after, *args, tmp_path / "part", tmp_path / "old", changed, runner)
    assert got is not None and got[0] == levels and not got[1]
    full, part, old = _tiles(tmp_path / "full"), _tiles(tmp_path / "part"), _tiles(tmp_path / "old")
    assert set(part) == set(full)
    assert 0 < got[2] < len(full)  # only the changed tiles and their parents were drawn
    for name, path in part.items():
        diff = np.abs(_pixels(path).astype(int) - _pixels(full[name]).astype(int))
        assert diff.mean() < 4, name
    untouched = part[Path("2/0/1.jpg")]
    assert untouched.stat().st_ino == old[Path("2/0/1.jpg")].stat().st_ino  # reused, linked
    # most tiles changed: drawing them one by one would be slower than a whole render
    everything = {(r, c) for r in range(6) for c in range(9)}
    assert update_pyramid(after, *args, tmp_path / "most", tmp_path / "old", everything) is None
    assert not (tmp_path / "most").exists()
