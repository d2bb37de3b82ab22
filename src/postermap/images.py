"""The one place images are opened, so every stage treats bad files the same way.

``load_image`` returns an RGB image with transparency flattened onto white (what an
ImageNet model expects and what a thumbnail should show) and turns every decoder failure
into :class:`ImageLoadError` with a reason a person can read. Images whose declared size
exceeds ``max_pixels`` are refused before any pixel is decoded (decompression bombs).
"""

from __future__ import annotations

import hashlib
import io
import math
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
#: Decoder errors that mean "this file is not a usable image" rather than a bug of ours.
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError)

# Truncated files must fail loudly, never decode to a half-grey picture.
ImageFile.LOAD_TRUNCATED_IMAGES = False


class ImageLoadError(Exception):
    """A file could not be decoded as an image. ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def load_image(source: Path | bytes, max_pixels: int = 120_000_000) -> Image.Image:
    """Decode ``source`` (a path or the file's bytes) to a fully loaded RGB image.

    Args:
        source: file path, or the bytes already read (ingest hashes them first).
        max_pixels: refuse images with more pixels than this, before decoding them.

    Returns:
        An RGB ``PIL.Image``; animated images give their first frame.

    Raises:
        ImageLoadError: with reason ``too_large``, ``truncated`` or ``undecodable``.
    """
    return decode_image(source, max_pixels)[0]


def decode_image(
    source: Path | bytes, max_pixels: int = 120_000_000, at_least: int | None = None
) -> tuple[Image.Image, tuple[int, int]]:
    """Like :func:`load_image`, plus the file's own (width, height).

    With ``at_least``, a JPEG is decoded at the smallest of 1/1, 1/2, 1/4, 1/8 scale whose
    longer side still has ``at_least`` pixels (libjpeg's DCT scaling, ``Image.draft``):
    a 2000x3000 poster wanted for a 256 px thumbnail decodes at 1/8 the pixels and several
    times faster. The returned image is then smaller than the file's size.
    """
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with warnings.catch_warnings():
            # Pillow warns (rather than raises) between 1x and 2x its own bomb limit; we
            # apply our own limit below, so its warning is noise.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(stream) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageLoadError(
                        "too_large",
                        f"{width}x{height} = {width * height:,} pixels exceeds max_pixels "
                        f"{max_pixels:,} (raise max_pixels if the image is genuine)",
                    )
                image.seek(0)
                if at_least is not None and image.format == "JPEG":
                    scale = at_least / max(width, height)
                    image.draft(
                        "RGB", (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale)))
                    )
                image.load()
                return flatten_to_rgb(image), (width, height)
    except ImageLoadError:
        raise
    except DECODE_ERRORS as err:
        message = str(err) or type(err).__name__
        reason = "truncated" if "truncated" in message.lower() else "undecodable"
        raise ImageLoadError(reason, f"{type(err).__name__}: {message}") from err


def flatten_to_rgb(
    image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)
) -> Image.Image:
    """RGB copy of ``image``; any alpha (including palette transparency) over ``background``."""
    if image.mode == "RGB":
        return image.copy()
    has_alpha = image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    )
    if not has_alpha:
        return image.convert("RGB")
    rgba = image.convert("RGBA")
    canvas = Image.new("RGBA", rgba.size, background + (255,))
    canvas.alpha_composite(rgba)
    return canvas.convert("RGB")


def pixel_hash(image: Image.Image) -> str:
    """Hash of the decoded pixels, so PNG and lossless WebP of one picture compare equal."""
    digest = hashlib.sha256()
    digest.update(f"{image.mode}:{image.width}x{image.height}:".encode())
    digest.update(image.tobytes())
    return digest.hexdigest()[:32]


def content_hash(data: bytes) -> str:
    """Stable id of a file's bytes (128 bits of SHA-256, hex)."""
    return hashlib.sha256(data).hexdigest()[:32]


def shrink(image: Image.Image, size: int) -> Image.Image:
    """A copy of ``image`` shrunk to fit ``size`` x ``size`` (never enlarged)."""
    thumb = image.copy()
    # Bicubic (Pillow's is a proper antialiasing filter when shrinking) costs 0.6 of
    # Lanczos; the difference is invisible at thumbnail size and in the features.
    thumb.thumbnail((size, size), Image.Resampling.BICUBIC, reducing_gap=3.0)
    return thumb


def make_thumbnail(image: Image.Image, size: int) -> bytes:
    """JPEG bytes of ``image`` shrunk to fit ``size`` x ``size`` (never enlarged)."""
    return encode_jpeg(shrink(image, size))


def encode_jpeg(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90, optimize=False)
    return out.getvalue()


def sniff_image(data: bytes) -> tuple[str | None, str | None]:
    """Cheap check of downloaded bytes, before any decoding: (format, problem).

    Identifies the format from the header (Pillow's plugins) and, for the common formats,
    checks that the file ends the way a complete file ends, which catches bodies cut off by
    a dropped connection. ``problem`` is ``empty``, ``not_an_image`` or ``truncated``. The
    ingest stage still fully decodes every image; this only keeps junk out of the store.
    """
    if not data:
        return None, "empty"
    try:
        with Image.open(io.BytesIO(data)) as image:
            fmt = (image.format or "").lower() or None
    except DECODE_ERRORS:
        return None, "not_an_image"
    tail = data[-32:].rstrip(b"\0")
    complete = {
        "jpeg": lambda: tail.endswith(b"\xff\xd9"),
        "png": lambda: b"IEND" in data[-12:],
        "gif": lambda: tail.endswith(b"\x3b"),
        "webp": lambda: len(data) >= 8 + int.from_bytes(data[4:8], "little"),
    }
    check = complete.get(fmt or "")
    if check is not None and not check():
        return fmt, "truncated"
    return fmt, None


#: Version of :func:`image_stats`; part of ingest's part digests so a change re-inspects.
STATS_VERSION = 6


def image_stats(image: Image.Image, full: Image.Image | None = None) -> dict[str, float | str]:
    """Cheap measurements the clean stage judges "boring" images and near duplicates by.

    ``image`` may be the thumbnail (every measure but ``row_repeat`` works on small copies
    anyway, and shrinking once is cheaper than five times); ``full`` is the full-resolution
    image for ``row_repeat`` (default: ``image``). At ingest this halves the time per image.

    * ``phash``: 64-bit perceptual hash (imagehash) of the image with uniform borders
      trimmed, so a letterboxed copy hashes like its original.
    * ``gray_std``: contrast of a 64x64 greyscale copy; ~0 for a solid card.
    * ``detail``: mean absolute Laplacian of that copy; ~0 for smooth images.
    * ``edge_p99``: 99th percentile of the absolute Laplacian of a 128x128 copy (smaller
      images at their own size): the
      sharpest edges anywhere. Low for solids, gradients and blurry upscales; high for a
      minimalist poster, whose few crisp shapes and letters are enough.
    * ``colours``: distinct colours in a 32x32 copy quantised to 5 bits per channel.
    * ``row_repeat``: among full-resolution rows (and columns) that are not uniform, the
      share identical to their neighbour: ~0 for photographs, ~1 for pixel-block upscales.
    * ``colour_hist``: 48-bin hue x saturation histogram (12 x 4, value ignored) of a
      32x32 copy, summing to 1: what "these share a colour scheme" is measured with.
    """
    import imagehash

    gray = image.convert("L")
    g64 = np.asarray(gray.resize((64, 64), Image.Resampling.BILINEAR), dtype=np.float32)
    # never enlarge for the edge measure: an upscaled small image has soft edges it
    # does not have at its own size
    side = min(128, image.width, image.height)
    g128 = np.asarray(gray.resize((side, side), Image.Resampling.BILINEAR), dtype=np.float32)
    small_image = image.resize((32, 32), Image.Resampling.BILINEAR)
    small = np.asarray(small_image)
    quantised = (small >> 3).reshape(-1, 3).astype(np.int32)
    colours = len(np.unique(quantised[:, 0] * 1024 + quantised[:, 1] * 32 + quantised[:, 2]))
    full_gray = np.asarray((full or image).convert("L"), dtype=np.int16)
    return {
        "phash": str(imagehash.phash(trim_borders(image))),
        "gray_std": float(g64.std()),
        "detail": float(_laplacian(g64).mean()),
        "edge_p99": float(np.percentile(_laplacian(g128), 99, method="linear")),
        "colours": float(colours),
        "row_repeat": float((_repeat_share(full_gray) + _repeat_share(full_gray.T)) / 2),
        "colour_hist": colour_histogram(small_image),
    }


def colour_histogram(image: Image.Image) -> list[float]:
    """Hue x saturation histogram (12 x 4 bins) of a 32x32 copy, normalised to sum 1."""
    if image.size != (32, 32):
        image = image.resize((32, 32), Image.Resampling.BILINEAR)
    hsv = np.asarray(image.convert("HSV"))
    hue = hsv[..., 0].astype(np.int32) * 12 // 256
    sat = hsv[..., 1].astype(np.int32) * 4 // 256
    counts = np.bincount((hue * 4 + sat).ravel(), minlength=48).astype(np.float32)
    return (counts / counts.sum()).round(4).tolist()


def trim_borders(image: Image.Image, tolerance: int = 12) -> Image.Image:
    """``image`` without uniform margins of its corner colour (letterbox bars, frames)."""
    from PIL import ImageChops

    background = Image.new(image.mode, image.size, image.getpixel((0, 0)))
    diff = (
        ImageChops.difference(image, background)
        .convert("L")
        .point(lambda v: 255 if v > tolerance else 0)
    )
    box = diff.getbbox()
    if box is None:
        return image
    width, height = box[2] - box[0], box[3] - box[1]
    if width < image.width * 0.3 or height < image.height * 0.3:
        return image  # mostly background: trimming would hash just a motif
    return image.crop(box)


def _laplacian(a: np.ndarray) -> np.ndarray:
    return np.abs(4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:])


def _repeat_share(a: np.ndarray) -> float:
    varied = a.max(axis=1) != a.min(axis=1)
    same = (a[1:] == a[:-1]).all(axis=1) & varied[1:]
    return float(same.sum() / max(int(varied[1:].sum()), 1))
