"""Facets, arrangements, picture concepts and new tropes: the data behind the viewer's
filters, timeline wall, search by picture and selection export (#16)."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest

from postermap.arrangements import arrange_by_bins, arrange_items
from postermap.concepts import class_names, classes_for, top_classes, write_class_index
from postermap.curation import NEW_TROPE_BASE, Curation, apply_curation
from postermap.facets import NO_YEAR, build_facets, facet_bins, type_column
from postermap.site import link_key, write_id_index
from postermap.workspace import Embeddings, read_rows


def test_year_column_is_a_timeline_with_one_bin_per_year():
    values = ["1971", "1975-03-01", None, "1979", ""]
    facet = type_column("year", values)
    assert facet.spec["kind"] == "year"
    years = np.frombuffer(facet.data, np.int16)
    assert years.tolist() == [1971, 1975, NO_YEAR, 1979, NO_YEAR]
    assert facet.spec["edges"][0] == 1971 and facet.spec["edges"][-1] == 1980
    assert sum(facet.spec["counts"]) == 3 and facet.spec["none"] == 2


def test_numbers_get_a_histogram_log_scaled_over_orders_of_magnitude():
    linear = type_column("width", ["10", "20", "30.5"])
    assert linear.spec["kind"] == "number" and linear.spec["scale"] == "linear"
    sizes = type_column("bytes", [str(10**k) for k in range(1, 8)])
    assert sizes.spec["scale"] == "log"
    assert sum(sizes.spec["counts"]) == 7
    assert np.frombuffer(sizes.data, np.float32)[0] == 10


def test_multi_valued_categories_are_bitmasks_with_counts():
    values = ["Drama|Comedy", "Drama", "Western; Drama", None] * 3
    facet = type_column("genre", values)
    spec = facet.spec
    assert spec["kind"] == "category" and spec["multi"]
    assert spec["values"][0] == "Drama" and spec["counts"][0] == 9
    bits = np.frombuffer(facet.data, np.uint8)
    comedy = spec["values"].index("Comedy")
    assert [bool(b >> comedy & 1) for b in bits[:4]] == [True, False, False, False]
    assert bits[3] == 0


def test_titles_ids_and_constant_columns_are_not_facets():
    assert type_column("title", [f"Film {i}" for i in range(100)]) is None
    assert type_column("format", ["png"] * 10) is None
    assert type_column("country", [None] * 5) is None
    many = type_column("tag", [f"t{i % 60}" for i in range(600)])
    assert many is None  # more values than chips
    facets = build_facets(
        [{"year": "1990", "genre": "A"}, {"year": "1991", "genre": "B"}] * 2,
        ["year", "genre", "missing"],
    )
    assert [f.spec["name"] for f in facets] == ["year", "genre"]


def test_year_bins_widen_to_fit_the_wall():
    items = [{"year": str(1900 + i)} for i in range(100)]
    bins, labels = facet_bins(items, "year")
    assert len(labels) == 100 and bins[5] == 5
    bins, labels = facet_bins(items, "year", max_bins=10)
    assert labels[0] == "1900–1909" and bins[15] == 1 and len(set(bins.tolist())) == 10
    with pytest.raises(ValueError, match="neither numeric nor a category"):
        facet_bins([{"title": f"t{i}"} for i in range(10)], "title")


def test_a_category_column_bins_by_value_rarest_merged():
    items = [{"genre": g} for g in ["a|b"] * 5 + ["b"] * 4 + ["c"] * 3 + ["d"] * 2 + [""]]
    bins, labels = facet_bins(items, "genre")
    assert labels == ["b", "a", "c", "d"] and bins[0] == 1 and bins[-1] == -1
    bins, labels = facet_bins(items, "genre", max_bins=3)
    assert labels == ["b", "a", "other"] and bins[-2] == 2


def test_wall_is_gapless_but_for_the_foot_of_each_bin():
    rng = np.random.default_rng(0)
    n = 1000
    bins = rng.integers(-1, 12, n)
    xy = rng.normal(size=(n, 2))
    wall = arrange_by_bins("year", bins, [str(1950 + b) for b in range(12)], xy, (2, 3), 1.6)
    placed = wall.cell_item[wall.cell_item >= 0]
    assert sorted(placed.tolist()) == list(range(n))  # every item exactly once
    grid = wall.cell_item.reshape(wall.rows, wall.cols)
    for spec in wall.bins:
        block = grid[:, spec["col"] : spec["col"] + spec["cols"]]
        members = block[block >= 0]
        assert len(members) == spec["count"]
        label = spec["label"]
        expected = -1 if label == "none" else int(label) - 1950
        assert set(bins[members].tolist()) == {expected}
        # holes only at the foot of the bin's last column
        assert (block[:, :-1] >= 0).all()
        last = block[:, -1]
        assert (np.diff((last >= 0).astype(int)) <= 0).all()
        # each column ordered by the layout's y
        for c in range(block.shape[1]):
            col = block[:, c][block[:, c] >= 0]
            assert (np.diff(xy[col, 1]) >= 0).all()
    assert wall.bins[-1]["label"] == "none"
    aspect = wall.cols * 2 / (wall.rows * 3)
    assert 1.2 < aspect < 2.1


def test_arrange_items_reads_a_metadata_column():
    items = [{"id": str(i), "year": str(1960 + i % 30)} for i in range(300)]
    wall = arrange_items(items, "year", np.random.default_rng(1).normal(size=(300, 2)), (2, 3), 1.6)
    assert wall.slug == "year" and (wall.cell_item >= 0).sum() == 300
    # 300 images make a wall ~21 columns wide: at most 10 bins of two columns
    labels = [b["label"] for b in wall.bins]
    assert labels[:2] == ["1960–1964", "1965–1969"] and len(labels) == 6


def test_query_words_reach_classes_through_wordnet():
    names = class_names()
    horse = {names[k] for k in classes_for("horse")}
    assert any("sorrel" in n for n in horse)
    assert {names[k] for k in classes_for("horses")} == horse  # plural
    car = {names[k].lower() for k in classes_for("car")}
    assert {"sports car", "convertible"} <= car and any("cab" in n for n in car)
    assert classes_for("entity") == []  # too general to search by
    assert classes_for("qwertyuiop") == []


def test_feature_rows_are_taken_through_a_map_of_their_span(tmp_path):
    vectors = np.random.default_rng(1).normal(size=(50, 6)).astype(np.float32)
    np.save(tmp_path / "v.npy", vectors)
    stored = Embeddings(np.arange(50), np.load(tmp_path / "v.npy", mmap_mode="r"))
    rows = np.array([31, 7, 7, 12, 49])
    assert np.array_equal(stored.take(rows), vectors[rows])
    assert stored.take(rows).dtype == np.float32
    assert stored.take(np.zeros(0, np.int64)).shape == (0, 6)
    # a view into the map (its offset is the parent's) and a plain array read directly
    assert np.array_equal(
        Embeddings(np.arange(40), stored.vectors[10:]).take(rows[1:4]), vectors[10:][rows[1:4]]
    )
    assert np.array_equal(Embeddings(np.arange(50), vectors).take(rows), vectors[rows])


def _resident_kb(path) -> int:
    """Resident kB of this process's maps of ``path`` (Linux /proc)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):  # a map's header line
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not Path("/proc/self/smaps").exists(), reason="needs Linux /proc")
def test_reading_every_row_leaves_none_of_the_file_resident(tmp_path):
    vectors = np.random.default_rng(2).normal(size=(4096, 256)).astype(np.float32)  # 4 MB
    np.save(tmp_path / "v.npy", vectors)
    mapped = np.load(tmp_path / "v.npy", mmap_mode="r")
    block = read_rows(mapped, np.arange(len(vectors)))
    assert np.array_equal(block, vectors)
    assert _resident_kb(tmp_path / "v.npy") == 0
    touched = np.asarray(mapped[np.arange(len(vectors))], dtype=np.float32)  # the old way
    assert np.array_equal(touched, vectors)
    assert _resident_kb(tmp_path / "v.npy") > 3000


def test_top_classes_are_computed_in_chunks_and_indexed_per_class(tmp_path, monkeypatch):
    monkeypatch.setattr("postermap.concepts.CHUNK", 7)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(40, 8)).astype(np.float32)
    weight = rng.normal(size=(8, 20))

    def softmax(x):
        z = np.exp(x @ weight)
        return z / z.sum(axis=1, keepdims=True)

    np.save(tmp_path / "vectors.npy", vectors)
    stored = Embeddings(np.arange(40), np.load(tmp_path / "vectors.npy", mmap_mode="r"))
    rows = rng.permutation(40)[:30]
    classes, probs = top_classes(stored.take, rows, softmax, k=3)
    expected = softmax(vectors[rows])
    assert (classes[:, 0] == expected.argmax(axis=1)).all()
    assert np.allclose(probs[:, 0], expected.max(axis=1))
    assert (np.diff(probs, axis=1) <= 0).all()
    counts = write_class_index(tmp_path, classes, probs)
    for k, count in counts.items():
        data = (tmp_path / f"{k}.bin").read_bytes()
        assert len(data) == 5 * count
        items = np.frombuffer(data[: 4 * count], "<u4")
        p = np.frombuffer(data[4 * count :], np.uint8)
        assert (np.diff(p.astype(int)) <= 0).all()  # most probable first
        assert all(k in classes[i].tolist() for i in items)
    best = classes[:, 0]
    for i in range(len(rows)):  # every image is found by its best class
        data = (tmp_path / f"{best[i]}.bin").read_bytes()
        assert i in np.frombuffer(data[: 4 * counts[int(best[i])]], "<u4").tolist()


def test_a_new_trope_from_the_viewer_is_applied_without_warnings(caplog):
    labels = np.array([0, 0, 1, 1, -1])
    ids = ["a", "b", "c", "d", "e"]
    curation = Curation(add={NEW_TROPE_BASE: ["b", "e"]}, names={NEW_TROPE_BASE: "horses"})
    with caplog.at_level(logging.WARNING):
        out = apply_curation(labels, ids, curation)
    assert out.tolist() == [0, NEW_TROPE_BASE, 1, 1, NEW_TROPE_BASE]
    assert "there is no cluster" not in caplog.text
    with caplog.at_level(logging.WARNING):
        apply_curation(labels, ids, Curation(add={7: ["a"]}))
    assert "there is no cluster 7" in caplog.text


def test_links_find_every_image_by_id_in_one_small_file(tmp_path):
    """Ids to item numbers, one file per first two hex digits; a byte copy kept on the map
    (``<hash>-<hash of its path>``) has a key of its own."""
    import json

    rng = np.random.default_rng(0)
    ids = [rng.bytes(16).hex() for _ in range(2000)]
    ids.append(ids[7] + "-" + "ab12cd34ef56")  # a copy of image 7, kept by hand
    write_id_index(tmp_path, ids)
    files = sorted(tmp_path.glob("*.json"))
    assert 200 < len(files) <= 256
    assert {p.stem for p in files} == {i[:2] for i in ids}
    found = {}
    for path in files:
        for key, index in json.loads(path.read_text()).items():
            assert key.startswith(path.stem)
            found[key] = index
    assert found == {link_key(i): n for n, i in enumerate(ids)}
    assert link_key(ids[-1]) == ids[7][:16] + "-ab12cd34" != link_key(ids[7])
