import csv

import pyarrow.parquet as pq
import pytest

from postermap.cleaning import CleanParams, clean_collection, find_exact_duplicates
from postermap.config import Settings
from postermap.errors import SourceError
from postermap.pipeline import run_stage, stage_by_name
from postermap.sources import read_metadata
from postermap.workspace import Workspace


def _ingest_and_clean(folder, ws_path, **settings):
    """Ingest, then the clean stage's rules without embeddings (exact duplicates, boring)."""
    ws = Workspace(ws_path).create()
    settings = Settings(source=str(folder), workers=1, **settings)
    run_stage(ws, settings, stage_by_name("ingest"))
    rows = pq.read_table(ws.catalog_path).to_pylist()
    verdicts = clean_collection(rows, None, CleanParams())
    for row in rows:
        verdict = verdicts.get(row["id"])
        if verdict is not None:
            row.update(
                status=verdict.status, reason=verdict.reason, duplicate_of=verdict.duplicate_of
            )
        else:
            row.setdefault("duplicate_of", None)
    return ws, {r["path"]: r for r in rows}


def test_every_image_file_gets_a_row_with_status(tiny_folder, tmp_path):
    ws, rows = _ingest_and_clean(tiny_folder, tmp_path / "ws")
    assert len(rows) == 12 + 2 + 3  # notes.txt is not an image file
    assert rows["truncated.jpg"]["status"] == "corrupt"
    assert "truncated" in rows["truncated.jpg"]["reason"].lower()
    assert rows["not_an_image.png"]["status"] == "corrupt"
    assert rows["empty.jpg"]["status"] == "corrupt"
    assert rows["empty.jpg"]["reason"].startswith("empty")
    assert rows["img05.png"]["status"] == "ok"
    assert rows["sub/img00.png"]["status"] == "ok"
    assert ws.read_marker("ingest")["counts"]["ignored_other_extensions"] == 1


def test_exact_duplicates_by_bytes_and_by_pixels(tiny_folder, tmp_path):
    _, rows = _ingest_and_clean(tiny_folder, tmp_path / "ws")
    copy = rows["img01.png"]
    # "copy_of_img01.png" sorts before "img01.png", so the copy is the representative.
    assert rows["copy_of_img01.png"]["status"] == "ok"
    assert copy["status"] == "duplicate"
    assert copy["reason"] == "same_bytes"
    assert copy["duplicate_of"] == rows["copy_of_img01.png"]["id"]
    bmp = rows["img02_as_bmp.bmp"]
    assert rows["img02.png"]["status"] == "ok"  # "img02.png" < "img02_as_bmp.bmp"
    assert bmp["status"] == "duplicate"
    assert bmp["reason"] == "same_pixels"
    assert bmp["duplicate_of"] == rows["img02.png"]["id"]


def test_large_jpegs_decode_reduced_and_pixel_twins_are_confirmed_in_full(tmp_path):
    from PIL import Image

    from tests.conftest import draw_image

    folder = tmp_path / "images"
    big = draw_image(folder / "big.png", seed=3, size=(1200, 1800))
    picture = Image.open(big)
    big.unlink()
    picture.save(folder / "poster.jpg", quality=90)
    # same pixels, different bytes: the JPEG scan again, with a comment in the header
    picture.save(folder / "poster_with_comment.jpg", quality=90, comment=b"scanned")
    picture.save(folder / "poster_q70.jpg", quality=70)  # different pixels
    ws, rows = _ingest_and_clean(folder, tmp_path / "ws")
    original = rows["poster.jpg"]
    assert (original["width"], original["height"]) == (1200, 1800)  # the file's size
    with Image.open(ws.thumb_path(original["content_hash"])) as thumb:
        assert max(thumb.size) == 256
    twin = rows["poster_with_comment.jpg"]
    assert twin["status"] == "duplicate" and twin["reason"] == "same_pixels"
    assert twin["duplicate_of"] == original["id"]
    assert not twin["pixel_hash"].startswith("~")  # confirmed at full resolution
    assert rows["poster_q70.jpg"]["status"] != "duplicate"
    assert rows["poster_q70.jpg"]["pixel_hash"].startswith("~")  # unique: never re-decoded
    assert ws.read_marker("ingest")["counts"]["pixel_hashes_confirmed"] == 2


def test_ids_are_content_hashes_and_unique(tiny_folder, tmp_path):
    _, rows = _ingest_and_clean(tiny_folder, tmp_path / "ws")
    ids = [r["id"] for r in rows.values()]
    assert len(set(ids)) == len(ids)
    assert rows["copy_of_img01.png"]["id"] == rows["copy_of_img01.png"]["content_hash"]
    assert rows["img01.png"]["id"].startswith(rows["img01.png"]["content_hash"] + "-")
    _, again = _ingest_and_clean(tiny_folder, tmp_path / "ws2")
    assert {p: r["id"] for p, r in again.items()} == {p: r["id"] for p, r in rows.items()}


def test_input_folder_is_never_modified(tiny_folder, tmp_path):
    before = {p: p.read_bytes() for p in tiny_folder.rglob("*") if p.is_file()}
    _ingest_and_clean(tiny_folder, tmp_path / "ws")
    after = {p: p.read_bytes() for p in tiny_folder.rglob("*") if p.is_file()}
    assert before == after


def test_metadata_titles_and_columns(tiny_folder, tmp_path):
    meta = tmp_path / "meta.csv"
    with open(meta, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["filename", "title", "year"])
        writer.writerow(["img04.png", "The Fourth", "1999"])
        writer.writerow(["sub/img00.png", "Zero", "2001"])
    _, rows = _ingest_and_clean(tiny_folder, tmp_path / "ws", metadata=str(meta))
    assert rows["img04.png"]["title"] == "The Fourth"
    assert rows["img04.png"]["year"] == "1999"
    assert rows["sub/img00.png"]["title"] == "Zero"
    assert rows["img05.png"]["title"] == "img05"  # falls back to the file stem


def test_metadata_without_filename_column_is_a_clear_error(tmp_path):
    meta = tmp_path / "meta.csv"
    meta.write_text("name,title\na.png,A\n")
    with pytest.raises(SourceError, match="'filename' column.*name, title"):
        read_metadata(meta)


def test_resume_redoes_only_missing_parts(tiny_folder, tmp_path, monkeypatch):
    import postermap.stages.ingest as ingest

    monkeypatch.setattr(ingest, "PART_SIZE", 4)
    ws, rows = _ingest_and_clean(tiny_folder, tmp_path / "ws")
    parts = sorted(
        (ws.root / "ingest").glob("part-*.parquet"), key=lambda p: -pq.read_metadata(p).num_rows
    )
    assert [pq.read_metadata(p).num_rows for p in parts] == [4, 4, 4, 4, 1]
    kept = {p: p.stat().st_mtime_ns for p in parts[1:]}
    parts[0].unlink()
    inspected = []
    original = ingest.inspect_file
    monkeypatch.setattr(
        ingest,
        "_inspect_all",
        lambda pool, items, ws, settings: (
            inspected.append(i) or original(i.local, i.path, ws.thumbs_dir, 120_000_000, 256)
            for i in items
        ),
    )
    run_stage(ws, Settings(source=str(tiny_folder), workers=1), ingest.STAGE, force=True)
    assert len(inspected) == 4
    assert {p: p.stat().st_mtime_ns for p in parts[1:]} == kept
    again = {r["path"]: r for r in pq.read_table(ws.table_path("ingest")).to_pylist()}
    assert {p: r["status"] for p, r in again.items()} == {
        p: ("corrupt" if r["status"] == "corrupt" else "ok") for p, r in rows.items()
    }


def test_find_exact_duplicates_prefers_earliest_path():
    rows = [
        {"id": "b", "path": "b.png", "status": "ok", "content_hash": "h1", "pixel_hash": "p1"},
        {"id": "a", "path": "a.png", "status": "ok", "content_hash": "h1", "pixel_hash": "p1"},
        {"id": "c", "path": "c.jpg", "status": "ok", "content_hash": "h2", "pixel_hash": "p1"},
        {"id": "d", "path": "d.jpg", "status": "corrupt", "content_hash": "h3", "pixel_hash": None},
    ]
    assert find_exact_duplicates(rows) == {"b": ("a", "same_bytes"), "c": ("a", "same_pixels")}


def test_a_large_jpeg_and_a_png_of_its_decoded_pixels_are_same_pixels(tmp_path):
    from PIL import Image

    from tests.conftest import draw_image

    folder = tmp_path / "images"
    big = draw_image(folder / "big.png", seed=5, size=(1200, 1800))
    Image.open(big).save(folder / "poster.jpg", quality=90)
    big.unlink()
    with Image.open(folder / "poster.jpg") as jpeg:
        jpeg.convert("RGB").save(folder / "poster-lossless.png")  # exactly its pixels
    ws, rows = _ingest_and_clean(folder, tmp_path / "ws")
    kept, copy = rows["poster-lossless.png"], rows["poster.jpg"]
    # same pixels: the first by path stays (exact copies), the other is a duplicate
    pair = sorted([kept, copy], key=lambda r: r["path"])
    assert pair[1]["status"] == "duplicate" and pair[1]["reason"] == "same_pixels"
    assert pair[1]["duplicate_of"] == pair[0]["id"]
    assert ws.read_marker("ingest")["counts"]["pixel_hashes_confirmed"] == 1


def test_a_near_duplicate_group_keeps_the_most_pixels_then_lossless_then_bytes():
    from postermap.cleaning import keep_order

    def row(path, w, h, fmt, size):
        return {"path": path, "width": w, "height": h, "format": fmt, "bytes": size}

    rows = [
        row("a-small.png", 100, 150, "png", 90_000),
        row("b-copy.jpg", 200, 300, "jpg", 120_000),
        row("c-original.png", 200, 300, "png", 80_000),
        row("d-bigger.jpg", 200, 300, "jpg", 150_000),
        row("e-same.png", 200, 300, "png", 80_000),
    ]
    ordered = [r["path"] for r in sorted(rows, key=keep_order)]
    assert ordered == ["c-original.png", "e-same.png", "d-bigger.jpg", "b-copy.jpg", "a-small.png"]
