import numpy as np
import pytest

from postermap.clustering import (
    describe_clusters,
    find_clusters,
    renumber_by_size,
    title_keywords,
)
from postermap.curation import apply_curation, read_curation
from postermap.errors import SettingsError


def test_renumber_by_size_keeps_noise():
    assert renumber_by_size(np.array([5, 5, -1, 2, 2, 2, 9])).tolist() == [1, 1, -1, 0, 0, 0, 2]


@pytest.mark.parametrize("method", ["dbscan", "hdbscan"])
def test_both_methods_find_separated_blobs(method):
    rng = np.random.default_rng(0)
    points = np.vstack([rng.normal(0, 0.2, (120, 2)), rng.normal(5, 0.2, (60, 2))])
    kwargs = {"eps": 1.0, "min_samples": 5, "min_cluster_size": 10, "selection": "eom"}
    labels = find_clusters(points, method, **kwargs)
    assert set(labels[:120]) == {0} and set(labels[120:]) == {1}
    again = find_clusters(points, method, **kwargs)
    assert np.array_equal(labels, again)


def test_semantic_trope_outranks_colour_only_group():
    rng = np.random.default_rng(1)
    n = 300
    features = rng.normal(size=(n, 32))
    colour = rng.dirichlet(np.ones(48), size=n)
    labels = np.full(n, -1)
    # cluster 0: same motif (features agree), every palette
    labels[:40] = 0
    features[:40] = features[0] + rng.normal(scale=0.3, size=(40, 32))
    # cluster 1: same palette, unrelated motifs
    labels[40:80] = 1
    colour[40:80] = colour[40] + rng.dirichlet(np.ones(48), size=40) * 0.05
    ranked = describe_clusters(labels, features, colour)
    assert [c.id for c in ranked] == [0, 1]
    assert ranked[0].cnn_cohesion > 0.5 and ranked[0].colour_cohesion < 0.2
    assert ranked[1].colour_cohesion > 0.5 and ranked[1].score < ranked[0].score


def test_title_keywords_are_distinctive_words():
    labels = np.array([0, 0, 0, 1, 1, 1] + [-1] * 6)
    titles = [
        "Fast Cars",
        "Cars at Night",
        "Racing Cars",
        "Lonely Horse",
        "Horse Ranch",
        "Night Horse",
        *("Night Train", "Blue Moon", "Lost River", "Cold Night", "Old Town", "Red Sky"),
    ]
    words = title_keywords(labels, titles, top=1)
    assert words == {0: ["cars"], 1: ["horse"]}
    # "night" is in a third of each cluster's titles and common elsewhere: no keyword
    assert title_keywords(labels, titles, top=3) == {0: ["cars"], 1: ["horse"]}


def test_curation_merge_drop_add_remove(tmp_path):
    path = tmp_path / "clusters.toml"
    path.write_text(
        "[clusters.1]\nmerge_into = 0\n[clusters.2]\ndrop = true\n"
        '[clusters.0]\nname = "Cars"\nremove = ["c"]\n[clusters.3]\nadd = ["a"]\n'
    )
    curation = read_curation(path)
    ids = ["a", "b", "c", "d", "e"]
    labels = np.array([0, 1, 0, 2, 3])
    assert apply_curation(labels, ids, curation).tolist() == [3, 0, -1, -1, 3]
    assert curation.names == {0: "Cars"}


def test_curation_errors_name_the_problem(tmp_path):
    path = tmp_path / "clusters.toml"
    path.write_text("[clusters.1]\nrename = 'x'\n")
    with pytest.raises(SettingsError, match="unknown key.*rename"):
        read_curation(path)
