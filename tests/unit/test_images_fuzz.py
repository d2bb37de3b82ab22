"""Property-based tests of postermap.images over generated and broken image files.

The strategies and the mutation fuzzer live in tests/fuzzing.py (benchmarks/fuzz.py runs
the same generators at 10,000 files). Here each property gets a bounded, derandomized
number of examples, so the unit suite stays fast and every run tries the same files.
"""

from __future__ import annotations

import io
import math
import random
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from postermap.images import (
    ImageLoadError,
    decode_image,
    image_stats,
    pixel_hash,
    shrink,
    sniff_image,
)
from tests.fuzzing import (
    FORMATS,
    STORE,
    UPRIGHT,
    FileSpec,
    encode,
    file_specs,
    mutate,
    reference_decode,
    render,
    store_array,
)

FAST = settings(
    max_examples=40,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _measures_are_sane(stats: dict) -> None:
    """The documented ranges of image_stats, all finite."""
    for key in ("gray_std", "detail", "edge_p99", "colours", "row_repeat"):
        assert math.isfinite(stats[key]), key
    assert 0 <= stats["gray_std"] <= 127.5
    assert 0 <= stats["detail"] <= 2040 and 0 <= stats["edge_p99"] <= 2040
    assert 1 <= stats["colours"] <= 1024
    assert 0 <= stats["row_repeat"] <= 1
    assert len(stats["colour_hist"]) == 48 and abs(sum(stats["colour_hist"]) - 1) < 2e-3
    assert len(stats["phash"]) == 16 and int(stats["phash"], 16) >= 0


@FAST
@given(spec=file_specs(), seed=st.integers(0, 2**32 - 1), mutated=st.booleans())
def test_decode_gives_rgb_or_a_load_error(spec, seed, mutated):
    data = encode(spec).data
    if mutated:
        rng = random.Random(seed)
        data, _ = mutate(data, rng, donor=encode(FileSpec("png", "RGB", (5, 4), seed=seed)).data)
    sniff_image(data)  # never raises
    try:
        image, size = decode_image(data, at_least=64)
    except ImageLoadError as err:
        assert err.reason in {"too_large", "truncated", "undecodable"} and err.detail
        return
    assert image.mode == "RGB" and min(image.size) >= 1
    assert min(size) >= 1
    _measures_are_sane(image_stats(shrink(image, 64), full=image))


@settings(FAST, max_examples=60)
@given(spec=file_specs())
def test_every_generated_file_decodes_upright(spec):
    generated = encode(spec)
    assert reference_decode(generated.data).decodes, "the generator wrote a broken file"
    image, size = decode_image(generated.data)
    assert image.mode == "RGB"
    assert size == generated.size == image.size


@FAST
@given(spec=file_specs())
def test_measures_are_finite_and_in_range(spec):
    image = decode_image(encode(spec).data)[0]
    _measures_are_sane(image_stats(shrink(image, 256), full=image))


@FAST
@given(spec=file_specs(formats=("png", "bmp", "gif")), side=st.integers(1, 300))
def test_thumbnails_never_enlarge(spec, side):
    image = decode_image(encode(spec).data)[0]
    thumb = shrink(image, side)
    assert 1 <= thumb.width <= min(image.width, max(side, 1))
    assert 1 <= thumb.height <= min(image.height, max(side, 1))
    if thumb.size != image.size:
        assert max(thumb.size) == side
        # aspect kept to within the rounding of one pixel on either side
        error = abs(thumb.width * image.height - thumb.height * image.width)
        assert error <= max(image.size)


#: Formats and options whose decoded pixels do not depend on how the picture was turned.
LOSSLESS = file_specs(formats=("png", "tiff", "webp"), orientations=False).filter(
    lambda s: (
        dict(s.options).get("lossless", True) and dict(s.options).get("compression") != "tiff_jpeg"
    )
)


@settings(FAST, max_examples=60)
@given(spec=LOSSLESS, orientation=st.integers(2, 8))
def test_exif_rotated_copies_hash_like_the_upright_picture(spec, orientation):
    upright = encode(spec)
    turned = encode(replace(spec, orientation=orientation))
    image, size = decode_image(turned.data)
    assert size == spec.size
    assert pixel_hash(image) == pixel_hash(decode_image(upright.data)[0])


@FAST
@given(
    fmt_mode=st.sampled_from(
        [("png", "I;16"), ("png", "I;16B"), ("png", "RGB;16"), ("png", "LA;16")]
        + [("tiff", "I;16"), ("tiff", "I;16B"), ("ppm", "I;16"), ("ppm", "RGB;16")]
    ),
    size=st.tuples(st.integers(8, 80), st.integers(8, 80)),
    seed=st.integers(0, 1000),
)
def test_16bit_full_contrast_is_not_low_contrast(fmt_mode, size, seed):
    fmt, mode = fmt_mode
    spec = FileSpec(fmt, mode, size, picture="gradient", seed=seed)
    eight_bit = FileSpec("png", "L", size, picture="gradient", seed=seed)
    stats = image_stats(decode_image(encode(spec).data)[0])
    reference = image_stats(decode_image(encode(eight_bit).data)[0])
    assert stats["gray_std"] > 20
    assert abs(stats["gray_std"] - reference["gray_std"]) < 2


@pytest.mark.parametrize("orientation", range(2, 9))
def test_store_array_twins_pillow(orientation):
    picture = render("noise", (5, 3), seed=orientation)
    as_image = Image.fromarray(np.rint(picture * 255).astype(np.uint8))
    stored = as_image.transpose(STORE[orientation])
    twin = Image.fromarray(np.rint(store_array(picture, orientation) * 255).astype(np.uint8))
    assert stored.tobytes() == twin.tobytes()
    assert stored.transpose(UPRIGHT[orientation]).tobytes() == as_image.tobytes()


def test_every_format_is_generated():
    # the generator covers every format postermap lists, AVIF and HEIC included
    assert {"png", "jpeg", "gif", "webp", "bmp", "tiff", "ppm", "ico", "svg"} <= set(FORMATS)
    assert {"avif", "heic"} <= set(FORMATS)
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "PNG")
    assert reference_decode(out.getvalue()).decodes


@settings(FAST, max_examples=200)
@given(
    values=st.lists(st.integers(0, 2040), min_size=0, max_size=3000),
    offset=st.integers(0, 3),
    q=st.sampled_from([0.0, 50.0, 99.0, 100.0]),
)
def test_percentile_of_counts_is_numpys(values, offset, q):
    """The edge percentiles are read off a histogram; they must be np.percentile's floats
    (float32 Laplacian values, the linear method), or measures would shift between runs."""
    from postermap.images import _percentile_of_counts

    array = np.array(values, np.float32)
    kept = array[array >= offset]
    counts = np.bincount(array.astype(np.int32), minlength=1)[offset:]
    expected = float(np.percentile(kept, q, method="linear")) if kept.size else 0.0
    assert _percentile_of_counts(counts, q, offset=offset) == expected
