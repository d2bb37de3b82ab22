"""Image-file fuzzing for :mod:`postermap.images` (unit tests and ``benchmarks/fuzz.py``).

Three parts:

* **Generated files**, valid by construction. A :class:`FileSpec` names a format, a pixel
  mode, a size, an EXIF orientation, a frame count and encoder options; :func:`encode`
  renders a deterministic picture for it, turns it so that applying the orientation makes
  it upright again, and writes the file's bytes. :func:`file_specs` is the hypothesis
  strategy over that space; :func:`random_spec` draws from the same space with a seeded
  ``random.Random``, for corpora that must not depend on hypothesis' database.
* **Mutants** (:func:`mutate`): broken variants of valid files, seeded: bit flips, byte
  noise, truncations, zero runs, splices of two valid files (at PNG chunk boundaries when
  both are PNGs), header-only files, dropped or repeated chunks, lying size fields.
* **Corpora** (:func:`write_corpus`): generated files, mutants and hand-made edge cases
  written to a folder, each with its expectations. Whether a file decodes is decided
  independently of the code under test (:func:`reference_decode`: Pillow opening it with
  every plugin and loading every frame; libvips for SVG).
"""

from __future__ import annotations

import io
import json
import random
import struct
import zlib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from hypothesis import strategies as st
from PIL import Image, ImageFile

try:
    import pillow_heif

    pillow_heif.register_heif_opener()
    HEIF = True
except ImportError:  # pragma: no cover - pillow-heif is a declared dependency
    HEIF = False

ImageFile.LOAD_TRUNCATED_IMAGES = False

#: Pillow formats postermap decodes (independent copy of the list in postermap.images, so
#: a format silently dropped there shows up as a wrong verdict here).
SUPPORTED_PILLOW_FORMATS = frozenset(
    {"JPEG", "MPO", "PNG", "GIF", "WEBP", "BMP", "TIFF", "PPM", "ICO", "AVIF", "HEIF"}
)
#: The reference decoder refuses to allocate more than this (a lying header would make it
#: allocate gigabytes); such files are expected ``too_large`` or undecodable, never ok.
REFERENCE_MAX_PIXELS = 40_000_000
#: Thumbnail side and pixel limit the corpus is inspected with (postermap's defaults).
THUMB_SIZE = 256
MAX_PIXELS = 120_000_000

T = Image.Transpose
#: Orientation -> the transposition that makes stored pixels upright (EXIF semantics).
UPRIGHT = {
    2: T.FLIP_LEFT_RIGHT,
    3: T.ROTATE_180,
    4: T.FLIP_TOP_BOTTOM,
    5: T.TRANSPOSE,
    6: T.ROTATE_270,
    7: T.TRANSVERSE,
    8: T.ROTATE_90,
}
#: Orientation -> how to store an upright picture so that the orientation restores it.
STORE = {2: T.FLIP_LEFT_RIGHT, 3: T.ROTATE_180, 4: T.FLIP_TOP_BOTTOM, 5: T.TRANSPOSE}
STORE |= {6: T.ROTATE_90, 7: T.TRANSVERSE, 8: T.ROTATE_270}


@dataclass(frozen=True)
class Format:
    """What a format can hold, as far as the encoders we use can write it."""

    ext: str
    modes: tuple[str, ...]
    exif: bool = False  # can carry an EXIF orientation
    frames: bool = False  # can hold several frames/pages
    lossless: bool = True  # decoded pixels equal the stored ones
    max_side: int = 5000


#: Pseudo-modes: 16 bits per channel in formats Pillow can only read, written by our own
#: encoders (Pillow's own 16-bit modes, I;16 and I;16B, are single-channel).
WIDE_MODES = frozenset({"RGB;16", "RGBA;16", "LA;16"})
FORMATS: dict[str, Format] = {
    "png": Format(
        ".png",
        ("1", "L", "LA", "P", "RGB", "RGBA", "I;16", "I;16B", "RGB;16", "RGBA;16", "LA;16"),
        exif=True,
        frames=True,
    ),
    "jpeg": Format(".jpg", ("L", "RGB", "CMYK"), exif=True, lossless=False),
    "gif": Format(".gif", ("L", "P", "RGB", "RGBA"), frames=True, lossless=False),
    "webp": Format(".webp", ("RGB", "RGBA"), exif=True, frames=True, lossless=False),
    "bmp": Format(".bmp", ("1", "L", "P", "RGB")),
    "tiff": Format(
        ".tif",
        ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr", "LAB")
        + ("I;16", "I;16B", "I", "F"),
        exif=True,
        frames=True,
        lossless=False,  # LAB and YCbCr round-trip through colour conversions
    ),
    "ppm": Format(".ppm", ("1", "L", "RGB", "I;16", "RGB;16", "F")),
    "ico": Format(".ico", ("L", "P", "RGB", "RGBA"), max_side=256),
    "svg": Format(".svg", ("RGBA",), lossless=False, max_side=2000),
}
if "AVIF" in Image.registered_extensions().values():
    FORMATS["avif"] = Format(
        ".avif", ("L", "RGB", "RGBA"), exif=True, frames=True, lossless=False, max_side=5000
    )
if HEIF:
    FORMATS["heic"] = Format(
        ".heic", ("L", "RGB", "RGBA"), exif=True, frames=True, lossless=False, max_side=2048
    )

LUMA = np.array([0.299, 0.587, 0.114])
PICTURES = ("solid", "gradient", "shapes", "noise", "checker")
ALPHAS = ("opaque", "clear", "half", "ramp")
SPECIAL_SIZES = (
    (1, 1),
    (1, 2),
    (2, 1),
    (2, 2),
    (3, 3),
    (1, 40),
    (40, 1),
    (2, 300),
    (3, 5000),
    (5000, 3),
)


@dataclass(frozen=True)
class FileSpec:
    """One generated file: everything :func:`encode` needs, nothing random left."""

    fmt: str
    mode: str
    size: tuple[int, int]  # upright (width, height) of the picture
    picture: str = "shapes"
    seed: int = 0
    orientation: int = 1
    frames: int = 1
    alpha: str = "opaque"
    transparent_key: bool = False  # palette/colour-key transparency (PNG, GIF)
    options: tuple[tuple[str, Any], ...] = ()  # encoder options, as sorted pairs

    @property
    def ext(self) -> str:
        return FORMATS[self.fmt].ext

    @property
    def high_contrast(self) -> bool:
        """Whether the picture spans black to white (contrast must survive decoding)."""
        if self.fmt == "svg" or self.transparent_key or self.alpha != "opaque":
            return False
        if self.mode == "I" and self.seed % 3 == 2:
            return False  # 8-bit values in a 32-bit image: documented to come out dark
        return self.picture == "gradient" and min(self.size) >= 8


@dataclass
class GeneratedFile:
    spec: FileSpec
    data: bytes
    ext: str
    #: upright size a decoder must report
    size: tuple[int, int]
    #: first frame as stored, before orientation (None for SVG)
    stored: Image.Image | None = field(default=None, repr=False)


# --------------------------------------------------------------------------- pictures


def render(picture: str, size: tuple[int, int], seed: int, alpha: str = "opaque") -> np.ndarray:
    """A deterministic RGBA picture, float64 in 0..1, shape (height, width, 4)."""
    width, height = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float64)
    rgb = np.empty((height, width, 3))
    if picture == "solid":
        rgb[:] = rng.random(3)
    elif picture == "gradient":
        # full range along the diagonal, for any size (a 1xN strip too)
        t = (xx + yy) / max(width + height - 2, 1)
        tint = 0.15 * rng.random(3)
        rgb[:] = np.clip(t[..., None] * (1 - tint) + tint * t[..., None] ** 2, 0, 1)
    elif picture == "noise":
        rgb[:] = rng.random((height, width, 3))
    elif picture == "checker":
        cell = int(rng.integers(1, 9))
        board = ((xx // cell + yy // cell) % 2)[..., None]
        a, b = rng.random(3), rng.random(3)
        rgb[:] = board * a + (1 - board) * b
    else:  # shapes: background and a few rectangles and discs
        rgb[:] = rng.random(3)
        for _ in range(int(rng.integers(1, 6))):
            cx, cy = rng.random() * width, rng.random() * height
            rx, ry = 1 + rng.random() * width / 2, 1 + rng.random() * height / 2
            if rng.random() < 0.5:
                mask = (np.abs(xx - cx) <= rx) & (np.abs(yy - cy) <= ry)
            else:
                mask = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
            rgb[mask] = rng.random(3)
    if alpha == "clear":
        a = np.zeros((height, width))
    elif alpha == "half":
        a = np.full((height, width), 0.5)
    elif alpha == "ramp":
        a = xx / max(width - 1, 1)
    else:
        a = np.ones((height, width))
    return np.concatenate([rgb, a[..., None]], axis=-1)


def to_mode(rgba: np.ndarray, mode: str, spec: FileSpec) -> Image.Image:
    """``rgba`` (float) as a Pillow image of ``mode`` (";16" pseudo-modes: see _png16)."""
    rgba8 = np.rint(rgba * 255).astype(np.uint8)
    rgb = Image.fromarray(np.ascontiguousarray(rgba8[..., :3]))
    alpha = Image.fromarray(np.ascontiguousarray(rgba8[..., 3]))
    lum = rgba[..., :3] @ LUMA
    variant = spec.seed % 3
    if mode == "RGB":
        return rgb
    if mode == "RGBA":
        return Image.fromarray(rgba8)
    if mode == "L":
        return rgb.convert("L")
    if mode == "LA":
        return Image.merge("LA", (rgb.convert("L"), alpha))
    if mode == "1":
        return rgb.convert("L").convert("1")
    if mode in ("P", "PA"):
        colours = (2, 16, 256)[variant]
        pal = rgb.quantize(colors=colours)
        if mode == "PA":
            pal = pal.convert("PA")
            pal.putalpha(alpha)
        return pal
    if mode in ("CMYK", "YCbCr", "LAB"):
        return rgb.convert(mode)
    if mode in ("I;16", "I;16B"):
        values = np.rint(lum * 65535).astype(np.uint16)
        if mode == "I;16B":
            return Image.frombytes("I;16B", rgb.size, values.astype(">u2").tobytes())
        return Image.fromarray(values)
    if mode == "I":
        scale = (65535.0, 2_000_000.0, 255.0)[variant]
        offset = (0.0, -1_000_000.0, 0.0)[variant]
        return Image.fromarray(np.rint(lum * scale + offset).astype(np.int32))
    if mode == "F":
        values = (lum, lum * 1000.0 - 500.0, lum * 1e30)[variant].astype(np.float32)
        if dict(spec.options).get("nonfinite") and values.size >= 4:
            flat = values.reshape(-1)
            flat[0], flat[1], flat[-1] = np.nan, np.inf, -np.inf
        return Image.fromarray(values)
    raise ValueError(f"no such mode {mode}")


# --------------------------------------------------------------------------- encoders


def encode(spec: FileSpec) -> GeneratedFile:
    """The file ``spec`` describes: its picture stored turned so that the orientation
    makes it upright again, frames 2.. drawn with the next seeds."""
    info = FORMATS[spec.fmt]
    if spec.fmt == "svg":
        return GeneratedFile(spec, _svg(spec), info.ext, spec.size)
    pictures = [
        render(spec.picture, spec.size, spec.seed + i, spec.alpha) for i in range(spec.frames)
    ]
    if spec.mode in WIDE_MODES:
        stored = store_array(pictures[0], spec.orientation)
        if spec.fmt == "png":
            return GeneratedFile(spec, _png16(spec, stored), info.ext, spec.size)
        return GeneratedFile(spec, _netpbm16(spec, stored), _netpbm_ext(spec), spec.size)
    # converted upright, then turned: dithering and palettes must not depend on the turn
    frames = [to_mode(picture, spec.mode, spec) for picture in pictures]
    if spec.orientation != 1:
        frames = [frame.transpose(STORE[spec.orientation]) for frame in frames]
    first = frames[0]
    opts = dict(spec.options)
    out = io.BytesIO()
    save: dict[str, Any] = {}
    if spec.orientation != 1:
        save["exif"] = _exif(spec.orientation)
    if spec.frames > 1:
        save.update(save_all=True, append_images=frames[1:])
    if spec.fmt == "png":
        if spec.transparent_key and first.mode in ("L", "P", "RGB"):
            save["transparency"] = _key_colour(first)
        first.save(out, "PNG", optimize=bool(opts.get("optimize")), **save)
    elif spec.fmt == "jpeg":
        subsampling = int(opts.get("subsampling", 2)) if first.mode == "RGB" else -1
        quality = int(opts.get("quality", 85))
        progressive = bool(opts.get("progressive"))
        try:
            first.save(
                out,
                "JPEG",
                quality=quality,
                progressive=progressive,
                subsampling=subsampling,
                **save,
            )
        except OSError:
            if not progressive:
                raise
            # Pillow's progressive encoder buffers the whole output and gives up on some
            # incompressible (noise) images: store those baseline
            spec = replace(spec, options=tuple(sorted({**opts, "progressive": False}.items())))
            out = io.BytesIO()
            first.save(out, "JPEG", quality=quality, subsampling=subsampling, **save)
    elif spec.fmt == "gif":
        if spec.transparent_key and first.mode in ("L", "P"):
            save["transparency"] = _key_colour(first)
        first.save(out, "GIF", duration=40, loop=0, **save)
    elif spec.fmt == "webp":
        lossless, quality = bool(opts.get("lossless")), int(opts.get("quality", 80))
        first.save(out, "WEBP", lossless=lossless, quality=quality, exact=True, **save)
    elif spec.fmt == "bmp":
        first.save(out, "BMP")
    elif spec.fmt == "tiff":
        first.save(out, "TIFF", compression=_tiff_compression(spec, first), **save)
    elif spec.fmt == "ppm":
        return GeneratedFile(spec, _netpbm(spec, first), _netpbm_ext(spec), spec.size, first)
    elif spec.fmt == "ico":
        width, height = first.size
        sizes = sorted({(width, height), (max(1, width // 2), max(1, height // 2))})
        first.save(out, "ICO", sizes=sizes)
    elif spec.fmt == "avif":
        quality, subsampling = int(opts.get("quality", 75)), str(opts.get("subsampling", "4:2:0"))
        first.save(out, "AVIF", quality=quality, speed=10, subsampling=subsampling, **save)
    elif spec.fmt == "heic":
        first.save(out, "HEIF", quality=int(opts.get("quality", 75)), **save)
    else:
        raise ValueError(f"no encoder for {spec.fmt}")
    return GeneratedFile(spec, out.getvalue(), info.ext, spec.size, first)


def store_array(picture: np.ndarray, orientation: int) -> np.ndarray:
    """``picture`` (height, width, channels) as stored under EXIF ``orientation``: the
    inverse of what a viewer applies (numpy twins of :data:`STORE`, for the 16-bit
    pictures Pillow cannot hold)."""
    if orientation == 1:
        return picture
    turned = {
        2: picture[:, ::-1],
        3: picture[::-1, ::-1],
        4: picture[::-1],
        5: picture.swapaxes(0, 1),
        6: np.rot90(picture, 1),  # stored turned a quarter counter-clockwise
        7: picture.swapaxes(0, 1)[::-1, ::-1],
        8: np.rot90(picture, -1),
    }[orientation]
    return np.ascontiguousarray(turned)


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _key_colour(image: Image.Image) -> int | tuple[int, ...]:
    """A colour present in ``image`` (so the colour key makes some pixels transparent)."""
    value = image.getpixel((0, 0))
    return value if isinstance(value, int) else tuple(value[:3])


def _tiff_compression(spec: FileSpec, image: Image.Image) -> str | None:
    choice = dict(spec.options).get("compression", "raw")
    if choice == "group4" and image.mode != "1":
        choice = "raw"
    if choice == "tiff_jpeg" and image.mode not in ("L", "RGB", "YCbCr"):
        choice = "raw"
    return None if choice == "raw" else choice


def _png16(spec: FileSpec, rgba: np.ndarray) -> bytes:
    """A 16-bit-per-channel PNG (RGB, RGBA or grey + alpha), which Pillow cannot write,
    from the float picture at full 16-bit precision; the orientation goes into ``eXIf``."""
    height, width = rgba.shape[:2]
    if spec.mode == "LA;16":
        lum = rgba[..., :3] @ LUMA
        channels, colour_type = np.stack([lum, rgba[..., 3]], axis=-1), 4
    elif spec.mode == "RGB;16":
        channels, colour_type = rgba[..., :3], 2
    else:
        channels, colour_type = rgba, 6
    values = np.rint(channels * 65535).astype(">u2")
    rows = b"".join(b"\0" + values[y].tobytes() for y in range(height))
    chunks = [(b"IHDR", struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0))]
    if spec.orientation != 1:
        chunks.append((b"eXIf", _exif(spec.orientation)))
    chunks += [(b"IDAT", zlib.compress(rows, 6)), (b"IEND", b"")]
    return png_from_chunks(chunks)


def png_from_chunks(chunks: list[tuple[bytes, bytes]], fix_crc: bool = True) -> bytes:
    out = [b"\x89PNG\r\n\x1a\n"]
    for kind, body in chunks:
        crc = zlib.crc32(kind + body) & 0xFFFFFFFF if fix_crc else 0
        out.append(struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc))
    return b"".join(out)


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]] | None:
    """The (type, body) chunks of a PNG, or None if ``data`` does not parse as one."""
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        return None
    chunks, pos = [], 8
    while pos + 12 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if len(body) < length:
            return None
        chunks.append((kind, body))
        pos += 12 + length
    return chunks


def _netpbm_ext(spec: FileSpec) -> str:
    variant = spec.seed % 4
    if variant == 3:
        return ".pnm"
    return {"1": ".pbm", "L": ".pgm", "I;16": ".pgm", "F": ".pfm"}.get(spec.mode, ".ppm")


def _netpbm(spec: FileSpec, image: Image.Image) -> bytes:
    """PBM/PGM/PPM/PFM, binary or ASCII (Pillow writes only binary, and F as PFM)."""
    ascii_ = dict(spec.options).get("ascii", False)
    width, height = image.size
    if spec.mode == "F":
        out = io.BytesIO()
        image.save(out, "PPM")
        return out.getvalue()
    if spec.mode == "I;16":
        return _netpbm16(spec, np.asarray(image).astype(np.float64)[..., None] / 65535)
    if spec.mode == "1":
        bits = (np.asarray(image.convert("L")) < 128).astype(np.uint8)  # 1 = black
        if ascii_:
            body = "\n".join(" ".join(map(str, row)) for row in bits).encode()
            return f"P1\n{width} {height}\n".encode() + body + b"\n"
        return f"P4\n{width} {height}\n".encode() + np.packbits(bits, axis=1).tobytes()
    grey = spec.mode == "L"
    values = np.asarray(image.convert("L" if grey else "RGB"))
    magic = ("P2" if grey else "P3") if ascii_ else ("P5" if grey else "P6")
    header = f"{magic}\n# generated\n{width} {height}\n255\n".encode()
    if ascii_:
        return header + " ".join(map(str, values.reshape(-1))).encode() + b"\n"
    return header + values.tobytes()


def _netpbm16(spec: FileSpec, picture: np.ndarray) -> bytes:
    """PGM (I;16, or the grey of a colour picture) or PPM (RGB;16) with the spec's maxval:
    16-bit samples above 255, bytes up to it."""
    ascii_ = dict(spec.options).get("ascii", False)
    maxval = int(dict(spec.options).get("maxval", 65535))
    height, width = picture.shape[:2]
    if spec.mode == "RGB;16":
        values, magic = picture[..., :3], ("P3" if ascii_ else "P6")
    else:
        values = picture[..., 0] if picture.shape[-1] == 1 else picture[..., :3] @ LUMA
        magic = "P2" if ascii_ else "P5"
    ints = np.rint(np.clip(values, 0, 1) * maxval).astype(np.int64)
    header = f"{magic}\n{width} {height}\n{maxval}\n".encode()
    if ascii_:
        return header + " ".join(map(str, ints.reshape(-1))).encode() + b"\n"
    return header + ints.astype(">u2" if maxval > 255 else np.uint8).tobytes()


def _svg(spec: FileSpec) -> bytes:
    """An SVG document of rectangles and circles at ``spec.size``."""
    width, height = spec.size
    rng = random.Random(spec.seed)

    def colour() -> str:
        return "#" + "".join(f"{rng.randrange(256):02x}" for _ in range(3))

    shapes = []
    if spec.alpha == "opaque":
        shapes.append(f'<rect width="{width}" height="{height}" fill="{colour()}"/>')
    for _ in range(rng.randrange(1, 5)):
        if rng.random() < 0.5:
            shapes.append(
                f'<rect x="{rng.uniform(0, width):.1f}" y="{rng.uniform(0, height):.1f}" '
                f'width="{rng.uniform(1, width):.1f}" height="{rng.uniform(1, height):.1f}" '
                f'fill="{colour()}" fill-opacity="{rng.uniform(0.3, 1):.2f}"/>'
            )
        else:
            shapes.append(
                f'<circle cx="{rng.uniform(0, width):.1f}" cy="{rng.uniform(0, height):.1f}" '
                f'r="{rng.uniform(1, max(width, height) / 2):.1f}" fill="{colour()}"/>'
            )
    prolog = ('<?xml version="1.0" encoding="UTF-8"?>\n', "<!-- generated -->\n", "")
    return (
        f'{prolog[spec.seed % 3]}<svg xmlns="http://www.w3.org/2000/svg" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">'
        + "".join(shapes)
        + "</svg>\n"
    ).encode()


# --------------------------------------------------------------------------- spec space


def _format_options(fmt: str, mode: str, pick) -> tuple[tuple[str, Any], ...]:
    """Encoder options for ``fmt``; ``pick(name, choices)`` chooses one of ``choices``."""
    opts: dict[str, Any] = {}
    if fmt == "jpeg":
        opts["quality"] = pick("quality", (5, 50, 85, 95, 100))
        opts["progressive"] = pick("progressive", (False, True))
        opts["subsampling"] = pick("subsampling", (0, 1, 2))
    elif fmt == "webp":
        opts["lossless"] = pick("lossless", (True, False))
        opts["quality"] = pick("quality", (10, 80, 100))
    elif fmt == "tiff":
        opts["compression"] = pick(
            "compression", ("raw", "tiff_lzw", "tiff_adobe_deflate", "packbits", "tiff_jpeg")
        )
    elif fmt == "png":
        opts["optimize"] = pick("optimize", (False, True))
    elif fmt == "ppm":
        opts["ascii"] = pick("ascii", (False, False, True))
        if mode in ("I;16", "RGB;16"):
            opts["maxval"] = pick("maxval", (65535, 1000, 256, 255, 3))
    elif fmt == "avif":
        opts["quality"] = pick("quality", (20, 75, 100))
        opts["subsampling"] = pick("subsampling", ("4:2:0", "4:4:4"))
    elif fmt == "heic":
        opts["quality"] = pick("quality", (20, 75, 100))
    if mode == "F":
        opts["nonfinite"] = pick("nonfinite", (False, True))
    return tuple(sorted(opts.items()))


def _fit(fmt: str, size: tuple[int, int]) -> tuple[int, int]:
    cap = FORMATS[fmt].max_side
    return (min(size[0], cap), min(size[1], cap))


def _finish(spec: FileSpec) -> FileSpec:
    """Make a drawn spec consistent: only formats with EXIF get an orientation, frames
    only where a format holds several, alpha only where the mode has it."""
    info = FORMATS[spec.fmt]
    orientation = spec.orientation if info.exif else 1
    frames = spec.frames if info.frames else 1
    has_alpha = spec.mode in ("LA", "PA", "RGBA", "RGBA;16", "LA;16") or spec.fmt == "svg"
    alpha = spec.alpha if has_alpha else "opaque"
    if spec.mode in WIDE_MODES or spec.fmt == "ppm":
        frames = 1
    if spec.fmt == "avif" and orientation != 1:
        frames = 1  # Pillow 13 crashes (SIGSEGV) saving an animated AVIF with EXIF
    if spec.mode == "RGB;16":
        alpha = "opaque"
    return replace(
        spec,
        size=_fit(spec.fmt, spec.size),
        orientation=orientation,
        frames=frames,
        alpha=alpha,
        # an APNG's frames may get different palettes: one key cannot fit them all
        transparent_key=spec.transparent_key
        and (spec.fmt == "gif" or (spec.fmt == "png" and frames == 1)),
    )


@st.composite
def file_specs(
    draw, formats: tuple[str, ...] | None = None, max_side: int = 64, orientations: bool = True
) -> FileSpec:
    """Hypothesis strategy: specs over formats x modes x sizes x orientations x frames.

    Sizes mix the special ones (1x1, 1xN, Nx1, 3x5000, ...) with random ones up to
    ``max_side``; every format that can carry EXIF gets every orientation 1-8.
    """
    fmt = draw(st.sampled_from(sorted(formats or FORMATS)))
    mode = draw(st.sampled_from(FORMATS[fmt].modes))
    size = draw(
        st.one_of(
            st.sampled_from(SPECIAL_SIZES),
            st.tuples(st.integers(1, max_side), st.integers(1, max_side)),
        )
    )
    options = _format_options(
        fmt, mode, lambda name, choices: draw(st.sampled_from(choices), label=name)
    )
    spec = FileSpec(
        fmt=fmt,
        mode=mode,
        size=size,
        picture=draw(st.sampled_from(PICTURES)),
        seed=draw(st.integers(0, 2**16)),
        orientation=draw(st.integers(1, 8)) if orientations else 1,
        frames=draw(st.sampled_from((1, 1, 2, 3))),
        alpha=draw(st.sampled_from(ALPHAS)),
        transparent_key=draw(st.booleans()),
        options=options,
    )
    return _finish(spec)


def random_spec(rng: random.Random, max_side: int = 1200) -> FileSpec:
    """A spec from the same space as :func:`file_specs`, drawn with ``rng``."""
    fmt = rng.choice(sorted(FORMATS))
    mode = rng.choice(FORMATS[fmt].modes)
    roll = rng.random()
    if roll < 0.2:
        size = rng.choice(SPECIAL_SIZES)
    else:
        # log-uniform sides: mostly small, some poster-sized
        size = tuple(int(round(2 ** rng.uniform(0, np.log2(max_side)))) for _ in range(2))
    options = _format_options(fmt, mode, lambda _name, choices: rng.choice(choices))
    spec = FileSpec(
        fmt=fmt,
        mode=mode,
        size=size,
        picture=rng.choice(PICTURES),
        seed=rng.randrange(2**31),
        orientation=rng.randint(1, 8) if rng.random() < 0.5 else 1,
        frames=rng.choice((1, 1, 1, 2, 3)),
        alpha=rng.choice(ALPHAS),
        transparent_key=rng.random() < 0.3,
        options=options,
    )
    return _finish(spec)


# --------------------------------------------------------------------------- mutants

MUTATIONS = (
    "bit_flips",
    "byte_noise",
    "truncate",
    "zero_run",
    "splice",
    "header_only",
    "repeat_run",
    "drop_chunk",
    "huge_size",
)


def mutate(
    data: bytes, rng: random.Random, donor: bytes | None = None, kind: str | None = None
) -> tuple[bytes, str]:
    """A broken variant of ``data`` and the name of what was done to it.

    ``donor`` is a second valid file for splices. Changes cluster near the start half the
    time, where headers and chunk tables live. PNG mutants get their chunk CRCs fixed now
    and then, so the decoder gets past its checksum and into the pixel data.
    """
    kind = kind or rng.choice(MUTATIONS)
    n = len(data)
    buf = bytearray(data)

    def position() -> int:
        return rng.randrange(min(n, 64)) if rng.random() < 0.5 else rng.randrange(n)

    if n == 0:
        return b"\0", "bit_flips"
    if kind == "bit_flips":
        for _ in range(rng.choice((1, 1, 2, 4, 16))):
            buf[position()] ^= 1 << rng.randrange(8)
    elif kind == "byte_noise":
        for _ in range(rng.randint(1, 8)):
            buf[position()] = rng.randrange(256)
    elif kind == "truncate":
        cut = rng.choice(
            (rng.randrange(n), max(0, n - rng.randint(1, 16)), rng.randrange(min(n, 64)))
        )
        buf = buf[:cut]
    elif kind == "zero_run":
        start = position()
        end = min(n, start + rng.randint(1, max(1, n // 4)))
        buf[start:end] = bytes(end - start)
    elif kind == "splice":
        other = donor or data
        a, b = png_chunks(data), png_chunks(other)
        if a and b and rng.random() < 0.7:
            cut_a, cut_b = rng.randrange(1, len(a) + 1), rng.randrange(len(b))
            return png_from_chunks(a[:cut_a] + b[cut_b:]), "splice"
        buf = bytearray(data[: rng.randrange(n)] + other[rng.randrange(len(other)) :])
    elif kind == "header_only":
        buf = buf[: _header_length(data, rng)]
    elif kind == "repeat_run":
        start = position()
        run = bytes(buf[start : start + rng.randint(1, 256)])
        buf[start:start] = run * rng.randint(1, 4)
    elif kind == "drop_chunk":
        chunks = png_chunks(data)
        if chunks and len(chunks) > 1:
            i = rng.randrange(len(chunks))
            if rng.random() < 0.5:
                chunks = chunks[:i] + chunks[i + 1 :]
            else:
                chunks = chunks[: i + 1] + chunks[i:]
            return png_from_chunks(chunks), "drop_chunk"
        start = position()
        del buf[start : start + rng.randint(1, 64)]
    elif kind == "huge_size":
        buf = bytearray(_lie_about_size(data, rng))
    if rng.random() < 0.5:
        chunks = png_chunks(bytes(buf))
        if chunks:
            return png_from_chunks(chunks), kind + "+crc"
    return bytes(buf), kind


def _header_length(data: bytes, rng: random.Random) -> int:
    """Where the pixel data starts, roughly: a cut there leaves only the header."""
    chunks = png_chunks(data)
    if chunks is not None:
        return 8 + sum(12 + len(body) for kind, body in chunks[:1])
    if data.startswith(b"\xff\xd8"):
        sos = data.find(b"\xff\xda")
        return sos if sos > 0 else min(len(data), 20)
    if data.startswith(b"GIF"):
        return 13
    if data[:4] == b"RIFF":
        return 30
    if data[:2] in (b"BM",):
        return 54
    return rng.randint(1, min(len(data), 64))


def _lie_about_size(data: bytes, rng: random.Random) -> bytes:
    """``data`` with the width/height fields of its header set to large values."""
    width, height = rng.choice(((65535, 65535), (100_000, 3), (30_000, 30_000), (0, 5)))
    buf = bytearray(data)
    chunks = png_chunks(data)
    if chunks and chunks[0][0] == b"IHDR":
        ihdr = struct.pack(">II", width, height) + chunks[0][1][8:]
        return png_from_chunks([(b"IHDR", ihdr), *chunks[1:]])
    if data.startswith(b"GIF") and len(buf) >= 10:
        buf[6:10] = struct.pack("<HH", min(width, 65535), min(height, 65535))
    elif data[:2] == b"BM" and len(buf) >= 26:
        buf[18:26] = struct.pack("<ii", min(width, 2**31 - 1), min(height, 2**31 - 1))
    elif data.startswith(b"\xff\xd8"):
        sof = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))
        if sof > 0 and sof + 9 <= len(buf):
            buf[sof + 5 : sof + 9] = struct.pack(">HH", min(height, 65535), min(width, 65535))
    elif data[:2] == b"P6" or data[:2] == b"P5":
        head = data.split(b"\n", 2)
        if len(head) == 3:
            return head[0] + f"\n{width} {height}\n".encode() + head[2].split(b"\n", 1)[-1]
    return bytes(buf)


# --------------------------------------------------------------------------- reference


@dataclass
class Reference:
    """What an independent decoder makes of a file."""

    decodes: bool | None  # None: too large to try
    fmt: str | None = None
    frames: int = 0
    size: tuple[int, int] | None = None
    detail: str | None = None


def reference_decode(data: bytes) -> Reference:
    """Pillow with every plugin, every frame loaded; libvips for SVG documents.

    Any exception means "does not fully decode": this is the oracle, not the code under
    test, so it must not share that code's idea of which errors count.
    """
    import warnings

    fmt = None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with Image.open(io.BytesIO(data)) as image:
                fmt = image.format
                width, height = image.size
                if width * height > REFERENCE_MAX_PIXELS:
                    return Reference(None, fmt, 0, (width, height), "too large to try")
                frames = getattr(image, "n_frames", 1)
                for i in range(frames):
                    image.seek(i)
                    image.load()
                return Reference(True, fmt, frames, (width, height))
    except Exception as err:  # noqa: BLE001 - the oracle: every failure counts as one
        pillow_failure = f"{type(err).__name__}: {err}"
    if b"<svg" in data[:4096]:
        return _reference_svg(data)
    return Reference(False, fmt, 0, None, pillow_failure)


def _reference_svg(data: bytes) -> Reference:
    import pyvips

    try:
        image = pyvips.Image.svgload_buffer(data)
        if image.width * image.height > REFERENCE_MAX_PIXELS:
            return Reference(None, "SVG", 0, (image.width, image.height), "too large to try")
        image.write_to_memory()
        return Reference(True, "SVG", 1, (image.width, image.height))
    except pyvips.Error as err:
        return Reference(False, "SVG", 0, None, " ".join(str(err).split()))


# --------------------------------------------------------------------------- edge cases


def edge_cases() -> list[tuple[str, bytes, dict]]:
    """Hand-made files: (name, bytes, expectations). ``expect`` is the status postermap
    must give (None: either is defensible), ``size`` the upright size when ok."""
    cases: list[tuple[str, bytes, dict]] = []

    def add(name: str, data: bytes, expect: str | None, **extra: Any) -> None:
        cases.append((name, data, {"expect": expect, **extra}))

    def saved(image: Image.Image, fmt: str, **kw: Any) -> bytes:
        out = io.BytesIO()
        image.save(out, fmt, **kw)
        return out.getvalue()

    gradient16 = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (64, 1))
    add("empty.png", b"", "corrupt")
    add("one_byte.jpg", b"\xff", "corrupt")
    for name, magic in (
        ("magic.png", b"\x89PNG\r\n\x1a\n"),
        ("magic.jpg", b"\xff\xd8\xff"),
        ("magic.gif", b"GIF89a"),
        ("magic.webp", b"RIFF\0\0\0\0WEBP"),
        ("magic.bmp", b"BM"),
        ("magic.tif", b"II*\0"),
        ("magic.ppm", b"P6"),
        ("magic.ico", b"\0\0\1\0"),
        ("magic.avif", b"\0\0\0\x1cftypavif"),
        ("magic.heic", b"\0\0\0\x18ftypheic"),
        ("magic.svg", b"<svg"),
    ):
        add(name, magic, "corrupt")
    add("html.png", b"<!DOCTYPE html><html><body><svg></svg>Not found</body></html>", "corrupt")
    add("text.JPG", b"just some text\n" * 10, "corrupt")
    add(
        "eps_named.jpg", b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n", "corrupt"
    )
    rgb = Image.new("RGB", (8, 8), (200, 30, 30))
    for other in ("QOI", "TGA", "PCX", "SGI", "DDS"):  # Pillow reads them; postermap must not
        try:
            add(f"{other.lower()}_named.png", saved(rgb, other), "corrupt", other_format=other)
        except (OSError, KeyError, ValueError):
            pass
    add(
        "bomb.png",
        png_from_chunks(
            [
                (b"IHDR", struct.pack(">IIBBBBB", 65535, 65535, 8, 2, 0, 0, 0)),
                (b"IDAT", zlib.compress(b"\0" * 1000)),
                (b"IEND", b""),
            ]
        ),
        "corrupt",
        reason="too_large",
    )
    add(
        "zero_size.png",
        png_from_chunks(
            [
                (b"IHDR", struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)),
                (b"IDAT", zlib.compress(b"")),
                (b"IEND", b""),
            ]
        ),
        "corrupt",
    )
    add(
        "bomb.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="100000" height="100000">'
        b'<rect width="10" height="10"/></svg>',
        "corrupt",
        reason="too_large",
    )
    add(
        "broken.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect',
        "corrupt",
    )
    add(
        "viewbox_only.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 30 20">'
        b'<rect width="30" height="20" fill="red"/></svg>',
        "ok",
        size=[30, 20],
    )
    add(
        "external_ref.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg" '
        b'xmlns:xlink="http://www.w3.org/1999/xlink" width="16" height="16">'
        b'<image xlink:href="file:///etc/hostname" width="16" height="16"/>'
        b'<rect width="8" height="8" fill="blue"/></svg>',
        None,
    )
    add(
        "gradient16.png",
        saved(Image.fromarray(gradient16), "PNG"),
        "ok",
        size=[256, 64],
        high_contrast=True,
    )
    add(
        "gradient16.tif",
        saved(Image.fromarray(gradient16), "TIFF"),
        "ok",
        size=[256, 64],
        high_contrast=True,
    )
    add(
        "gradient16.pgm",
        saved(Image.fromarray(gradient16), "PPM"),
        "ok",
        size=[256, 64],
        high_contrast=True,
    )
    dark16 = (gradient16 // 64).astype(np.uint16)  # 0..1023 of 65535: a nearly black card
    add(
        "dark16.png", saved(Image.fromarray(dark16), "PNG"), "ok", size=[256, 64], low_contrast=True
    )
    nan_f = np.tile(np.linspace(0, 1, 64, dtype=np.float32), (16, 1))
    nan_f[0, 0], nan_f[0, 1], nan_f[0, 2] = np.nan, np.inf, -np.inf
    add(
        "nonfinite.pfm",
        saved(Image.fromarray(nan_f), "PPM"),
        "ok",
        size=[64, 16],
        high_contrast=True,
    )
    wide = np.tile(np.linspace(-5e6, 5e6, 64).astype(np.int32), (16, 1))
    add(
        "wide_int.tif",
        saved(Image.fromarray(wide), "TIFF"),
        "ok",
        size=[64, 16],
        high_contrast=True,
    )
    add(
        "cmyk.jpg",
        saved(Image.new("CMYK", (20, 10), (0, 255, 255, 0)), "JPEG"),
        "ok",
        size=[20, 10],
    )
    for size in ((1, 1), (2, 2), (1, 5000), (5000, 1), (1, 65535)):
        add(
            f"line_{size[0]}x{size[1]}.png",
            saved(Image.new("L", size, 90), "PNG"),
            "ok",
            size=list(size),
        )
    for size in ((1, 1), (2, 2)):
        for fmt, ext in (("JPEG", "jpg"), ("PNG", "png")):
            add(
                f"tiny_{size[0]}x{size[1]}.{ext}",
                saved(Image.new("RGB", size, (9, 99, 199)), fmt),
                "ok",
                size=list(size),
            )
    jpeg = saved(Image.new("RGB", (30, 20), (10, 120, 200)), "JPEG")
    payload = b"Exif\0\0MM\0*\0\0\0\x08\xff\xff\0"  # a directory claiming 65535 entries
    broken_exif = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    add("broken_exif.jpg", jpeg[:2] + broken_exif + jpeg[2:], "ok", size=[30, 20])
    for value in (0, 9, 65535):
        exif = Image.Exif()
        exif[0x0112] = value
        add(
            f"orientation_{value}.jpg",
            saved(Image.new("RGB", (30, 20)), "JPEG", exif=exif.tobytes()),
            "ok",
            size=[30, 20],
        )
    exif = Image.Exif()
    exif[0x0112] = "six"
    try:
        add(
            "orientation_text.jpg",
            saved(Image.new("RGB", (30, 20)), "JPEG", exif=exif.tobytes()),
            "ok",
            size=[30, 20],
        )
    except (TypeError, struct.error, ValueError):
        pass
    frames = [Image.new("P", (16, 16), i) for i in (10, 100, 200)]
    anim = saved(frames[0], "GIF", save_all=True, append_images=frames[1:])
    add("anim_cut.gif", anim[: len(anim) - 12], None)  # first frame whole, a later one cut
    add("gif_no_frames.gif", anim[:13] + b"\x3b", "corrupt")
    icons = Image.new("RGBA", (256, 256), (0, 200, 0, 255))
    add(
        "big.ico",
        saved(icons, "ICO", sizes=[(16, 16), (48, 48), (256, 256)]),
        "ok",
        size=[256, 256],
    )
    add(
        "lab.tif",
        saved(Image.new("RGB", (12, 12), (250, 20, 20)).convert("LAB"), "TIFF"),
        "ok",
        size=[12, 12],
    )
    add(
        "premultiplied.webp",
        saved(Image.new("RGBa", (8, 8), (100, 50, 20, 128)), "WEBP", lossless=True),
        "ok",
        size=[8, 8],
    )
    return cases


# --------------------------------------------------------------------------- corpus


def write_corpus(out_dir: Path, n: int, seed: int = 0) -> list[dict]:
    """Write ``n`` files into ``out_dir`` and return one expectation record per file.

    About half are generated valid files, 40 % mutants of generated files (the donor of
    a splice is another generated file) and the rest the :func:`edge_cases`, each in the
    mix once (more cases than ``n`` allows are left out). Extensions are sometimes upper
    or mixed case. Every record has ``name`` (relative path), ``origin``, the
    :class:`Reference` verdict (``reference_decodes``, ``reference_format``...), and
    ``expect``: ``ok`` / ``corrupt`` / None (either is defensible), plus ``size`` (upright
    width, height) and ``high_contrast`` / ``low_contrast`` where known.
    """
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    edges = edge_cases()
    n_edges = min(len(edges), max(0, n // 10))
    pool: list[GeneratedFile] = []
    for i in range(n):
        roll = rng.random()
        if i < n_edges:
            name, data, extra = edges[i]
            record = {"origin": "edge", "case": name, **extra}
            stem, ext = name.rsplit(".", 1)
            ext = "." + ext
        elif roll < 0.55 or len(pool) < 2:
            spec = random_spec(rng)
            generated = encode(spec)
            pool.append(generated)
            pool[:] = pool[-64:]
            data, ext = generated.data, generated.ext
            record = {
                "origin": "generated",
                "spec": _spec_record(spec),
                "expect": "ok",
                "size": list(generated.size),
                "high_contrast": spec.high_contrast,
            }
        else:
            base, donor = rng.sample(pool, 2)
            data, how = mutate(base.data, rng, donor.data)
            ext = base.ext
            record = {"origin": "mutant", "mutation": how, "spec": _spec_record(base.spec)}
            record["expect"] = None
        ext = _case_variant(ext, rng)
        name = f"{record['origin']}/{i // 1000:02d}/{i:06d}{ext}"
        path = out_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        ref = reference_decode(data)
        record.update(
            name=name,
            bytes=len(data),
            reference_decodes=ref.decodes,
            reference_format=ref.fmt,
            reference_frames=ref.frames,
            reference_detail=ref.detail,
        )
        records.append(record)
    return records


def _case_variant(ext: str, rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.08:
        return ext.upper()
    if roll < 0.12:
        return ext[:2].upper() + ext[2:]
    return ext


def _spec_record(spec: FileSpec) -> dict:
    record = asdict(spec)
    record["options"] = dict(spec.options)
    return record


def save_expectations(records: list[dict], path: Path) -> None:
    path.write_text("".join(json.dumps(r, sort_keys=True) + "\n" for r in records))
