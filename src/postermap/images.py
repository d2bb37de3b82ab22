"""The one place images are opened, so every stage treats bad files the same way.

``load_image`` returns an RGB image that every later step can measure without caring
where it came from:

* **upright**: the EXIF orientation (1-8) is applied on decode, so the thumbnail, the
  hashes and the embedding all see the picture the way a viewer shows it;
* **first frame** of animated or multi-page files (GIF, APNG, WebP, TIFF, AVIF, HEIF);
  for ICO the largest image in the file;
* **8 bits per channel**: 16-bit images are scaled by their type's range, not clipped
  (see :func:`flatten_to_rgb` for the rule, also for 32-bit and float images);
* **opaque**: transparency (alpha, palette transparency, a PNG colour key) is composited
  onto white, what an ImageNet model expects and what a thumbnail should show.

Every decoder failure becomes :class:`ImageLoadError` with a reason a person can read.
Images whose declared size exceeds ``max_pixels`` are refused before any pixel is decoded
(decompression bombs). Only the formats in :data:`IMAGE_EXTENSIONS` are ever decoded, also
when a file's name says something else: Pillow knows more formats, some of which run
external programs (EPS runs Ghostscript), and a download's bytes are not to be trusted.

Every function here is defined for every size from 1x1 up and for every mode Pillow
produces; the measures of :func:`image_stats` are finite for all of them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import logging
import math
import re
import warnings
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageFilter, UnidentifiedImageError, features

log = logging.getLogger(__name__)

try:  # HEIC/HEIF: libheif through pillow-heif (a dependency; optional so a bare Pillow works)
    import pillow_heif

    pillow_heif.register_heif_opener()
    _HEIF = True
except ImportError:  # pragma: no cover - pillow-heif is a declared dependency
    _HEIF = False

#: Pillow plugins we decode with; every other Pillow format is refused as undecodable.
PILLOW_FORMATS: tuple[str, ...] = (
    "JPEG",  # also opens multi-picture (MPO) camera JPEGs
    "PNG",  # also APNG
    "GIF",
    "WEBP",
    "BMP",
    "TIFF",
    "PPM",  # PBM, PGM, PPM, PNM and PFM (float)
    "ICO",
    *(("AVIF",) if features.check_module("avif") else ()),
    *(("HEIF",) if _HEIF else ()),
)
#: SVG is rendered by libvips (librsvg), never by Pillow.
_SVG = importlib.util.find_spec("pyvips") is not None

#: File name endings (lower case; names compare case-insensitively) of what loads.
IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".apng", ".webp", ".gif", ".bmp", ".tif", ".tiff"}
    | {".ppm", ".pgm", ".pbm", ".pnm", ".pfm", ".ico"}
    | ({".avif"} if "AVIF" in PILLOW_FORMATS else set())
    | ({".heic", ".heif"} if _HEIF else set())
    | ({".svg"} if _SVG else set())
)

#: What an unidentified file is not, for its reason.
_FORMAT_NAMES = ", ".join(
    {"PPM": "PBM/PGM/PPM/PFM", "WEBP": "WebP"}.get(name, name) for name in PILLOW_FORMATS
) + (" or SVG" if _SVG else "")

#: Decoder errors that mean "this file is not a usable image" rather than a bug of ours.
#: Kept explicit and narrow: anything else raised while decoding propagates, so a bug of
#: ours (or a new failure mode of a decoder) is seen rather than filed as a corrupt image.
DECODE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,  # includes UnidentifiedImageError and "image file is truncated"
    SyntaxError,  # Pillow's "not a PNG/GIF/... file"
    ValueError,
    Image.DecompressionBombError,
    EOFError,
)

#: Modules whose codecs report bad data as ``RuntimeError`` (libavif in Pillow's AVIF
#: plugin: "Failed to decode image: Missing or empty image item"; libheif in pillow-heif).
#: A ``RuntimeError`` counts as a decoder error only when raised from one of them, so a
#: ``RuntimeError`` of anything else still propagates.
CODEC_RUNTIME_ERROR_MODULES = ("PIL.AvifImagePlugin", "pillow_heif")

# Truncated files must fail loudly, never decode to a half-grey picture.
ImageFile.LOAD_TRUNCATED_IMAGES = False

#: EXIF orientation -> the transposition that makes the stored pixels upright (the mapping
#: of ``ImageOps.exif_transpose``).
_ORIENTATION = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SWAPS_SIDES = frozenset(
    {
        Image.Transpose.TRANSPOSE,
        Image.Transpose.TRANSVERSE,
        Image.Transpose.ROTATE_90,
        Image.Transpose.ROTATE_270,
    }
)
_EXIF_ORIENTATION = 0x0112
#: JPEG stores sides of at most this many pixels.
_JPEG_MAX_SIDE = 65_535
#: An SVG document: optional byte-order mark, XML declaration, comments and doctype, then
#: an <svg> root element (an HTML page with an inline <svg> is not one).
_SVG_HEAD = re.compile(
    rb"^(?:\xef\xbb\xbf)?\s*(?:<\?xml[^>]*>\s*)?(?:(?:<!--.*?-->|<!DOCTYPE[^>]*>)\s*)*<svg[\s>/]",
    re.DOTALL,
)


class ImageLoadError(Exception):
    """A file could not be decoded as an image. ``reason`` is a short machine-readable code."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def is_image_name(path: Path | str) -> bool:
    """Whether ``path`` has an extension we decode (``.JPG`` counts like ``.jpg``)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


def load_image(source: Path | bytes, max_pixels: int = 120_000_000) -> Image.Image:
    """Decode ``source`` (a path or the file's bytes) to a fully loaded, upright RGB image.

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
    """Like :func:`load_image`, plus the picture's own upright (width, height).

    The size is the file's, after EXIF orientation: a portrait photo stored sideways with
    orientation 6 reports (height, width) of its stored pixels, like the image returned.

    With ``at_least``, a JPEG is decoded at the smallest of 1/1, 1/2, 1/4, 1/8 scale whose
    longer side still has ``at_least`` pixels (libjpeg's DCT scaling, ``Image.draft``):
    a 2000x3000 poster wanted for a 256 px thumbnail decodes at 1/8 the pixels and several
    times faster. The returned image is then smaller than the reported size.
    """
    image, size, _ = decode_with_alpha(source, max_pixels, at_least)
    return image, size


def decode_with_alpha(
    source: Path | bytes, max_pixels: int = 120_000_000, at_least: int | None = None
) -> tuple[Image.Image, tuple[int, int], Image.Image | None]:
    """:func:`decode_image` plus the transparency it composited onto white: an ``L`` image
    of the returned image's size, or None when the picture is opaque.

    Ingest measures a transparent picture also as it would look on black: a white shape
    on a transparent background is invisible on white but is no blank card.
    """
    stream = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        image, declared = _decode_with_pillow(stream, max_pixels, at_least)
    except ImageLoadError:
        raise
    except UnidentifiedImageError as err:
        head = source[:4096] if isinstance(source, bytes) else _read_head(Path(source))
        if _SVG and _SVG_HEAD.match(head):
            data = source if isinstance(source, bytes) else Path(source).read_bytes()
            return _decode_svg(data, max_pixels)
        # Pillow's message names the stream object (a memory address): say what was tried
        raise ImageLoadError("undecodable", f"not a {_FORMAT_NAMES} file") from err
    except DECODE_ERRORS as err:
        raise _load_error(err) from err
    except RuntimeError as err:
        if not _is_codec_failure(err):
            raise
        raise _load_error(err) from err
    drafted = image.format in ("JPEG", "MPO") and image.size != declared
    method = _orientation(image)
    # Pure pixel work on a loaded image: a failure from here on is a bug, not a bad file.
    # Flattened before turning: a transposed copy loses ``info`` (palette transparency).
    alpha = alpha_band(image)
    rgb = _as_rgb(image)
    if method is not None:
        rgb = rgb.transpose(method)
        alpha = alpha.transpose(method) if alpha is not None else None
        if method in _SWAPS_SIDES:
            declared = (declared[1], declared[0])
    # Only a reduced-scale JPEG is smaller than its file; every other decoded image is the
    # file's own size (Pillow's TIFF decoder may already have turned it upright).
    return rgb, declared if drafted else rgb.size, alpha


def alpha_band(image: Image.Image) -> Image.Image | None:
    """The opacity of ``image`` as an ``L`` image, or None when it is fully opaque (or has
    no transparency at all). Any mode; 16-bit colour keys are left out (they only ever
    hide whole grey levels)."""
    if image.mode not in ("RGBA", "LA", "PA", "RGBa", "La") and not (
        "transparency" in image.info and image.mode in ("1", "L", "P", "RGB")
    ):
        return None
    if image.mode == "La":
        alpha = image.getchannel("A")
    else:
        alpha = (image if image.mode == "RGBA" else image.convert("RGBA")).getchannel("A")
    return None if alpha.getextrema() == (255, 255) else alpha


def _decode_with_pillow(
    stream: Path | io.BytesIO, max_pixels: int, at_least: int | None
) -> tuple[Image.Image, tuple[int, int]]:
    """Open, check the declared size, pick the first frame and load it; the file is closed
    on return (the loaded pixels stay usable)."""
    with warnings.catch_warnings():
        # Pillow warns (rather than raises) between 1x and 2x its own bomb limit; we apply
        # our own limit below, so its warning is noise. Its "image was not the expected
        # size" and EXIF warnings describe files that still decode.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)
        with Image.open(stream, formats=PILLOW_FORMATS) as image:
            width, height = image.size
            _check_pixels(width, height, max_pixels)
            image.seek(0)  # first frame (not n_frames: that would read every frame)
            if at_least is not None and image.format in ("JPEG", "MPO"):
                scale = at_least / max(width, height)
                image.draft(
                    "RGB", (max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale)))
                )
            image.load()
            return image, (width, height)


def _check_pixels(width: int, height: int, max_pixels: int) -> None:
    if width * height > max_pixels:
        raise ImageLoadError(
            "too_large",
            f"{width}x{height} = {width * height:,} pixels exceeds max_pixels "
            f"{max_pixels:,} (raise max_pixels if the image is genuine)",
        )


def _is_codec_failure(err: BaseException) -> bool:
    """Whether ``err`` is a ``RuntimeError`` raised by a codec that reports bad data so
    (see :data:`CODEC_RUNTIME_ERROR_MODULES`): judged by the innermost Python frame."""
    if not isinstance(err, RuntimeError):
        return False
    module, tb = "", err.__traceback__
    while tb is not None:
        module, tb = tb.tb_frame.f_globals.get("__name__", ""), tb.tb_next
    return module.startswith(CODEC_RUNTIME_ERROR_MODULES)


def _describe(err: BaseException) -> str:
    return f"{type(err).__name__}: {str(err) or type(err).__name__}"


def _load_error(err: BaseException) -> ImageLoadError:
    """The :class:`ImageLoadError` for a decoder exception: reason from what it says."""
    detail = _describe(err)
    if isinstance(err, Image.DecompressionBombError):
        reason = "too_large"
    elif "truncated" in detail.lower() or isinstance(err, EOFError):
        reason = "truncated"
    else:
        reason = "undecodable"
    return ImageLoadError(reason, detail)


def _read_head(path: Path, n: int = 4096) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _orientation(image: Image.Image) -> Image.Transpose | None:
    """The transposition that makes ``image`` upright by its EXIF orientation, if any.

    A broken EXIF block does not make a picture unusable (browsers show it as stored), so
    an orientation that cannot be read counts as 1. Pillow's TIFF decoder and pillow-heif
    apply the orientation themselves and drop the tag, so nothing is turned twice.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "Corrupt EXIF data": handled here
            orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    except DECODE_ERRORS as err:
        log.debug("unreadable EXIF ignored: %s", _describe(err))
        return None
    return _ORIENTATION.get(orientation) if isinstance(orientation, int) else None


@cache
def _vips():
    """pyvips with an SVG loader, imported on first use (it loads libvips)."""
    import pyvips

    if not pyvips.type_find("VipsOperation", "svgload_buffer"):
        raise ImageLoadError("undecodable", "this libvips has no SVG loader (librsvg)")
    return pyvips


def _decode_svg(
    data: bytes, max_pixels: int
) -> tuple[Image.Image, tuple[int, int], Image.Image | None]:
    """Render an SVG document at its own size (librsvg through libvips) onto white.

    The document is rendered from memory, without a base location, so it cannot pull in
    other local files.
    """
    pyvips = _vips()
    try:
        vimage = pyvips.Image.svgload_buffer(data)
        _check_pixels(vimage.width, vimage.height, max_pixels)
        vimage = vimage.colourspace("srgb").cast("uchar")
        if vimage.bands == 3:
            vimage = vimage.bandjoin(255)
        pixels = vimage.write_to_memory()
    except pyvips.Error as err:
        message = " ".join(str(err).split())
        raise ImageLoadError("undecodable", f"SVG: {message}") from err
    rgba = Image.frombuffer("RGBA", (vimage.width, vimage.height), pixels, "raw", "RGBA", 0, 1)
    return flatten_to_rgb(rgba), (vimage.width, vimage.height), alpha_band(rgba)


def flatten_to_rgb(
    image: Image.Image, background: tuple[int, int, int] = (255, 255, 255)
) -> Image.Image:
    """RGB copy of ``image`` (any Pillow mode); transparency composited over ``background``.

    Transparency is an alpha band (``RGBA``, ``LA``, ``PA`` and the premultiplied
    ``RGBa``/``La``), a palette's transparent entries, or a colour key (PNG ``tRNS``).

    High bit depths become 8 bits without clipping:

    * unsigned 16-bit modes (``I;16``, ``I;16L``, ``I;16B``, ``I;16N``) by the type's
      range, 0..65535 -> 0..255. The same picture at 8 and 16 bits gives the same pixels
      (so it is found as a duplicate), and a nearly solid 16-bit card stays nearly solid
      instead of being stretched into a high-contrast picture;
    * 32-bit integer ``I`` whose values all lie in 0..65535 (how Pillow opens 16-bit PGM
      files) likewise;
    * float ``F`` with all values in 0..1 (the usual convention) by that range; other ``F``
      and ``I`` images by their actual range, min..max -> 0..255 (a constant one is black).
      Non-finite floats do not count for the range: NaN and -inf become 0, +inf 255.
    """
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        image = _to_8bit(image)
    elif image.mode == "La":
        image = _unpremultiply_la(image)
    has_alpha = image.mode in ("RGBA", "LA", "PA", "RGBa") or (
        "transparency" in image.info and image.mode in ("1", "L", "P", "RGB")
    )
    if not has_alpha:
        return image.copy() if image.mode == "RGB" else image.convert("RGB")
    rgba = image if image.mode == "RGBA" else image.convert("RGBA")
    alpha = rgba.getchannel("A")
    if alpha.getextrema() == (255, 255):
        return rgba.convert("RGB")  # opaque after all: no blending needed
    # pasting through the alpha mask blends exactly like alpha_composite onto an opaque
    # background, with two fewer full-size RGBA copies (a large RGBA image peaked ~20
    # bytes per pixel)
    canvas = Image.new("RGB", rgba.size, background)
    canvas.paste(rgba, mask=alpha)
    return canvas


def _to_8bit(image: Image.Image) -> Image.Image:
    """An ``L`` (or ``LA``, for a 16-bit colour key) image of a 16/32-bit or float image."""
    values = np.asarray(image)
    if image.mode == "F":
        with np.errstate(invalid="ignore", over="ignore"):  # NaN and inf are expected here
            values = values.astype(np.float64)
            finite = np.isfinite(values)
            lo, hi = _finite_range(values, finite)
            scaled = values * 255.0 if lo >= 0.0 and hi <= 1.0 else _stretch(values, lo, hi)
            scaled[values == np.inf] = 255.0
            scaled[~finite & (values != np.inf)] = 0.0  # NaN and -inf
            out = np.rint(np.clip(scaled, 0.0, 255.0)).astype(np.uint8)
    else:
        wide = values.astype(np.int64)
        lo, hi = (int(wide.min()), int(wide.max())) if wide.size else (0, 0)
        if image.mode == "I" and (lo < 0 or hi > 65_535):
            out = np.rint(_stretch(wide.astype(np.float64), lo, hi)).astype(np.uint8)
        else:
            out = ((wide * 255 + 32_767) // 65_535).astype(np.uint8)
        key = image.info.get("transparency")
        if image.mode.startswith("I;16") and isinstance(key, int):
            alpha = np.where(wide == key, 0, 255).astype(np.uint8)
            return Image.merge("LA", (Image.fromarray(out, "L"), Image.fromarray(alpha, "L")))
    return Image.fromarray(out, "L")


def _finite_range(values: np.ndarray, finite: np.ndarray) -> tuple[float, float]:
    if not finite.any():
        return 0.0, 0.0
    chosen = values[finite]
    return float(chosen.min()), float(chosen.max())


def _stretch(values: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``values`` mapped linearly from lo..hi to 0..255 (all 0 if the range is empty)."""
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        return (values - lo) * (255.0 / (hi - lo))


def _unpremultiply_la(image: Image.Image) -> Image.Image:
    """``LA`` from premultiplied ``La`` (Pillow converts ``La`` to nothing else)."""
    la = np.asarray(image).astype(np.float64)  # (h, w, 2)
    lum, alpha = la[..., 0], la[..., 1]
    with np.errstate(divide="ignore", invalid="ignore"):
        straight = np.where(alpha > 0, lum * 255.0 / alpha, 0.0)
    bands = np.stack([np.clip(np.rint(straight), 0, 255), alpha], axis=-1).astype(np.uint8)
    return Image.fromarray(bands, "LA")


def _as_rgb(image: Image.Image) -> Image.Image:
    """``image`` itself if it is plain RGB, else :func:`flatten_to_rgb` of it."""
    if image.mode == "RGB" and "transparency" not in image.info:
        return image
    return flatten_to_rgb(image)


def pixel_hash(image: Image.Image) -> str:
    """Hash of the decoded pixels, so PNG and lossless WebP of one picture compare equal.

    Hashed in bands of rows: the same bytes as the whole image's, without a second copy
    of a large image in memory.
    """
    digest = hashlib.sha256()
    digest.update(f"{image.mode}:{image.width}x{image.height}:".encode())
    rows = max(1, 4_000_000 // max(1, image.width))
    for top in range(0, image.height, rows):
        bottom = min(image.height, top + rows)
        digest.update(image.crop((0, top, image.width, bottom)).tobytes())
    return digest.hexdigest()[:32]


def content_hash(data: bytes) -> str:
    """Stable id of a file's bytes (128 bits of SHA-256, hex)."""
    return hashlib.sha256(data).hexdigest()[:32]


def shrink(image: Image.Image, size: int) -> Image.Image:
    """A copy of ``image`` shrunk to fit ``size`` x ``size`` (never enlarged).

    Aspect ratio is kept to the nearest pixel; no side drops below 1 pixel (a 3x5000 strip
    fits 256 as 1x256). The image is resized directly rather than copied first, so a large
    original is not held twice.
    """
    size = max(1, size)
    width, height = image.size
    if width <= size and height <= size:
        return image.copy()
    scale = min(size / width, size / height)
    target = (
        min(size, max(1, round(width * scale))),
        min(size, max(1, round(height * scale))),
    )
    # Bicubic (Pillow's is a proper antialiasing filter when shrinking) costs 0.6 of
    # Lanczos; the difference is invisible at thumbnail size and in the features. The
    # reducing gap (a fast box reduce first) is not implemented for 16-bit modes.
    gap = None if image.mode.startswith("I;16") else 3.0
    return image.resize(target, Image.Resampling.BICUBIC, reducing_gap=gap)


def make_thumbnail(image: Image.Image, size: int) -> bytes:
    """JPEG bytes of ``image`` shrunk to fit ``size`` x ``size`` (never enlarged)."""
    return encode_jpeg(shrink(image, size))


def encode_jpeg(image: Image.Image) -> bytes:
    """JPEG bytes (quality 90) of ``image`` in any mode.

    Modes JPEG cannot store are flattened to RGB first (transparency onto white); an image
    with a side over JPEG's 65,535 pixel limit is shrunk to fit it.
    """
    if image.mode not in ("L", "RGB"):
        image = flatten_to_rgb(image)
    if max(image.size) > _JPEG_MAX_SIDE:
        image = shrink(image, _JPEG_MAX_SIDE)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=90, optimize=False)
    return out.getvalue()


def sniff_image(data: bytes) -> tuple[str | None, str | None]:
    """Cheap check of downloaded bytes, before any decoding: (format, problem).

    Identifies the format from the header (the Pillow plugins we decode with, or an SVG
    document) and, for the common formats, checks that the file ends the way a complete
    file ends, which catches bodies cut off by a dropped connection. ``problem`` is
    ``empty``, ``not_an_image`` or ``truncated``. The ingest stage still fully decodes
    every image; this only keeps junk out of the store.
    """
    if not data:
        return None, "empty"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=PILLOW_FORMATS) as image:
                fmt = (image.format or "").lower() or None
    except (*DECODE_ERRORS, RuntimeError) as err:
        if isinstance(err, RuntimeError) and not _is_codec_failure(err):
            raise
        if _SVG and _SVG_HEAD.match(data[:4096]):
            return "svg", None
        return None, "not_an_image"
    tail = data[-32:].rstrip(b"\0")
    complete = {
        "jpeg": lambda: tail.endswith(b"\xff\xd9"),
        "mpo": lambda: tail.endswith(b"\xff\xd9"),  # JPEGs one after another
        "png": lambda: b"IEND" in data[-12:],
        "gif": lambda: tail.endswith(b"\x3b"),
        "webp": lambda: len(data) >= 8 + int.from_bytes(data[4:8], "little"),
    }
    check = complete.get(fmt or "")
    if check is not None and not check():
        return fmt, "truncated"
    return fmt, None


#: Version of :func:`image_stats`; part of ingest's part digests so a change re-inspects.
#: 7: images are upright (EXIF), 16-bit scaled not clipped, edges measured per axis.
#: 8-14: content box, layout signature, flat and palette shares, pixel-block size,
#:    sharpest edges among the non-flat pixels, transparent pictures measured on black too.
STATS_VERSION = 14

#: Version of the thumbnail every later stage reads (decoding, EXIF orientation, opacity,
#: shrinking, encoding); part of ingest's part digests and of embed's shard names, so a
#: change re-renders the thumbnails and re-embeds them instead of reusing stale ones.
#: 1: upright, 16-bit scaled, transparency on the background (the STATS_VERSION 7 fixes).
THUMB_VERSION = 1

#: Side of the grey part of a layout signature, and of its two chroma planes.
SIGNATURE_SIDE = 32
CHROMA_SIDE = 16
#: grey plane, two chroma planes, the content box (4 bytes), the colour around it (3 bytes)
SIGNATURE_BYTES = SIGNATURE_SIDE**2 + 2 * CHROMA_SIDE**2 + 4 + 3
#: an edge line of a picture counts as a margin when this share of its pixels lies within
#: tolerance of its colour (JPEG noise, a frame's thin inner line); the tolerance is
#: ``MARGIN_RELATIVE`` of each channel's spread over the picture, within
#: ``MARGIN_FLOOR``..``MARGIN_TOLERANCE`` levels
MARGIN_SHARE = 0.9
MARGIN_RELATIVE = 0.2
MARGIN_FLOOR = 4.0
MARGIN_TOLERANCE = 12.0


def image_stats(
    image: Image.Image, full: Image.Image | None = None, alpha: Image.Image | None = None
) -> dict[str, float | str | bytes]:
    """Cheap measurements the clean stage judges "boring" images and near duplicates by.

    ``image`` may be the thumbnail (every measure but ``row_repeat`` and ``block`` works on
    small copies anyway, and shrinking once is cheaper than five times); ``full`` is the
    full-resolution image for those two (default: ``image``). ``alpha`` is the opacity
    ``image`` was composited with (:func:`decode_with_alpha`, resized like ``image``), if
    any: contrast and edges are then measured on white and on black and the larger value
    kept, so a light shape on a transparent background is not taken for a blank card. At
    ingest this halves the time per image. Any mode and size from 1x1 up is accepted
    (non-RGB images are flattened first); every float is finite.

    * ``phash``: 64-bit perceptual hash (imagehash), 16 hex digits, of the content box
      (:func:`content_box`), so a letterboxed copy hashes like its original.
    * ``gray_std``: contrast of a 64x64 greyscale copy, 0..127.5; ~0 for a solid card.
    * ``detail``: mean absolute Laplacian of that copy, 0..2040; ~0 for smooth images.
    * ``edge_p99``: 99th percentile of the absolute Laplacian (0..2040) of a copy at most
      128 px per side (a shorter side keeps its own length: never enlarged, since an
      upscaled small image has soft edges it does not have at its own size).
    * ``edge_sharp``: the same percentile among the pixels of that copy that are not flat
      (Laplacian of 2 or more): how sharp the edges are where there is anything at all.
      Low for solids, gradients, fog and blurry upscales; high for a minimalist poster and
      for one small crisp object on a plain field (which ``edge_p99`` misses: it covers
      less than 1% of the pixels).
    * ``colours``: distinct colours (1..1024) in a 32x32 copy quantised to 5 bits per
      channel.
    * ``row_repeat``: 0..1; among full-resolution rows (and columns) that are not uniform,
      the share identical to their neighbour.
    * ``block``: side in pixels of the square blocks a pixel-block upscale repeats (rows
      and columns change only on a regular lattice of that step), 1.0 for every other
      image (:func:`block_size`). A flat design repeats rows too, but
      its changes fall where its shapes end, not on a lattice: a striped flag or a bold
      letter measures 1.
    * ``flat``: 0..1, share of the content box (at most 128 px per side) that is perfectly
      flat (Laplacian at most 1): ~0.8 for icons, emoji, logos and flat designs, below 0.5
      for photographs, paintings and anything with grain.
    * ``palette``: 0..1, share of the content box in its 8 commonest colours
      (:func:`palette_share`): ~0.9 and up for drawings in flat colours, ~0.5 for photos.
    * ``signature``: :func:`layout_signature` of the content box, :data:`SIGNATURE_BYTES`.
    * ``colour_hist``: 48-bin hue x saturation histogram (12 x 4, value ignored) of a
      32x32 copy, summing to 1: what "these share a colour scheme" is measured with.

    Images under 3 px on a side have their edge pixels repeated for the Laplacian, so a
    1x1 image measures 0 rather than nothing.
    """
    import imagehash

    image = _as_rgb(image)
    contrast, edges = _contrast(image)
    if alpha is not None and alpha.size == image.size:
        # the same picture on black: white composite W = a*C + (1-a)*255, black = W - (1-a)*255
        alpha_np = np.asarray(alpha, dtype=np.int16)[..., None]
        on_white = np.asarray(image, dtype=np.int16)
        on_black = np.clip(on_white - (255 - alpha_np), 0, 255).astype(np.uint8)
        dark, _ = _contrast(Image.fromarray(on_black, "RGB"))
        contrast = {key: max(value, dark[key]) for key, value in contrast.items()}
    small_image = image.resize((32, 32), Image.Resampling.BILINEAR)
    small = np.asarray(small_image)
    quantised = (small >> 3).reshape(-1, 3).astype(np.int32)
    colours = len(np.unique(quantised[:, 0] * 1024 + quantised[:, 1] * 32 + quantised[:, 2]))
    full_rgb = _as_rgb(full) if full is not None else image
    full_gray = np.asarray(full_rgb.convert("L"))  # uint8: only compared, never summed
    box = content_box(image)
    signature, grey = _signature(image, box)
    return {
        "phash": str(imagehash.phash(Image.fromarray(grey, "L"))),
        **contrast,
        "colours": float(colours),
        "row_repeat": float((_repeat_share(full_gray) + _repeat_share(full_gray.T)) / 2),
        "block": block_size(full_gray),
        "flat": _flat_in(edges, box, image.size),
        "palette": palette_share(image.crop(box)),
        "signature": signature,
        "colour_hist": colour_histogram(small_image),
    }


def _contrast(image: Image.Image) -> tuple[dict[str, float], np.ndarray]:
    """The contrast and edge measures of :func:`image_stats` of an RGB image, and the
    absolute Laplacian of its copy of at most 128 px per side."""
    gray = image.convert("L")
    g64 = np.asarray(gray.resize((64, 64), Image.Resampling.BILINEAR), dtype=np.float32)
    edge_size = (min(128, image.width), min(128, image.height))
    g128 = np.asarray(gray.resize(edge_size, Image.Resampling.BILINEAR), dtype=np.float32)
    edges = _laplacian(g128)
    # the Laplacian of whole grey levels is a whole number (0..2040): its percentiles come
    # from one histogram, 8x faster than two partitions (and the same floats)
    counts = np.bincount(edges.astype(np.int32).ravel())
    measures = {
        "gray_std": float(g64.std()),
        "detail": float(_laplacian(g64).mean()),
        "edge_p99": _percentile_of_counts(counts, 99.0),
        "edge_sharp": _percentile_of_counts(counts[2:], 99.0, offset=2),
    }
    return measures, edges


def _percentile_of_counts(counts: np.ndarray, q: float, offset: int = 0) -> float:
    """``np.percentile(values, q, method="linear")`` of whole numbers given as their
    histogram (``counts[v]`` values equal to ``v + offset``), to the same float32
    rounding; 0.0 when there are none."""
    cumulative = np.cumsum(counts)
    n = int(cumulative[-1]) if cumulative.size else 0
    if n == 0:
        return 0.0
    virtual = (n - 1) * (q / 100)
    below = int(np.floor(virtual))
    above = min(below + 1, n - 1)
    # the k-th smallest value (from 0) is the first whose cumulative count exceeds k
    a = np.float32(np.searchsorted(cumulative, below, side="right") + offset)
    b = np.float32(np.searchsorted(cumulative, above, side="right") + offset)
    # numpy's interpolation, term for term (a Python float weight keeps float32 maths)
    t = virtual - below
    diff = b - a
    return float(b - diff * (1 - t)) if t >= 0.5 else float(a + diff * t)


def _flat_in(edges: np.ndarray, box: tuple[int, int, int, int], size: tuple[int, int]) -> float:
    """:func:`flat_share` of the content box, read off the Laplacian of the whole picture
    (``edges``, the interior of its copy of at most 128 px per side)."""
    height, width = edges.shape
    sx, sy = width / size[0], height / size[1]
    part = edges[
        int(box[1] * sy) : max(int(box[1] * sy) + 1, int(np.ceil(box[3] * sy))),
        int(box[0] * sx) : max(int(box[0] * sx) + 1, int(np.ceil(box[2] * sx))),
    ]
    return float((part <= 1.0).mean()) if part.size else 0.0


def content_box(image: Image.Image) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of ``image`` without its margins: letterbox bars,
    borders, the band of a frame, a plain field around a drawing.

    Margins are what is added around a picture, and they come in pairs: bars left and
    right, a border or frame or plain field on every side, one colour on opposite sides
    (their widths may differ). A margin is a run of uniform lines at an edge: rows or
    columns, each across the whole picture, with :data:`MARGIN_SHARE` of its pixels
    within tolerance of its main colour, in one colour (a smooth drift, such as a sky's
    gradient, is content). Lines are judged on a blurred copy of at most 96 px per side
    (grain and compression noise do not count), the tolerance a fifth of the picture's
    spread per channel, 4 to 12 levels (a copy with more or less contrast strips the same
    margins). Opposite sides are stripped of the runs they share, outermost first (a
    border around bars is two runs); a run on one side only is content: a flat band of
    sky at the top, one stripe of a striped field. So a letterboxed, bordered, framed or
    mirrored copy ends in the same box as its original. A box under 30% of the picture's
    width or height is not taken (a small object on a plain field stays in its field):
    the whole image is returned.
    """
    image = _as_rgb(image)
    width, height = image.size
    factor = max(1, -(-max(width, height) // 96))
    small = image.reduce(factor) if factor > 1 else image
    rgb = np.asarray(small.filter(ImageFilter.BoxBlur(1)), dtype=np.float32)
    h, w = rgb.shape[:2]
    # each channel in units of its tolerance: a margin is then the same margin in a copy
    # with more or less contrast, or a colour cast
    spread = rgb.reshape(-1, 3).std(axis=0)
    unit = np.clip(MARGIN_RELATIVE * spread, MARGIN_FLOOR, MARGIN_TOLERANCE)
    scaled = rgb / unit
    row_colour, row_uniform = _line_colours(scaled)
    col_colour, col_uniform = _line_colours(np.ascontiguousarray(scaled.transpose(1, 0, 2)))

    def runs(colours: np.ndarray, uniform: np.ndarray) -> list[tuple[np.ndarray, int]]:
        """The margins at the start of ``colours``: (colour, lines) per run."""
        out: list[tuple[np.ndarray, int]] = []
        first = last = None
        for colour, ok in zip(colours, uniform, strict=True):
            if not ok:
                break
            if first is None or np.abs(colour - last).max() > 1:
                first = colour  # a new run: the first one, or across a step
                out.append((colour, 0))
            elif np.abs(colour - first).max() > 1:
                break  # a smooth drift away from the run's colour: content
            out[-1] = (out[-1][0], out[-1][1] + 1)
            last = colour
        return out

    def paired(colours: np.ndarray, uniform: np.ndarray) -> tuple[int, int]:
        """Lines stripped at the start and at the end: the runs both ends share."""
        head = runs(colours, uniform)
        tail = runs(colours[::-1], uniform[::-1])
        start = end = 0
        for (c1, n1), (c2, n2) in zip(head, tail, strict=False):
            if np.abs(c1 - c2).max() > 1:
                break
            start, end = start + n1, end + n2
        return start, end

    top, bottom = paired(row_colour, row_uniform)
    left, right = paired(col_colour, col_uniform)
    if top + bottom >= h - 2 or left + right >= w - 2:
        return (0, 0, width, height)
    sx, sy = width / w, height / h
    box = (round(left * sx), round(top * sy), round((w - right) * sx), round((h - bottom) * sy))
    if box[2] - box[0] < 0.3 * width or box[3] - box[1] < 0.3 * height:
        return (0, 0, width, height)
    return box


def _line_colours(scaled: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of ``scaled`` (h, w, 3; channels in units of their tolerance): its colour
    (the mean of its pixels near the plain mean, a cheap stand-in for the median) and
    whether it is uniform."""

    def within(diff: np.ndarray, limit: float) -> np.ndarray:
        # every channel within the limit (three comparisons: ~3x faster than a max over
        # the short last axis, which dominated the content box's time)
        diff = np.abs(diff)
        return (diff[..., 0] <= limit) & (diff[..., 1] <= limit) & (diff[..., 2] <= limit)

    mean = scaled.mean(axis=1, keepdims=True)
    close = within(scaled - mean, 2).astype(np.float32)
    centre = np.einsum("hwc,hw->hc", scaled, close) / np.maximum(close.sum(axis=1), 1)[:, None]
    near = within(scaled - centre[:, None, :], 1)
    return centre, near.mean(axis=1) >= MARGIN_SHARE


def layout_signature(image: Image.Image, box: tuple[int, int, int, int] | None = None) -> bytes:
    """A small picture of ``image``'s content box that near duplicates are compared by.

    :data:`SIGNATURE_SIDE` squared grey levels (BOX-averaged, one byte each), then two
    :data:`CHROMA_SIDE` squared chroma planes (red minus green, and yellow minus blue, as
    signed bytes of half the difference), then the box as fractions of the picture's
    width and height (four bytes, x255) and the median colour of the picture's outermost
    pixels (three bytes). The box is stretched to a square: its aspect ratio is in the
    box fractions and the image size. Read with :func:`read_signature`.
    """
    image = _as_rgb(image)
    return _signature(image, box or content_box(image))[0]


def _signature(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[bytes, np.ndarray]:
    """(:func:`layout_signature`, its grey plane) of an RGB image and its content box."""
    content = image.crop(box)
    colour = np.asarray(content.resize((SIGNATURE_SIDE,) * 2, Image.Resampling.BOX), np.float32)
    grey = np.rint(colour @ np.array([0.299, 0.587, 0.114], np.float32))
    grey = np.clip(grey, 0, 255).astype(np.uint8)
    k = SIGNATURE_SIDE // CHROMA_SIDE
    colour = colour.reshape(CHROMA_SIDE, k, CHROMA_SIDE, k, 3).mean(axis=(1, 3))
    red_green = colour[..., 0] - colour[..., 1]
    yellow_blue = (colour[..., 0] + colour[..., 1]) / 2 - colour[..., 2]
    chroma = np.clip(np.rint(np.stack([red_green, yellow_blue]) / 2), -128, 127).astype(np.int8)
    width, height = image.size
    fractions = np.array(
        [box[0] / width, box[1] / height, box[2] / width, box[3] / height], np.float64
    )
    rgb = np.asarray(image)
    rim = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    background = np.median(rim, axis=0)
    data = b"".join(
        (
            grey.tobytes(),
            chroma.tobytes(),
            np.rint(fractions * 255).astype(np.uint8).tobytes(),
            np.rint(background).astype(np.uint8).tobytes(),
        )
    )
    return data, grey


def read_signature(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(grey (32, 32) float32 0..255, chroma (16, 16, 2) float32 -256..254, box fractions
    (4,) float32, background RGB (3,) float32) of a :func:`layout_signature`."""
    raw = np.frombuffer(data, np.uint8)
    g, c = SIGNATURE_SIDE**2, CHROMA_SIDE**2
    grey = raw[:g].reshape(SIGNATURE_SIDE, SIGNATURE_SIDE).astype(np.float32)
    chroma = raw[g : g + 2 * c].view(np.int8).reshape(2, CHROMA_SIDE, CHROMA_SIDE)
    chroma = np.moveaxis(chroma.astype(np.float32) * 2, 0, -1)
    box = raw[g + 2 * c : g + 2 * c + 4].astype(np.float32) / 255
    background = raw[g + 2 * c + 4 :].astype(np.float32)
    return grey, chroma, box, background


def palette_share(image: Image.Image, colours: int = 8) -> float:
    """Share (0..1) of ``image`` taken by its ``colours`` commonest colours (5 bits per
    channel, in a 64x64 nearest-neighbour copy: actual pixels, not blends). Near 1 for
    drawings in a few flat colours, around 0.5 and below for photographs and grain."""
    small = np.asarray(_as_rgb(image).resize((64, 64), Image.Resampling.NEAREST)) >> 3
    codes = (small[..., 0].astype(np.int32) << 10) | (small[..., 1].astype(np.int32) << 5)
    codes |= small[..., 2]
    counts = np.bincount(codes.ravel(), minlength=1)
    top = np.sort(counts)[::-1][:colours]
    return float(top.sum() / codes.size)


def flat_share(image: Image.Image) -> float:
    """Share (0..1) of ``image`` (at most 128 px per side) whose Laplacian is at most 1:
    flat fills, as in icons, emoji, logos and flat designs. Grain, texture and photographs
    have almost none."""
    gray = _as_rgb(image).convert("L")
    size = (min(128, gray.width), min(128, gray.height))
    g = np.asarray(gray.resize(size, Image.Resampling.BILINEAR), dtype=np.float32)
    return float((_laplacian(g) <= 1.0).mean())


def block_size(gray: np.ndarray) -> float:
    """Side of the square pixel blocks a nearest-neighbour upscale repeats, 1.0 if none.

    In an image blown up ``k`` times in blocks, rows differ from the row before them only
    on a lattice of step ``k`` (where a new source row begins), and so do columns. Both
    axes must show such a lattice, with at least five changes each and nine in ten gaps
    within one pixel (or 10%) of a multiple of the step. (A bilinear upscale has no such
    rows; it is soft everywhere and judged by its edges.)
    """
    steps = []
    for a in (gray, gray.T):
        if a.shape[0] < 8:
            return 1.0
        steps.append(_lattice_step(np.flatnonzero((a[1:] != a[:-1]).any(axis=1)) + 1))
    return float(min(steps)) if min(steps) > 1 else 1.0


def _lattice_step(changes: np.ndarray) -> float:
    """The step of the lattice that the positions ``changes`` fall on, 1.0 if none."""
    if len(changes) < 5:
        return 1.0
    gaps = np.diff(changes).astype(np.float64)
    step = float(np.min(gaps)) if np.median(gaps) >= 2 else 1.0
    if step < 2:
        return 1.0
    # the step: the median of the gaps that are about one step long
    single = gaps[gaps < 1.5 * step]
    step = float(np.median(single))
    multiple = np.maximum(np.rint(gaps / step), 1)
    regular = np.abs(gaps - multiple * step) <= np.maximum(1.0, 0.1 * step * multiple)
    return step if regular.mean() >= 0.9 else 1.0


def colour_histogram(image: Image.Image) -> list[float]:
    """Hue x saturation histogram (12 x 4 bins) of a 32x32 copy, normalised to sum 1."""
    image = _as_rgb(image)
    if image.size != (32, 32):
        image = image.resize((32, 32), Image.Resampling.BILINEAR)
    hsv = np.asarray(image.convert("HSV"))
    hue = hsv[..., 0].astype(np.int32) * 12 // 256
    sat = hsv[..., 1].astype(np.int32) * 4 // 256
    counts = np.bincount((hue * 4 + sat).ravel(), minlength=48).astype(np.float32)
    return (counts / counts.sum()).round(4).tolist()


def trim_borders(image: Image.Image, tolerance: int = 12) -> Image.Image:
    """``image`` without uniform margins of its corner colour (letterbox bars, frames).

    Any mode: the margins are found on an RGB copy, the crop is of ``image`` itself.
    """
    from PIL import ImageChops

    rgb = _as_rgb(image)
    background = Image.new("RGB", rgb.size, rgb.getpixel((0, 0)))
    diff = (
        ImageChops.difference(rgb, background)
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
    """|4-neighbour Laplacian| of the interior; arrays under 3 px on a side are first
    padded by repeating their edge, so the result is never empty."""
    if min(a.shape) < 3:
        a = np.pad(a, 1, mode="edge")
    return np.abs(4 * a[1:-1, 1:-1] - a[:-2, 1:-1] - a[2:, 1:-1] - a[1:-1, :-2] - a[1:-1, 2:])


def _repeat_share(a: np.ndarray) -> float:
    varied = a.max(axis=1) != a.min(axis=1)
    same = (a[1:] == a[:-1]).all(axis=1) & varied[1:]
    return float(same.sum() / max(int(varied[1:].sum()), 1))
