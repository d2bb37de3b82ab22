"""The sharded hnswlib index every neighbour search of the pipeline goes through."""

from __future__ import annotations

import json

import numpy as np

from postermap.knn import ShardedIndex


def _unit_rows(n: int, dim: int = 16, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_one_shard_is_the_one_thread_graph_built_before():
    import hnswlib

    vectors = _unit_rows(800)
    index = ShardedIndex.build(vectors, space="ip", links=16, ef_construction=200, ef=50, shards=1)
    old = hnswlib.Index(space="ip", dim=16)
    old.init_index(max_elements=800, ef_construction=200, M=16, random_seed=0)
    old.set_num_threads(1)
    old.add_items(vectors, np.arange(800))
    old.set_ef(50)
    labels, distances = old.knn_query(vectors, k=11, num_threads=2)
    found, sims = index.query(vectors, 11)
    assert np.array_equal(found, labels) and np.allclose(sims, 1 - distances)


def test_every_caller_gives_the_same_answers_on_every_run_and_close_to_one_graph():
    from postermap.cleaning import embedding_candidates
    from postermap.clustering import cell_graph, knn_graph

    vectors = _unit_rows(3000, dim=24)
    pairs = [embedding_candidates(vectors, np.arange(3000), 10, shards=s) for s in (2, 2, 1)]
    assert np.array_equal(pairs[0], pairs[1])
    one = {tuple(p) for p in pairs[2].tolist()}
    assert len(one & {tuple(p) for p in pairs[0].tolist()}) / len(one) > 0.95

    graphs = [knn_graph(vectors, 10, shards=s) for s in (2, 2, 1)]
    assert (graphs[0] != graphs[1]).nnz == 0
    assert abs((graphs[0] > 0).sum() - (graphs[2] > 0).sum()) / (graphs[2] > 0).sum() < 0.05

    cells = np.random.default_rng(3).normal(size=(1500, 4, 40)).astype(np.float16)
    made = [cell_graph(cells, None, 4, neighbours=10, shards=s) for s in (2, 2)]
    assert (made[0] != made[1]).nnz == 0 and made[0].nnz > 0


def test_an_index_saved_before_its_space_was_kept_loads_as_cosine(tmp_path):
    vectors = _unit_rows(300)
    index = ShardedIndex.build(vectors, links=8, ef_construction=40, ef=30, shards=2)
    index.save(tmp_path / "index.json")
    manifest = json.loads((tmp_path / "index.json").read_text())
    assert manifest["space"] == "cosine" and manifest["ef"] == 30
    del manifest["space"], manifest["ef"]  # the neighbours stage's manifest at version 3
    (tmp_path / "index.json").write_text(json.dumps(manifest))
    loaded = ShardedIndex.load(tmp_path / "index.json", "run it again")
    assert loaded.space == "cosine" and loaded.ef == 100
    assert np.array_equal(loaded.query(vectors[:20], 5)[0], index.query(vectors[:20], 5)[0])
