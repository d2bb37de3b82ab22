"""Drawing a mosaic cell from a thumbnail: scaled JPEG decodes, and every other file."""

from __future__ import annotations

import io
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image


def _gradient(width: int, height: int, mode: str = "RGB") -> Image.Image:
    y, x = np.mgrid[0:height, 0:width]
    rgb = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], -1).astype(np.uint8)
    return Image.fromarray(rgb, "RGB").convert(mode)


@pytest.mark.parametrize(
    ("mode", "cell"), [("RGB", (128, 192)), ("L", (128, 192)), ("RGB", (32, 48))]
)
def test_cells_from_scaled_jpeg_decodes_look_like_a_lanczos_resize(tmp_path, mode, cell):
    from postermap.mosaic import cell_pixels_of, place_in_cell

    thumb = _gradient(171, 256, mode)
    path = tmp_path / "thumb.jpg"
    thumb.save(path, quality=90)
    pixels = cell_pixels_of(str(path), *cell, [0, 0, 0])
    assert pixels.shape == (cell[1], cell[0], 3) and pixels.dtype == np.uint8
    with Image.open(path) as opened:
        reference = place_in_cell(np.asarray(opened.convert("RGB")), True, *cell, [0, 0, 0])
    assert np.abs(pixels.astype(int) - reference).mean() < 3


def test_cells_of_other_files_and_shapes(tmp_path):
    from postermap.images import DECODE_ERRORS
    from postermap.mosaic import cell_pixels_of

    square = tmp_path / "square.png"  # not a JPEG: Pillow draws it
    _gradient(200, 200).save(square)
    pixels = cell_pixels_of(str(square), 128, 192, [10, 20, 30])
    assert (pixels[:32] == [10, 20, 30]).all() and (pixels[-32:] == [10, 20, 30]).all()
    assert pixels[32:160].std() > 10  # the picture, fitted in the middle
    jpeg = tmp_path / "square.jpg"
    _gradient(200, 200).save(jpeg, quality=90)
    fitted = cell_pixels_of(str(jpeg), 128, 192, [10, 20, 30])
    assert np.abs(fitted.astype(int) - pixels).mean() < 3
    tiny = tmp_path / "tiny.jpg"  # smaller than the cell: enlarged, as before
    _gradient(20, 30).save(tiny, quality=90)
    assert cell_pixels_of(str(tiny), 128, 192, [0, 0, 0]).shape == (192, 128, 3)
    for name, data in (("cut.jpg", jpeg.read_bytes()[:400]), ("junk.jpg", b"\xff\xd8 junk")):
        broken = tmp_path / name
        broken.write_bytes(data)
        with pytest.raises(DECODE_ERRORS) as raised:
            cell_pixels_of(str(broken), 128, 192, [0, 0, 0])
        if name == "junk.jpg":  # Pillow's message, naming the file (not a memory address)
            assert str(broken) in str(raised.value)


@settings(max_examples=150, derandomize=True, database=None, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), cell=st.sampled_from([(128, 192), (32, 48), (64, 64)]))
def test_a_broken_thumbnail_gives_a_cell_or_a_decode_error(tmp_path_factory, seed, cell):
    """The tile stage leaves a cell blank on DECODE_ERRORS only: anything else the scaled
    decoder raised on a damaged JPEG would stop the run."""
    from postermap.images import DECODE_ERRORS
    from postermap.mosaic import cell_pixels_of
    from tests.fuzzing import mutate

    rng = random.Random(seed)
    buffer = io.BytesIO()
    _gradient(171, 256).save(buffer, "JPEG", quality=90)
    data, _ = mutate(buffer.getvalue(), rng)
    path = tmp_path_factory.mktemp("cells") / "thumb.jpg"
    path.write_bytes(data)
    try:
        pixels = cell_pixels_of(str(path), *cell, [0, 0, 0])
    except DECODE_ERRORS:
        return
    assert pixels.shape == (cell[1], cell[0], 3) and pixels.dtype == np.uint8
