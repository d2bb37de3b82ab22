import numpy as np

from postermap.outlines import cluster_outlines, region_rings


def _area(ring):
    return 0.5 * sum(
        a[1] * b[0] - b[1] * a[0] for a, b in zip(ring, ring[1:] + ring[:1], strict=True)
    )


def test_single_cell_is_a_square():
    mask = np.zeros((3, 3), bool)
    mask[1, 1] = True
    (ring,) = region_rings(mask)
    assert sorted(ring) == [(1, 1), (1, 2), (2, 1), (2, 2)]


def test_l_shape_has_six_corners_and_right_area():
    mask = np.array([[1, 0], [1, 1]], bool)
    (ring,) = region_rings(mask)
    assert len(ring) == 6
    assert abs(_area(ring)) == 3


def test_separate_regions_and_holes_give_several_rings():
    mask = np.ones((5, 5), bool)
    mask[2, 2] = False  # a hole
    mask[:, 4] = False
    mask[0, 4] = True  # touches the main region only at a corner? no: shares an edge
    rings = region_rings(mask)
    areas = sorted(abs(_area(r)) for r in rings)
    assert areas == [1, 21]  # outer boundary (20 cells + 1 extra) and the hole


def test_cluster_outlines_skip_noise():
    labels = np.array([[0, 0, -1], [1, -1, -1]])
    out = cluster_outlines(labels)
    assert set(out) == {0, 1}
