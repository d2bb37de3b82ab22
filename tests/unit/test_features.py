"""Your own vectors (--features): reading Parquet and .npy + ids, the clear errors, matching."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from postermap.errors import FeaturesError, PostermapError
from postermap.features import (
    features_fingerprint,
    match_features,
    missing_reason,
    read_features,
)


def _parquet(path: Path, columns: dict) -> Path:
    pq.write_table(pa.table(columns), path)
    return path


def _rows() -> list[dict]:
    """Ingest rows: three distinct images, a byte copy of the first, a corrupt file."""
    return [
        {"id": "h1", "path": "a.png", "status": "ok", "content_hash": "h1"},
        {"id": "h2", "path": "sub/b.png", "status": "ok", "content_hash": "h2"},
        {"id": "h3", "path": "c.png", "status": "ok", "content_hash": "h3"},
        {"id": "h1-x", "path": "z-copy.png", "status": "ok", "content_hash": "h1"},
        {"id": "bad", "path": "broken.jpg", "status": "corrupt", "content_hash": None},
    ]


def test_parquet_with_filenames_and_a_list_column(tmp_path):
    vectors = np.arange(12, dtype=np.float64).reshape(3, 4)
    path = _parquet(
        tmp_path / "v.parquet",
        {"filename": ["a.png", "./sub/b.png", "c.png"], "embedding": list(vectors), "n": [1, 2, 3]},
    )
    features = read_features(path)
    assert features.kind == "filename" and features.dim == 4
    assert features.keys == ["a.png", "./sub/b.png", "c.png"]
    np.testing.assert_array_equal(features.vectors, vectors.astype(np.float32))
    match = match_features(features, _rows())
    assert match.row_of == {"h1": 0, "h2": 1, "h3": 2} and not match.missing
    assert not match.unknown


def test_fixed_size_list_picked_by_type_and_ids_as_keys(tmp_path):
    values = pa.array(np.ones(6, np.float32))
    column = pa.FixedSizeListArray.from_arrays(values, 3)
    path = _parquet(tmp_path / "v.parquet", {"id": ["h2", "h3"], "clip": column})
    features = read_features(path)
    assert features.kind == "id" and features.vectors.shape == (2, 3)
    match = match_features(features, _rows())
    assert match.missing == ["h1"] and sorted(match.row_of) == ["h2", "h3"]


def test_npy_with_ids_txt_counts_missing_and_unknown(tmp_path):
    np.save(tmp_path / "v.npy", np.eye(3, 7, dtype=np.float16))
    (tmp_path / "v.ids.txt").write_text("z-copy.png\nh3\nnot-there.png\n")
    features = read_features(tmp_path / "v.npy")
    assert features.kind == "either" and features.vectors.dtype == np.float32
    match = match_features(features, _rows())
    # the byte copy's vector serves its content hash; an id works as a key too
    assert match.row_of == {"h1": 0, "h3": 1}
    assert match.missing == ["h2"] and match.unknown == ["not-there.png"]
    assert "v.npy" in missing_reason(tmp_path / "v.npy")


def test_rows_with_a_null_vector_are_left_out(tmp_path):
    path = _parquet(
        tmp_path / "v.parquet",
        {"path": ["a.png", None, "c.png"], "embedding": [[1.0, 2.0], None, [3.0, 4.0]]},
    )
    features = read_features(path)
    assert features.keys == ["a.png", "c.png"] and features.vectors.shape == (2, 2)
    assert match_features(features, _rows()).missing == ["h2"]


def test_npy_with_an_ids_parquet(tmp_path):
    np.save(tmp_path / "v.npy", np.ones((2, 5)))
    _parquet(tmp_path / "v.ids.parquet", {"filename": ["a.png", "c.png"]})
    features = read_features(tmp_path / "v.npy")
    assert features.kind == "filename" and features.dim == 5


def test_fingerprint_follows_the_content_not_the_name(tmp_path):
    np.save(tmp_path / "v.npy", np.ones((2, 5)))
    (tmp_path / "v.ids.txt").write_text("a.png\nc.png\n")
    first = features_fingerprint(tmp_path / "v.npy")
    (tmp_path / "v.ids.txt").write_text("c.png\na.png\n")
    assert features_fingerprint(tmp_path / "v.npy") != first
    path = _parquet(tmp_path / "p.parquet", {"id": ["x"], "vector": [[1.0, 2.0]]})
    copy = tmp_path / "other-name.parquet"
    copy.write_bytes(path.read_bytes())
    assert features_fingerprint(path) == features_fingerprint(copy)


@pytest.mark.parametrize(
    ("columns", "message"),
    [
        ({"filename": ["a", "b"], "embedding": [[1.0, float("nan")], [1.0, 2.0]]}, "row 0"),
        ({"filename": ["a", "b"], "embedding": [[1.0, 2.0], [1.0, float("inf")]]}, "row 1"),
        ({"filename": ["a", "b"], "embedding": [[1.0, 2.0], [1.0, 2.0, 3.0]]}, "row 1 has 3"),
        (
            {"filename": ["a", "b"], "embedding": pa.array([[], []], pa.list_(pa.float32()))},
            "dimension 0",
        ),
        ({"filename": ["a", "b"], "embedding": [["x"], ["y"]]}, "must hold numbers"),
        ({"filename": ["a", "b"], "embedding": [1.0, 2.0]}, "must be a list"),
        ({"filename": ["a", "b"], "embedding": [[1.0, None], [1.0, 2.0]]}, "row 0"),
        ({"filename": ["a", "a"], "embedding": [[1.0], [2.0]]}, "rows 0 and 1"),
        ({"filename": ["a", None], "embedding": [[1.0], [2.0]]}, "row 1 has an empty"),
        ({"name": ["a", "b"], "embedding": [[1.0], [2.0]]}, "no key column"),
        ({"filename": [1, 2], "embedding": [[1.0], [2.0]]}, "must hold text"),
        ({"filename": ["a", "b"], "x": [[1.0], [2.0]], "y": [[1.0], [2.0]]}, "several list"),
        ({"filename": ["a", "b"], "x": [1.0, 2.0]}, "no column of vectors"),
    ],
)
def test_bad_parquet_files_name_the_file_and_row(tmp_path, columns, message):
    path = _parquet(tmp_path / "bad.parquet", columns)
    with pytest.raises(FeaturesError, match=message) as caught:
        read_features(path)
    assert "bad.parquet" in str(caught.value)
    assert isinstance(caught.value, PostermapError)


def test_bad_npy_files(tmp_path):
    np.save(tmp_path / "v.npy", np.ones((3, 2)))
    with pytest.raises(FeaturesError, match="v.ids.txt"):
        read_features(tmp_path / "v.npy")  # no ids beside it
    (tmp_path / "v.ids.txt").write_text("a\nb\n")
    with pytest.raises(FeaturesError, match="3 rows of vectors but 2 ids"):
        read_features(tmp_path / "v.npy")
    np.save(tmp_path / "v.npy", np.ones(2))
    with pytest.raises(FeaturesError, match="N x D"):
        read_features(tmp_path / "v.npy")
    np.save(tmp_path / "v.npy", np.array([["x"], ["y"]]))
    with pytest.raises(FeaturesError, match="numbers"):
        read_features(tmp_path / "v.npy")
    (tmp_path / "t.parquet").write_text("not parquet")
    with pytest.raises(FeaturesError, match="not a Parquet file"):
        read_features(tmp_path / "t.parquet")
    with pytest.raises(FeaturesError, match="no such file"):
        read_features(tmp_path / "missing.parquet")
