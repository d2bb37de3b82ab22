import io

import pytest
from PIL import Image

from postermap.images import ImageLoadError, load_image, make_thumbnail, pixel_hash
from tests.conftest import DATA, draw_image


def test_truncated_jpeg_is_reported_not_half_decoded():
    with pytest.raises(ImageLoadError) as err:
        load_image(DATA / "truncated.jpg")
    assert err.value.reason in {"truncated", "undecodable"}
    assert "OSError" in str(err.value) or "truncated" in str(err.value)


def test_html_saved_as_png_is_undecodable():
    with pytest.raises(ImageLoadError) as err:
        load_image(DATA / "not_an_image.png")
    assert err.value.reason == "undecodable"


def test_decompression_bomb_refused_before_decoding(tmp_path):
    path = draw_image(tmp_path / "big.png", seed=1, size=(400, 300))
    with pytest.raises(ImageLoadError) as err:
        load_image(path, max_pixels=100_000)
    assert err.value.reason == "too_large"
    assert "120,000" in str(err.value)


def test_transparency_is_flattened_onto_white():
    rgba = Image.new("RGBA", (4, 4), (255, 0, 0, 0))
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    image = load_image(buf.getvalue())
    assert image.mode == "RGB"
    assert image.getpixel((0, 0)) == (255, 255, 255)


def test_gif_gives_first_frame(tmp_path):
    frames = [Image.new("P", (8, 8), i) for i in (10, 200)]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    first = load_image(path)
    assert first.size == (8, 8)
    assert first.getpixel((0, 0)) == Image.open(path).convert("RGB").getpixel((0, 0))


def test_pixel_hash_ignores_encoding(tmp_path):
    png = draw_image(tmp_path / "a.png", seed=3)
    bmp = tmp_path / "a.bmp"
    Image.open(png).save(bmp)
    other = draw_image(tmp_path / "b.png", seed=4)
    assert pixel_hash(load_image(png)) == pixel_hash(load_image(bmp))
    assert pixel_hash(load_image(png)) != pixel_hash(load_image(other))


def test_thumbnail_fits_and_never_enlarges(tmp_path):
    image = load_image(draw_image(tmp_path / "a.png", seed=5, size=(300, 150)))
    thumb = Image.open(io.BytesIO(make_thumbnail(image, 100)))
    assert thumb.size == (100, 50)
    small = Image.open(io.BytesIO(make_thumbnail(image, 1000)))
    assert small.size == (300, 150)
