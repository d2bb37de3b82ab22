"""Louvain trope finding, regional max pooling and distinctive names on synthetic inputs."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from postermap.clustering import (
    distinctive_classes,
    find_clusters,
    imagenet_concepts,
    louvain_clusters,
    whiten,
)
from postermap.clustering.names import clean_class_name
from postermap.embedders.pooling import gem, max_pool, region_boxes, rmac


def _planted(seed: int = 0, groups: int = 6, size: int = 20, background: int = 300):
    """32-d points: ``groups`` groups of ``size`` around random centres (each member also
    carries a random part of its own, like a poster's other content) and background points
    in look-alike pairs and triples (posters sharing a photo or a palette, too few for a
    trope); truth -1 for the background."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(groups, 32))
    members = [c + rng.normal(scale=0.6, size=(size, 32)) for c in centres]
    small = rng.normal(size=(background // 2, 32))
    owner = rng.integers(0, len(small), background)
    noise = small[owner] + rng.normal(scale=0.6, size=(background, 32))
    points = np.vstack([*members, noise])
    truth = np.concatenate([np.repeat(np.arange(groups), size), np.full(background, -1)])
    return points.astype(np.float32), truth


def _best_match(labels: np.ndarray, truth: np.ndarray) -> list[tuple[float, float]]:
    """(recall, purity) of the cluster holding most of each planted group."""
    out = []
    for g in sorted(set(truth.tolist()) - {-1}):
        found = Counter(labels[(truth == g) & (labels >= 0)].tolist())
        if not found:
            out.append((0.0, 0.0))
            continue
        best, n = found.most_common(1)[0]
        out.append((n / (truth == g).sum(), n / (labels == best).sum()))
    return out


def test_louvain_finds_planted_groups_and_leaves_the_background_out():
    points, truth = _planted()
    labels = louvain_clusters(points, neighbours=20, density=0.06, min_cluster_size=10)
    for recall, purity in _best_match(labels, truth):
        assert recall >= 0.9 and purity >= 0.6, (recall, purity)
    # no two planted groups share a cluster
    best = [Counter(labels[truth == g].tolist()).most_common(1)[0][0] for g in range(6)]
    assert len(set(best)) == 6 and -1 not in best
    # reproducible, and numbered by size
    again = find_clusters(points, "louvain", neighbours=20, density=0.06, min_cluster_size=10)
    assert np.array_equal(labels, again)
    sizes = np.bincount(labels[labels >= 0])
    assert (np.diff(sizes) <= 0).all()


def test_louvain_density_means_the_same_at_any_size():
    """The Potts resolution is scaled by the graph's size: the planted groups come out
    alike when the background grows tenfold (modularity would merge them)."""
    small, truth_small = _planted(background=300)
    large, truth_large = _planted(background=3000)
    for points, truth in ((small, truth_small), (large, truth_large)):
        labels = louvain_clusters(points, neighbours=20, density=0.06, min_cluster_size=10)
        assert min(r for r, _ in _best_match(labels, truth)) >= 0.9
        assert min(p for _, p in _best_match(labels, truth)) >= 0.6


def test_louvain_on_tiny_inputs_gives_noise_not_errors():
    assert louvain_clusters(np.zeros((0, 4))).tolist() == []
    assert louvain_clusters(np.ones((5, 4)), min_cluster_size=10).tolist() == [-1] * 5
    same = louvain_clusters(np.ones((30, 4)), neighbours=5, min_cluster_size=10)
    assert len(same) == 30


def test_whiten_gives_every_axis_unit_variance():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(500, 4)) * np.array([10.0, 1.0, 0.1, 0.01])
    assert np.allclose(whiten(x).std(axis=0), 1.0, atol=1e-4)


def test_rmac_regions_cover_the_map_at_three_scales():
    boxes = region_boxes(7)
    assert len(boxes) == 1 + 4 + 9
    assert boxes[0] == (0, 0, 7)
    covered = np.zeros((7, 7), bool)
    for top, left, width in boxes[1:5]:
        assert width == 5
        covered[top : top + width, left : left + width] = True
    assert covered.all()


def test_rmac_keeps_a_small_motif_that_the_average_dilutes():
    """Two maps share a small strong motif (channels 0-7, one cell) at different places on
    backgrounds of different channels: their R-MAC vectors agree far more than their
    average pools, which the backgrounds dominate."""
    rng = np.random.default_rng(0)
    maps = np.zeros((2, 64, 7, 7), np.float32)
    maps[0, 8:36] = rng.uniform(0, 1, size=(28, 7, 7))
    maps[1, 36:64] = rng.uniform(0, 1, size=(28, 7, 7))
    maps[0, :8, 1, 1] = 6.0
    maps[1, :8, 5, 4] = 6.0

    def cos(v):
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        return float(v[0] @ v[1])

    assert cos(rmac(maps)) > cos(maps.mean(axis=(2, 3))) + 0.1
    assert gem(maps).shape == max_pool(maps).shape == (2, 64)
    assert np.allclose(max_pool(maps)[:, :8], 6.0)


def test_class_names_are_names_not_glosses():
    names, of_class = imagenet_concepts()
    assert len(of_class) == 1000 and of_class.max() == len(names) - 1
    for name in names:  # a name, not a WordNet gloss or a qualified entry
        assert name and not any(c in name for c in ",()/;"), name
        assert len(name.split()) <= 5 and name.split()[0] not in ("a", "an", "the"), name
    assert names[of_class[282]] == "tiger cat"
    assert clean_class_name(548, "entertainment center (furniture)") == "entertainment center"
    assert clean_class_name(789, "shoji screen / room divider") == "shoji screen"
    # classes sharing a name are one concept
    assert of_class[836] == of_class[837] and names[of_class[836]] == "sunglasses"


def _fake_probabilities(n: int, boosted: dict[int, np.ndarray], seed: int = 0) -> np.ndarray:
    """Class probabilities (n, 1000): "website" (916) high for every image, a little noise,
    and per class index the rows where that class is strong."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(1000) * 0.5, size=n) * 0.3
    p[:, 916] += 0.5
    for cls, rows in boosted.items():
        p[rows, cls] += 0.4
    return p / p.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1])
def test_names_are_what_is_distinctive_not_what_every_image_is(seed):
    n = 400
    labels = np.full(n, -1)
    labels[:30] = 0  # lions
    labels[30:60] = 1  # sports cars
    labels[60:90] = 2  # nothing in particular
    lion, car = 291, 817
    probs = _fake_probabilities(n, {lion: np.arange(25), car: np.arange(30, 58)}, seed)
    # the features *are* the probabilities here; classify passes them through
    names = distinctive_classes(labels, probs, lambda rows: rows)
    concepts, of_class = imagenet_concepts()
    assert names[0][0] == concepts[of_class[lion]] == "lion"
    assert names[1][0] == "sports car"
    assert 2 not in names  # no class stands out: no class name
    assert all("website" not in v for v in names.values())


def test_cell_graph_links_images_that_share_one_small_motif():
    """15 of 200 images share one cell (a small motif) among 8 unrelated ones, at any
    position: their strongest links are to each other, and Louvain on the cell graph puts
    them in one cluster."""
    from postermap.clustering import cell_graph

    rng = np.random.default_rng(0)
    cells = rng.normal(size=(200, 8, 48)).astype(np.float32)
    motif = rng.normal(size=48).astype(np.float32) * 2
    sharing = np.arange(15)
    for i in sharing:
        cells[i, rng.integers(0, 8)] = motif + rng.normal(scale=0.2, size=48)
    graph = cell_graph(cells, None, 8, neighbours=10)
    assert graph.shape == (200, 200) and (graph != graph.T).nnz == 0
    dense = graph.toarray()
    for i in sharing:
        top = np.argsort(-dense[i])[:10]
        assert np.isin(top, sharing).mean() >= 0.9
    labels = find_clusters(
        rng.normal(size=(200, 8)), "louvain", neighbours=10, extra_graph=graph, density=0.06
    )
    best = Counter(labels[sharing].tolist()).most_common(1)[0]
    assert best[0] >= 0 and best[1] >= 13
    # rows select and order the images
    sub = cell_graph(cells, np.arange(100)[::-1], 8, neighbours=10)
    assert sub.shape == (100, 100)


def test_a_group_larger_than_the_density_allows_is_not_torn_apart():
    """Three groups of 400 look-alikes (20 links each cannot give 400 members 0.06 of link
    weight per pair): Louvain returns pieces, which are joined back into one cluster per
    group instead of being pruned as noise."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 32)) * 4
    truth = np.repeat(np.arange(3), 400)
    points = (centres[truth] + rng.normal(size=(1200, 32))).astype(np.float32)
    labels = louvain_clusters(points, neighbours=20, density=0.06, min_cluster_size=10)
    found = _best_match(labels, truth)
    # without the join each group's largest piece holds 16-26% of it
    assert all(recall >= 0.5 and purity >= 0.95 for recall, purity in found), found
    assert np.mean([recall for recall, _ in found]) >= 0.65, found


def _link_graph(rng, n: int, plan: list[tuple[np.ndarray, list[tuple[np.ndarray, int]]]]):
    """Symmetrised graph of unit links: for each (nodes, [(pool, count), ...]) of ``plan``,
    every node links to ``count`` random other nodes of each ``pool``."""
    from scipy import sparse

    rows, cols = [], []
    for nodes, pools in plan:
        for i in nodes:
            for pool, count in pools:
                picked = rng.choice(pool[pool != i], count, replace=False)
                rows += [i] * count
                cols += picked.tolist()
    graph = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    return ((graph + graph.T) * 0.5).tocsr()


def test_pieces_are_joined_only_when_they_link_more_than_chance():
    """A trope of 15 among 105 images with 20 links each must send a quarter of its links
    elsewhere: no more than chance gives, so it is not joined to the unrelated images
    around it (the share of links alone would join it). Two pieces of one group among
    2,000 images, linked to each other as much, are joined."""
    from postermap.clustering.find import merge_fragments

    rng = np.random.default_rng(0)
    trope, rest = np.arange(15), np.arange(15, 105)
    everything = np.arange(105)
    graph = _link_graph(rng, 105, [(trope, [(trope, 14), (rest, 6)]), (rest, [(everything, 20)])])
    labels = np.repeat([0, 1, 2], [15, 45, 45])
    assert len(set(merge_fragments(labels, graph).tolist())) == 3
    assert len(set(merge_fragments(labels, graph, lift=0.0).tolist())) < 3

    a, b, rest = np.arange(40), np.arange(40, 80), np.arange(80, 2000)
    graph = _link_graph(
        rng, 2000, [(a, [(a, 14), (b, 6)]), (b, [(b, 14), (a, 6)]), (rest, [(rest, 20)])]
    )
    joined = merge_fragments(np.repeat([0, 1, 2], [40, 40, 1920]), graph)
    assert joined[0] == joined[40] != joined[100]
