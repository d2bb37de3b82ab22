"""The clean rules on tiny synthetic pictures: what is and is not the same picture, what
is and is not boring, what is a template.

Features are deliberately useless (every image gets nearly the same vector), so every
pair is a candidate and the layout comparison alone decides, as it must when a CNN
calls two posters with one motif alike.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont, ImageOps

from postermap.cleaning import CleanParams, boring_reason, clean_collection
from postermap.images import (
    alpha_band,
    block_size,
    content_box,
    flatten_to_rgb,
    image_stats,
    shrink,
)

W, H = 200, 300


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def texture(seed: int, size: tuple[int, int] = (W, H)) -> Image.Image:
    """A grainy, blotchy photographic-looking field (a picture, not a graphic)."""
    rng = np.random.default_rng(seed)
    w, h = size
    coarse = rng.random((h // 20 + 2, w // 20 + 2, 3)) * 255
    field = np.asarray(
        Image.fromarray(coarse.astype(np.uint8)).resize(size, Image.Resampling.BICUBIC),
        np.float32,
    )
    grain = rng.normal(0, 14, (h, w, 1))
    return Image.fromarray(np.clip(field * 0.7 + grain + 30, 0, 255).astype(np.uint8))


def motif(size: int, colour: tuple[int, int, int] = (240, 240, 230)) -> Image.Image:
    """A drawing on transparency: a page with lines, a folded corner (like a clip-art icon)."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.polygon(
        [(4, 4), (size * 0.7, 4), (size - 4, size * 0.3), (size - 4, size - 4), (4, size - 4)],
        fill=(*colour, 255),
        outline=(20, 20, 20, 255),
        width=3,
    )
    for k in range(5):
        y = size * (0.3 + 0.12 * k)
        draw.line((size * 0.18, y, size * 0.8, y), fill=(30, 30, 30, 255), width=3)
    return image


def poster(seed: int, title: str, at: tuple[int, int] = (40, 60), width: int = 120) -> Image.Image:
    image = texture(seed)
    m = motif(width)
    image.paste(m, at, m)
    ImageDraw.Draw(image).text((14, H - 40), title, fill=(250, 250, 250), font=_font(20))
    return image


def row(name: str, image: Image.Image, fmt: str = "png", transparent: bool = False) -> dict:
    """An ingest row of ``image`` as inspection would measure it."""
    data = io.BytesIO()
    image.save(data, format=fmt.upper().replace("JPG", "JPEG"))
    decoded = Image.open(io.BytesIO(data.getvalue()))
    decoded.load()
    alpha = alpha_band(decoded) if transparent else None
    rgb = flatten_to_rgb(decoded)
    small = shrink(rgb, 256)
    small_alpha = alpha.resize(small.size) if alpha is not None else None
    digest = hashlib.sha256(data.getvalue()).hexdigest()[:32]
    return {
        "id": digest,
        "path": name,
        "status": "ok",
        "reason": None,
        "content_hash": digest,
        "pixel_hash": digest,
        "width": rgb.width,
        "height": rgb.height,
        "format": fmt,
        "bytes": len(data.getvalue()),
        "thumb": small,
        **image_stats(small, full=rgb, alpha=small_alpha),
    }


def clean(rows: list[dict], **params) -> dict:
    """Verdicts by path, with features that call everything alike."""
    rng = np.random.default_rng(0)
    features = np.ones((len(rows), 64), np.float32) + rng.normal(0, 0.01, (len(rows), 64))
    features /= np.linalg.norm(features, axis=1, keepdims=True)
    thumbs = {r["content_hash"]: r["thumb"] for r in rows}
    verdicts = clean_collection(
        rows, features.astype(np.float32), CleanParams(**params), thumbs.get
    )
    return {r["path"]: verdicts.get(r["id"]) for r in rows}


def status(verdicts: dict, path: str) -> str:
    v = verdicts[path]
    return "ok" if v is None else v.status


def kept_for(verdicts: dict, rows: list[dict], path: str) -> str:
    """The path of the image kept in ``path``'s place (itself when it stays)."""
    v = verdicts[path]
    if v is None or v.status == "ok":
        return path
    return next(r["path"] for r in rows if r["id"] == v.duplicate_of)


# --------------------------------------------------------------------- near duplicates


def test_a_trope_sibling_is_not_a_near_duplicate():
    # the same drawing, moved, resized and mirrored, on another background with another title
    first = poster(1, "IRON MOON")
    sibling = texture(2)
    m = ImageOps.mirror(motif(100))
    sibling.paste(m, (70, 90), m)
    ImageDraw.Draw(sibling).text((14, H - 40), "SALT TIDE", fill=(250, 250, 250), font=_font(20))
    verdicts = clean([row("a.png", first), row("b.png", sibling), row("c.png", poster(3, "X"))])
    assert all(status(verdicts, p) == "ok" for p in verdicts), verdicts


def test_copies_are_near_duplicates_mirrored_cropped_letterboxed_or_retitled():
    original = poster(4, "COLD EMBER")
    letterbox = Image.new("RGB", (round(H * 16 / 9), H), (0, 0, 0))
    letterbox.paste(original, ((letterbox.width - W) // 2, 0))
    retitled = original.copy()
    ImageDraw.Draw(retitled).rectangle((0, H - 44, W, H), fill=(18, 18, 18))
    ImageDraw.Draw(retitled).text((14, H - 40), "NEW NAME", fill=(200, 30, 30), font=_font(20))
    copies = {
        "mirror.png": (ImageOps.mirror(original), "png"),
        "crop.png": (original.crop((6, 9, W - 8, H - 5)), "png"),
        "letterbox.jpg": (letterbox, "jpg"),
        "retitle.png": (retitled, "png"),
    }
    for name, (copy, fmt) in copies.items():
        rows = [row("orig.png", original), row(name, copy, fmt), row("other.png", poster(5, "X"))]
        verdicts = clean(rows)
        # one of the two stays (the one with more pixels), the other points at it
        assert kept_for(verdicts, rows, "orig.png") == kept_for(verdicts, rows, name), name
        assert {status(verdicts, "orig.png"), status(verdicts, name)} == {"ok", "near_duplicate"}
        assert status(verdicts, "other.png") == "ok"
        if name == "mirror.png":
            assert verdicts[name].reason.endswith("mirrored")


@pytest.mark.parametrize("eager_bytes", [0, 1 << 30])
def test_features_read_on_demand_give_the_same_verdicts_as_an_array(eager_bytes):
    from postermap.cleaning import unit_features
    from postermap.cleaning.records import UnitRows

    original = poster(4, "COLD EMBER")
    rows = [
        row("orig.png", original),
        row("mirror.png", ImageOps.mirror(original)),
        row("crop.png", original.crop((6, 9, W - 8, H - 5))),
        row("other.png", poster(5, "X")),
        row("gone.png", poster(6, "Y")),
    ]
    rng = np.random.default_rng(1)
    # stored in another order than the rows, unnormalised; one row has no features
    stored = [r["content_hash"] for r in rows[:4]][::-1]
    vectors = np.ones((4, 64), np.float32) * 3 + rng.normal(0, 0.03, (4, 64)).astype(np.float32)
    ids = np.array(stored)
    lazy = UnitRows(vectors, np.array([3, 2, 1, 0, -1]), eager_bytes)
    eager = unit_features(rows, ids, vectors)
    assert lazy.shape == eager.shape == (5, 64)
    np.testing.assert_array_equal(lazy[np.array([3, 0, 4])], eager[[3, 0, 4]])
    np.testing.assert_array_equal(lazy[2], eager[2])
    np.testing.assert_array_equal(lazy[1:3], eager[1:3])
    assert not eager[4].any()  # no stored features: zeros
    np.testing.assert_allclose(np.linalg.norm(eager[:4], axis=1), 1, atol=1e-6)
    thumbs = {r["content_hash"]: r["thumb"] for r in rows}
    got = clean_collection(rows, lazy, CleanParams(), thumbs.get)
    assert got == clean_collection(rows, eager, CleanParams(), thumbs.get)
    assert {v.status for v in got.values()} == {"near_duplicate"}


def keycap(label: str, colour: tuple[int, int, int] = (120, 120, 130)) -> Image.Image:
    """A flat graphic: a key with a digit, transparent around it."""
    image = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle(
        (14, 14, 146, 146), 22, fill=(*colour, 255), outline=(0, 0, 0, 255), width=5
    )
    draw.text((52, 30), label, fill=(255, 255, 255, 255), font=_font(90))
    return image


def test_graphics_differing_in_one_symbol_colour_or_orientation_are_kept():
    arrow = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    ImageDraw.Draw(arrow).polygon(
        [(20, 70), (100, 70), (100, 40), (145, 80), (100, 120), (100, 90), (20, 90)],
        fill=(40, 40, 40, 255),
    )
    rows = [
        row("one.png", keycap("1"), transparent=True),
        row("two.png", keycap("2"), transparent=True),
        row("one-red.png", keycap("1", (200, 40, 40)), transparent=True),
        row("right.png", arrow, transparent=True),
        row("left.png", ImageOps.mirror(arrow), transparent=True),
    ]
    verdicts = clean(rows)
    assert all(status(verdicts, p) == "ok" for p in verdicts), verdicts


def test_a_resized_recompressed_graphic_is_a_near_duplicate():
    key = flatten_to_rgb(keycap("7"))
    copy = key.resize((120, 120), Image.Resampling.LANCZOS)
    verdicts = clean([row("key.png", key), row("key-small.jpg", copy, "jpg")])
    assert status(verdicts, "key-small.jpg") == "near_duplicate", verdicts


# ------------------------------------------------------------------------------- boring


def test_a_small_object_on_a_plain_field_is_not_boring():
    field = Image.new("RGB", (W, H), (248, 244, 236))
    m = motif(30, (200, 60, 40))
    field.paste(m, (90, 140), m)
    assert boring_reason(row("small.png", field), CleanParams()) is None


def test_a_light_shape_on_transparency_is_not_solid():
    shape = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    ImageDraw.Draw(shape).ellipse((40, 80, 160, 220), fill=(252, 252, 252, 255))
    assert boring_reason(row("shape.png", shape, transparent=True), CleanParams()) is None


def test_a_pixel_block_upscale_is_tiny():
    small = poster(6, "TINY").resize((20, 30), Image.Resampling.BOX)
    blown = small.resize((W, H), Image.Resampling.NEAREST)
    r = row("blocky.png", blown)
    assert r["block"] == pytest.approx(10, abs=1)
    assert boring_reason(r, CleanParams()).startswith("tiny: blown up from about 20x30")


def test_flat_designs_are_not_blown_up_images():
    flag = Image.new("RGB", (240, 160), (200, 20, 30))
    draw = ImageDraw.Draw(flag)
    draw.rectangle((0, 53, 240, 106), fill=(255, 255, 255))
    draw.rectangle((0, 0, 80, 160), fill=(20, 40, 160))
    letter = Image.new("RGB", (160, 160), (255, 255, 255))
    ImageDraw.Draw(letter).rectangle((40, 20, 70, 140), fill=(0, 90, 200))
    ImageDraw.Draw(letter).rectangle((40, 20, 120, 45), fill=(0, 90, 200))
    ImageDraw.Draw(letter).rectangle((40, 70, 110, 95), fill=(0, 90, 200))
    saul_bass = Image.new("RGB", (W, H), (230, 200, 40))
    ImageDraw.Draw(saul_bass).ellipse((30, 60, 170, 200), fill=(20, 20, 20))
    ImageDraw.Draw(saul_bass).text((40, 240), "VERTIGO", fill=(20, 20, 20), font=_font(28))
    for name, image in (("flag.png", flag), ("letter.png", letter), ("bass.png", saul_bass)):
        r = row(name, image)
        assert r["block"] == 1.0, name
        assert boring_reason(r, CleanParams()) is None, (name, boring_reason(r, CleanParams()))


def test_content_box_strips_paired_margins_only():
    picture = texture(7, (120, 180))
    bars = Image.new("RGB", (320, 180), (0, 0, 0))
    bars.paste(picture, (100, 0))
    left, top, right, bottom = content_box(bars)
    assert abs(left - 100) <= 4 and abs(right - 220) <= 4 and top == 0 and bottom == 180
    # a flat band at the top only is part of the picture, not a margin
    sky = texture(8, (120, 180))
    ImageDraw.Draw(sky).rectangle((0, 0, 120, 50), fill=(90, 140, 220))
    assert content_box(sky) == (0, 0, 120, 180)


def test_block_size_of_an_upscale_and_of_a_photo():
    upscale = np.kron(np.random.default_rng(1).integers(0, 255, (12, 18)), np.ones((15, 15)))
    assert block_size(upscale.astype(np.uint8)) == 15.0
    assert block_size(np.asarray(texture(9).convert("L"))) == 1.0


# ---------------------------------------------------------------------------- templates


def title_card(title: str) -> Image.Image:
    card = Image.new("RGB", (W, H), (24, 24, 28))
    draw = ImageDraw.Draw(card)
    draw.rectangle((16, 24, W - 16, H - 24), outline=(200, 160, 60), width=2)
    draw.text((28, 120), title, fill=(235, 235, 235), font=_font(22))
    draw.text((50, 240), "NOW SHOWING", fill=(200, 160, 60), font=_font(14))
    return card


def test_templated_title_cards_are_found_among_posters():
    titles = ["IRON MOON", "SALT", "COLD EMBER", "NORTH", "TIDE OF GLASS"]
    rows = [row(f"card-{i}.png", title_card(t)) for i, t in enumerate(titles)]
    rows += [row(f"poster-{i}.png", poster(20 + i, f"P {i}")) for i in range(8)]
    verdicts = clean(rows)
    for i in range(len(titles)):
        v = verdicts[f"card-{i}.png"]
        assert v is not None and v.status == "boring", (i, v)
        assert v.reason.startswith("placeholder_template")
    assert all(status(verdicts, f"poster-{i}.png") == "ok" for i in range(8))


def letter_tile(letter: str) -> Image.Image:
    tile = Image.new("RGBA", (160, 160), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    draw.rounded_rectangle(
        (12, 12, 148, 148), 16, fill=(255, 255, 255, 255), outline=(0, 0, 0, 255), width=6
    )
    draw.text((48, 26), letter, fill=(0, 0, 0, 255), font=_font(100))
    return tile


def test_distinct_letters_on_one_template_are_kept():
    rows = [row(f"{c}.png", letter_tile(c), transparent=True) for c in "ABCDEFGH"]
    verdicts = clean(rows)
    assert all(status(verdicts, p) == "ok" for p in verdicts), verdicts


def _many_pairs():
    from postermap.cleaning.layout import PARALLEL_PAIRS, Layouts

    rows = [row(f"{i}.png", poster(i % 6, f"T{i}")) for i in range(10)]
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 10, PARALLEL_PAIRS + 700), rng.integers(0, 10, PARALLEL_PAIRS + 700)
    return Layouts.from_rows(rows), a, b


def _assert_same_measures(one, two):
    for name in vars(one):
        np.testing.assert_array_equal(getattr(one, name), getattr(two, name), err_msg=name)


def test_layout_comparison_in_two_processes_measures_the_same():
    from postermap.cleaning.layout import _can_fork, compare

    # would fail if a test before this one left Ray in this process (the comparison then
    # stays in one process, and this test would compare the one-process path with itself)
    assert _can_fork()
    layouts, a, b = _many_pairs()
    one, two = compare(layouts, a, b), compare(layouts, a, b, workers=2)
    _assert_same_measures(one, two)
    assert len(one.area) == len(a) and one.area.max() > one.area.min()


def _dying_batch(start: int):
    import os

    os._exit(3)  # as a worker killed by the kernel (out of memory) would


def test_a_dead_comparison_worker_is_reported_and_the_pairs_compared_here(monkeypatch, caplog):
    from postermap.cleaning import layout

    layouts, a, b = _many_pairs()
    expected = layout.compare(layouts, a, b)
    monkeypatch.setattr(layout, "_forked_batch", _dying_batch)
    with caplog.at_level("WARNING", logger="postermap.cleaning.layout"):
        got = layout.compare(layouts, a, b, workers=2)
    assert "a worker process died" in caplog.text
    _assert_same_measures(expected, got)


def test_hash_buckets_pair_only_hashes_within_the_bit_budget():
    from postermap.cleaning import phash_candidates

    base = 0x0123456789ABCDEF
    hashes = [
        f"{base:016x}",
        f"{base ^ 0b111:016x}",  # 3 bits away: shares every quarter but the last
        f"{base ^ (0xFFFF << 16) ^ (0xFF << 32):016x}",  # shares quarters 0 and 3, 24 bits
        None,  # no hash (an unreadable image)
    ]
    assert phash_candidates(hashes).tolist() == [[0, 1], [0, 2], [1, 2]]
    assert phash_candidates(hashes, max_bits=16).tolist() == [[0, 1]]
    assert phash_candidates(hashes, max_bits=64, involving={2}).tolist() == [[0, 2], [1, 2]]
    assert phash_candidates(["not a hash", "0123", None]).shape == (0, 2)


def test_hash_buckets_match_their_plain_definition():
    from benchmarks.candidates import bucket_pairs_by_hand
    from postermap.cleaning import phash_candidates

    rng = np.random.default_rng(5)
    # few distinct quarters, so buckets of every size up to past the cap of 64
    parts = rng.zipf(1.6, size=(3000, 4)) * 1637
    hashes = ["".join(f"{int(q) & 0xFFFF:04x}" for q in row) for row in parts]
    hashes[7] = None
    for max_bits, involving in ((64, None), (20, None), (24, {3, 50, 900})):
        got = phash_candidates(hashes, max_bits, involving=involving)
        assert len(got) > (20 if involving else 1000)  # the test pairs something
        assert [tuple(p) for p in got.tolist()] == sorted(
            bucket_pairs_by_hand(hashes, max_bits, involving)
        )


def test_layout_helpers_match_their_plain_definitions():
    """The region sums, 2x2 pooling, box blur and warp are written for speed; each must
    equal the obvious loop-free definition."""
    from postermap.cleaning import layout

    rng = np.random.default_rng(1)
    x = rng.random((5, 32, 32), dtype=np.float32) * 255
    plain_regions = x.reshape(5, 8, 4, 8, 4).sum(axis=(2, 4)).reshape(5, -1)
    np.testing.assert_allclose(layout._regions(x, 32), plain_regions, rtol=1e-5)
    np.testing.assert_allclose(
        layout._pool(x), x.reshape(5, 16, 2, 16, 2).mean(axis=(2, 4)), rtol=1e-6
    )
    padded = np.pad(x, [(0, 0), (1, 1), (1, 1)], mode="edge")
    box = sum(padded[:, dy : dy + 32, dx : dx + 32] for dy in range(3) for dx in range(3)) / 9
    np.testing.assert_allclose(layout._blur(x), box, rtol=1e-5)
    # identity copies; a shift by one pixel moves every column by one (edges repeated)
    one, zero = np.ones(5, np.float32), np.zeros(5, np.float32)
    same, valid = layout._warp(x, one, zero, one, zero)
    np.testing.assert_allclose(same, x, atol=1e-3)
    assert valid.all()
    shifted, valid = layout._warp(x, one, zero + 1 / 32, one, zero)
    np.testing.assert_allclose(shifted[:, :, :-1], x[:, :, 1:], atol=1e-3)
    assert not valid[:, :, -1].any() and valid[:, :, :-1].all()
    colour = rng.random((5, 16, 16, 2), dtype=np.float32)
    warped, _ = layout._warp(colour, one, zero, one, zero + 1 / 16)
    np.testing.assert_allclose(warped[:, :-1], colour[:, 1:], atol=1e-5)
