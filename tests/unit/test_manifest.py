import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from postermap.errors import ManifestError
from postermap.manifest import read_manifest


def test_csv_with_malformed_and_empty_rows_keeps_every_line(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        "id,poster_url,title,year\n"
        "1,http://h/a.jpg,A,1990\n"
        "2,http://h/b.jpg,B\n"  # too few fields
        "3,,C,1992\n"  # no URL
        "4,http://h/d.jpg,D,1993,extra\n"
    )
    manifest = read_manifest(path)
    assert (manifest.url_column, manifest.title_column, manifest.id_column) == (
        "poster_url",
        "title",
        "id",
    )
    errors = [row.error for row in manifest.rows]
    assert errors[0] is None
    assert errors[1] == "malformed_row: line 3 has 3 fields, the header has 4"
    assert errors[2] == "no_url: line 4 has an empty 'poster_url'"
    assert errors[3].startswith("malformed_row: line 5 has 5 fields")
    assert manifest.rows[0].metadata == {"id": "1", "year": "1990"}
    assert manifest.rows[0].title == "A"


def test_tsv_jsonl_and_parquet(tmp_path):
    tsv = tmp_path / "m.tsv"
    tsv.write_text("link\tname\nhttp://h/a.jpg\tA\n")
    assert read_manifest(tsv).rows[0].url == "http://h/a.jpg"
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text(
        json.dumps({"image_url": "http://h/a.jpg", "caption": "A"})
        + "\n"
        + "{not json\n"
        + json.dumps([1, 2])
        + "\n"
    )
    rows = read_manifest(jsonl).rows
    assert rows[0].url == "http://h/a.jpg" and rows[0].title == "A"
    assert rows[1].error.startswith("malformed_row: line 2 is not JSON")
    assert rows[2].error == "malformed_row: line 3 is not a JSON object"
    parquet = tmp_path / "m.parquet"
    pq.write_table(
        pa.table({"weird": ["https://h/x.png", "https://h/y.png"], "year": [2001, 2002]}), parquet
    )
    manifest = read_manifest(parquet)
    assert manifest.url_column == "weird"  # detected from the values
    assert manifest.rows[1].metadata == {"year": "2002"}


def test_unknown_or_missing_columns_are_named(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ManifestError, match="cannot tell which column.*a, b"):
        read_manifest(path)
    with pytest.raises(ManifestError, match="no column named 'url'"):
        read_manifest(path, url_column="url")
