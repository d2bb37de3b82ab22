import numpy as np
import pytest

from postermap.clustering import describe_clusters
from postermap.vectors import Projection, group_sums, normalise, row_chunks


@pytest.fixture
def embeddings(tmp_path):
    """A memory-mapped N x D float32 file, like embed/embeddings.npy."""
    data = np.random.default_rng(0).normal(size=(500, 24)).astype(np.float32)
    np.save(tmp_path / "e.npy", data)
    return np.load(tmp_path / "e.npy", mmap_mode="r")


def test_row_chunks_follow_the_callers_order(embeddings):
    rows = np.random.default_rng(1).permutation(500)[:300]
    got = np.concatenate([part for _, part in row_chunks(embeddings, rows, chunk=64)])
    assert np.allclose(got, normalise(embeddings[rows]))
    raw = np.concatenate([part for _, part in row_chunks(embeddings, rows, unit=False, chunk=64)])
    assert np.array_equal(raw, embeddings[rows])


def test_chunked_projection_equals_one_pass_and_keeps_neighbours(embeddings):
    rows = np.arange(0, 500, 2)
    projection = Projection.fit(embeddings, rows, 8, seed=0)
    chunked = projection.transform(embeddings, rows)
    assert chunked.shape == (250, 8)
    assert np.allclose(chunked, projection(embeddings[rows]), atol=1e-6)
    assert np.allclose(np.linalg.norm(chunked, axis=1), 1.0, atol=1e-5)
    plain = Projection.fit(embeddings, None, 8, seed=0, renormalise=False)
    assert not np.allclose(np.linalg.norm(plain.transform(embeddings), axis=1), 1.0)


def test_projection_from_a_sample_is_close_to_the_full_fit():
    rng = np.random.default_rng(5)  # four strong directions plus noise, like CNN features
    data = (rng.normal(size=(2000, 4)) * [6, 5, 4, 3]) @ rng.normal(size=(4, 24)) + rng.normal(
        size=(2000, 24)
    ) * 0.3
    full = Projection.fit(data, None, 4, seed=0, sample=10_000)
    sampled = Projection.fit(data, None, 4, seed=0, sample=300)
    # the same principal subspace, up to sign and noise
    overlap = np.abs(full.components @ sampled.components.T)
    assert (overlap.max(axis=1) > 0.9).all()


def test_group_sums_and_cohesion_from_sums(embeddings):
    labels = np.random.default_rng(2).integers(-1, 5, size=500)
    sums = group_sums(embeddings, None, labels, 5)
    unit = normalise(np.asarray(embeddings))
    for k in range(5):
        assert np.allclose(sums[k], unit[labels == k].sum(axis=0), atol=1e-4)
    colour = np.random.default_rng(3).dirichlet(np.ones(48), size=500)
    rows = np.random.default_rng(4).permutation(500)
    in_memory = describe_clusters(labels, np.asarray(embeddings)[rows], colour)
    mapped = describe_clusters(labels, embeddings, colour, rows=rows)
    assert [(c.id, c.size) for c in in_memory] == [(c.id, c.size) for c in mapped]
    assert [c.cnn_cohesion for c in in_memory] == pytest.approx(
        [c.cnn_cohesion for c in mapped], abs=1e-3
    )


def test_all_neighbours_leave_each_row_out_and_agree_with_one_thread():
    from postermap.similarity import all_neighbours, build_index

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(600, 16)).astype(np.float32)
    vectors[11] = vectors[10]  # an exact copy may tie with the row itself
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    index = build_index(vectors)
    found = all_neighbours(index, vectors, 5)
    assert found.rows.shape == (600, 5) and found.rows.dtype == np.int32
    assert not (found.rows == np.arange(600)[:, None]).any()
    assert found.rows[10, 0] == 11 and found.rows[11, 0] == 10
    labels, distances = index.knn_query(vectors, k=6, num_threads=1)
    for i in (0, 10, 11, 599):
        others = [j for j in labels[i].tolist() if j != i][:5]
        assert found.rows[i].tolist() == others
        sims = [1 - d for j, d in zip(labels[i], distances[i], strict=True) if j != i][:5]
        assert np.allclose(found.scores[i], sims)
    assert (np.diff(found.scores, axis=1) <= 1e-6).all()  # best first
