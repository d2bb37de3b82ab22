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
    index = build_index(vectors, shards=1)
    found = all_neighbours(index, vectors, 5)
    assert found.rows.shape == (600, 5) and found.rows.dtype == np.int32
    assert not (found.rows == np.arange(600)[:, None]).any()
    assert found.rows[10, 0] == 11 and found.rows[11, 0] == 10
    labels, distances = index.graphs[0].knn_query(vectors, k=6, num_threads=1)
    for i in (0, 10, 11, 599):
        others = [j for j in labels[i].tolist() if j != i][:5]
        assert found.rows[i].tolist() == others
        sims = [1 - d for j, d in zip(labels[i], distances[i], strict=True) if j != i][:5]
        assert np.allclose(found.scores[i], sims)
    assert (np.diff(found.scores, axis=1) <= 1e-6).all()  # best first


def _unit_rows(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_a_sharded_index_finds_the_exact_neighbours_the_same_way_every_time():
    from postermap.similarity import build_index

    vectors = _unit_rows(3000)
    index = build_index(vectors, seed=0, shards=2)
    assert len(index.graphs) == 2 and len(index) == 3000
    # labels are rows of the whole index: the second graph holds rows 1500..2999
    assert sorted(index.graphs[1].get_ids_list()) == list(range(1500, 3000))
    labels, sims = index.query(vectors[:400], 10)
    exact = np.argsort(-(vectors[:400] @ vectors.T), axis=1, kind="stable")[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(labels, exact, strict=True)])
    assert recall > 0.97, recall
    assert (labels[:, 0] == np.arange(400)).all()  # each row is its own nearest
    assert np.allclose(sims[:, 0], 1.0, atol=1e-5) and (np.diff(sims, axis=1) <= 1e-6).all()
    again, _ = build_index(vectors, seed=0, shards=2).query(vectors[:400], 10)
    assert np.array_equal(labels, again)  # built in two threads, still the same graphs


def test_ties_between_graphs_go_to_the_lower_row():
    from postermap.similarity import build_index

    vectors = _unit_rows(40)
    vectors[30] = vectors[5]  # a copy in the other graph: the same distance to any query
    labels, sims = build_index(vectors, shards=2).query(vectors[[5, 30]], 2)
    assert labels.tolist() == [[5, 30], [5, 30]] and np.allclose(sims, 1.0, atol=1e-5)


def test_a_saved_index_loads_back_and_grows_into_its_smaller_graph(tmp_path):
    from postermap.errors import StageOrderError
    from postermap.similarity import build_index, load_index

    vectors = _unit_rows(1001)
    index = build_index(vectors[:1000], shards=2)
    index.save(tmp_path / "index.json")
    loaded = load_index(tmp_path / "index.json")
    assert np.array_equal(loaded.query(vectors[:50], 5)[0], index.query(vectors[:50], 5)[0])
    loaded.add(vectors[1000:], np.array([1000]))
    assert [g.get_current_count() for g in loaded.graphs] == [500, 501]  # ties: the last
    labels, _ = loaded.query(vectors[1000:], 3)
    assert labels[0, 0] == 1000

    (tmp_path / "index-1.bin").write_bytes(b"not a graph")
    with pytest.raises(StageOrderError, match="index-1.bin: not readable"):
        load_index(tmp_path / "index.json")
    index.graphs[1].save_index(str(tmp_path / "index-1.bin"))
    loaded.save(tmp_path / "grown.json")  # lists 501 vectors in its second graph
    (tmp_path / "grown-1.bin").write_bytes((tmp_path / "index-1.bin").read_bytes())
    with pytest.raises(StageOrderError, match="500 vectors where grown.json says 501"):
        load_index(tmp_path / "grown.json")
