"""``embedding.embed_shards``: shards cut into tasks and joined again give what one task
per shard gives, failures at their own positions, each shard saved whole."""

from __future__ import annotations

import numpy as np
import pytest

from postermap import embedding
from postermap.embedding import embed_shards, read_failures
from postermap.runner import LocalRunner

pytestmark = pytest.mark.integration


def _shards(emoji_images, tmp_path):
    pictures = sorted(emoji_images.glob("*.png"))[:11]
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 not a jpeg")
    first = [*pictures[:5], broken, pictures[5]]  # the unreadable one at position 5
    second = pictures[6:11]
    return [(first, tmp_path / "a" / "00000-x.npy"), (second, tmp_path / "a" / "00001-y.npy")]


def test_pieces_join_into_the_shards_one_task_each_would_give(emoji_images, tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    shards = _shards(emoji_images, tmp_path)
    # whole shards, one task each, in this process
    whole = [embedding.embed_shard("efficientnet-lite0", paths, 4) for paths, _ in shards]
    monkeypatch.setattr(embedding, "LOCAL_PIECE", 3)  # 7 + 5 images: tasks of 3, 3, 1, 3, 2
    seen: list[int] = []
    with LocalRunner(2) as runner:
        embed_shards(shards, "efficientnet-lite0", "fp32", 4, runner, seen.append)
    assert seen == [3, 3, 1, 3, 2]
    for (paths, path), (features, extras, failures) in zip(shards, whole, strict=True):
        saved = np.load(path)
        assert saved.shape == (len(paths), 1280)
        np.testing.assert_array_equal(saved, features)  # one thread in every process
        for name, rows in extras.items():
            np.testing.assert_array_equal(np.load(embedding.extra_path(path, name)), rows)
        assert read_failures(path) == failures
    assert set(read_failures(shards[0][1])) == {5}
    assert "thumbnail unreadable" in read_failures(shards[0][1])[5]
    assert not read_failures(shards[1][1])
    assert not np.any(np.load(shards[0][1])[5])  # zeros stand in for the failed image
