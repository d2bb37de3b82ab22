import io
import math
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from postermap.images import (
    IMAGE_EXTENSIONS,
    ImageLoadError,
    colour_histogram,
    decode_image,
    flatten_to_rgb,
    image_stats,
    is_image_name,
    load_image,
    make_thumbnail,
    pixel_hash,
    shrink,
    trim_borders,
)
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


# --- issue #12: every valid file decodes, every measure is defined --------------------


def _encoded(image: Image.Image, fmt: str, **options) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    return out.getvalue()


def _gradient16() -> Image.Image:
    """A 16-bit grey ramp from black to white: full contrast."""
    return Image.fromarray(np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1)))


@pytest.mark.parametrize("size", [(1, 1), (2, 2), (1, 9), (9, 1)])
@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_tiny_images_measure_without_error(size, fmt):
    # a 1x1 or 2x2 image used to raise IndexError: percentile of an empty Laplacian
    image, decoded_size = decode_image(_encoded(Image.new("RGB", size, (9, 99, 199)), fmt))
    assert decoded_size == size
    stats = image_stats(shrink(image, 256), full=image)
    assert stats["edge_p99"] == 0.0 and stats["detail"] == 0.0 and stats["gray_std"] == 0.0
    assert all(math.isfinite(v) for v in stats.values() if isinstance(v, float))
    assert make_thumbnail(image, 256)


def test_tiny_images_are_ok_rows(tmp_path):
    from postermap.stages.ingest import inspect_file

    for name, fmt in (("one.png", "PNG"), ("two.jpg", "JPEG")):
        path = tmp_path / name
        side = 1 if fmt == "PNG" else 2
        path.write_bytes(_encoded(Image.new("RGB", (side, side), (200, 10, 10)), fmt))
        record = inspect_file(path, name, tmp_path / "thumbs", 120_000_000, 256)
        assert record["status"] == "ok", record["reason"]
        assert (record["width"], record["height"]) == (side, side)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF", "PPM"])
def test_16bit_grey_keeps_its_contrast(fmt):
    # I;16 used to be clipped to 0..255 on conversion: a full ramp became almost all white
    data = _encoded(_gradient16(), fmt)
    image = load_image(data)
    assert image.getextrema() == ((0, 255), (0, 255), (0, 255))
    eight_bit = _gradient16().point(lambda v: v / 257).convert("L").convert("RGB")
    stats, reference = image_stats(image), image_stats(eight_bit)
    assert stats["gray_std"] > 70
    assert abs(stats["gray_std"] - reference["gray_std"]) < 1


def test_16bit_nearly_black_card_stays_nearly_black():
    dark = Image.fromarray(np.full((32, 32), 300, np.uint16))  # 300 of 65535
    image = load_image(_encoded(dark, "PNG"))
    assert image.getextrema()[0] == (1, 1)


def test_float_and_32bit_images_are_scaled():
    unit = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (8, 1))
    assert flatten_to_rgb(Image.fromarray(unit)).getextrema()[0] == (0, 255)
    wide = np.tile(np.linspace(-5e6, 5e6, 64).astype(np.int32), (8, 1))
    assert flatten_to_rgb(Image.fromarray(wide)).getextrema()[0] == (0, 255)
    odd = unit.copy()
    odd[0, :3] = (np.nan, np.inf, -np.inf)
    grey = np.asarray(flatten_to_rgb(Image.fromarray(odd * 10)))[..., 0]
    assert grey[0, :3].tolist() == [0, 255, 0] and grey.max() == 255


@pytest.mark.parametrize(
    ("fmt", "ext", "mode"),
    [
        ("AVIF", ".avif", "RGB"),
        ("PPM", ".ppm", "RGB"),
        ("PPM", ".pgm", "L"),
        ("PPM", ".pbm", "1"),
        ("ICO", ".ico", "RGBA"),
        ("HEIF", ".heic", "RGB"),
    ],
)
def test_more_formats_load_and_are_listed(tmp_path, fmt, ext, mode):
    picture = Image.new("RGB", (24, 16), (250, 250, 250))
    picture.paste((10, 10, 10), (0, 0, 12, 16))
    path = tmp_path / f"picture{ext}"
    options = {"sizes": [(24, 16)]} if fmt == "ICO" else {}
    path.write_bytes(_encoded(picture.convert(mode), fmt, **options))
    assert ext in IMAGE_EXTENSIONS and is_image_name(path)
    image = load_image(path)
    assert image.mode == "RGB" and image.size == (24, 16)
    left, right = image.getpixel((2, 8)), image.getpixel((20, 8))
    assert max(left) < 60 and min(right) > 200


def test_ico_gives_its_largest_image():
    icon = Image.new("RGBA", (256, 256), (0, 200, 0, 255))
    data = _encoded(icon, "ICO", sizes=[(16, 16), (48, 48), (256, 256)])
    assert decode_image(data)[1] == (256, 256)


def test_svg_is_rendered_onto_white(tmp_path):
    path = tmp_path / "drawing.svg"
    path.write_text(
        '<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">'
        '<rect width="20" height="20" fill="#ff0000"/></svg>'
    )
    assert is_image_name(path)
    image, size = decode_image(path)
    assert size == (40, 20) and image.mode == "RGB"
    assert image.getpixel((5, 5)) == (255, 0, 0) and image.getpixel((35, 5)) == (255, 255, 255)
    with pytest.raises(ImageLoadError) as err:
        load_image(b'<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000"/>')
    assert err.value.reason == "too_large"
    with pytest.raises(ImageLoadError):
        load_image(b"<svg xmlns='http://www.w3.org/2000/svg' width='4' height='4'><rect")


@pytest.mark.parametrize("name", ["A.JPEG", "b.Jpg", "c.PNG", "d.TiFF", "e.HEIC", "f.Svg"])
def test_extensions_are_case_insensitive(name):
    assert is_image_name(Path(name))


def test_exif_orientation_is_applied(tmp_path):
    upright = Image.new("RGB", (30, 20), (255, 255, 255))
    upright.paste((0, 0, 0), (0, 0, 10, 20))  # black band on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # stored turned a quarter anticlockwise; viewers turn it back
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    image, size = decode_image(_encoded(stored, "PNG", exif=exif.tobytes()))
    assert size == (30, 20) and image.size == (30, 20)
    assert pixel_hash(image) == pixel_hash(upright)


def test_first_frame_of_animated_webp_and_multipage_tiff():
    frames = [Image.new("RGB", (8, 8), colour) for colour in ((250, 0, 0), (0, 0, 250))]
    for fmt, options in (("WEBP", {"lossless": True}), ("TIFF", {})):
        data = _encoded(frames[0], fmt, save_all=True, append_images=frames[1:], **options)
        assert load_image(data).getpixel((4, 4)) == (250, 0, 0)


def test_formats_outside_the_list_are_refused():
    # Pillow reads TGA and would run Ghostscript for EPS; neither is decoded, whatever
    # the file is called
    with pytest.raises(ImageLoadError):
        load_image(_encoded(Image.new("RGB", (8, 8)), "TGA"))
    with pytest.raises(ImageLoadError):
        load_image(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")


def test_broken_exif_does_not_make_a_picture_corrupt():
    jpeg = _encoded(Image.new("RGB", (30, 20), (10, 120, 200)), "JPEG")
    payload = b"Exif\0\0MM\0*\0\0\0\x08\xff\xff\0"
    segment = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big")
    image, size = decode_image(jpeg[:2] + segment + payload + jpeg[2:])
    assert size == (30, 20)


def test_every_mode_is_measured():
    modes = ["1", "L", "LA", "La", "P", "PA", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "LAB"]
    modes += ["HSV", "I", "I;16", "I;16L", "I;16B", "I;16N", "F"]
    for mode in modes:
        for size in ((1, 1), (3, 500), (500, 3)):
            image = Image.new(mode, size)
            rgb = flatten_to_rgb(image)
            assert rgb.mode == "RGB" and rgb.size == size
            stats = image_stats(image, full=image)
            assert all(math.isfinite(v) for v in stats.values() if isinstance(v, float))
            assert shrink(image, 64).size[0] <= size[0]
            assert Image.open(io.BytesIO(make_thumbnail(image, 64))).mode in ("L", "RGB")
            trim_borders(image)
            assert abs(sum(colour_histogram(image)) - 1) < 1e-3


def test_codec_runtime_errors_are_load_errors():
    data = bytearray(_encoded(Image.new("RGB", (16, 16), (1, 2, 3)), "AVIF"))
    data[-40:] = bytes(40)  # the coded picture zeroed
    with pytest.raises(ImageLoadError):
        load_image(bytes(data))
