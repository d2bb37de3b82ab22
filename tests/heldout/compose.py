"""Building blocks the held-out poster generators share: backgrounds, motifs, titles, the
near-duplicate transforms, boring cards and hard keepers.

The recipes (which blocks, in what proportions, at what sizes) live in each generator;
these functions only draw. Every random choice comes from the ``random.Random`` passed in,
so a set is a pure function of its seed.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageFont, ImageOps

Size = tuple[int, int]
RGB = tuple[int, int, int]

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
LIBERATION = Path("/usr/share/fonts/truetype/liberation2")

#: title words (none shared with tests/cleanset.py's list)
WORDS = (
    "harbour", "silent", "empire", "velvet", "orchard", "midnight", "paper", "glass",
    "thunder", "hollow", "crimson", "garden", "signal", "winter", "echo", "lantern",
    "canyon", "marble", "saint", "copper", "frontier", "bitter", "golden", "machine",
    "shadow", "tide", "violet", "engine", "meadow", "north", "savage", "quiet",
    "harvest", "circus", "falcon", "iron", "ember", "lost", "tender", "atlas",
    "crown", "desert", "mirror", "orbit", "pilgrim", "rebel", "salt", "temple",
    "under", "wild", "zero", "after", "beyond", "broken", "cold", "distant",
    "electric", "fever", "heaven", "jungle", "kingdom", "lonely", "moon", "neon",
    "ocean", "prairie", "rapid", "sleep", "sugar", "tiger", "urban", "valley",
)  # fmt: skip
TAGLINES = (
    "one night changes everything",
    "the truth is out there",
    "nobody gets out alive",
    "a story of courage",
    "coming this summer",
    "based on a true story",
    "some doors stay closed",
    "love has no borders",
)


def title(rng: random.Random, words: int | None = None) -> str:
    n = words or rng.choice((1, 2, 2, 3, 3, 4))
    chosen = rng.sample(WORDS, n)
    if n >= 3 and rng.random() < 0.5:
        chosen.insert(rng.randrange(1, n), rng.choice(("of", "the", "and", "in")))
    return " ".join(chosen)


def colour(rng: random.Random, lo: int = 0, hi: int = 255) -> RGB:
    return (rng.randint(lo, hi), rng.randint(lo, hi), rng.randint(lo, hi))


def luminance(c: Sequence[float]) -> float:
    return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2]


def contrasting(c: Sequence[float], rng: random.Random) -> RGB:
    """A colour that reads on ``c``: light on dark, dark on light."""
    if luminance(c) < 128:
        return colour(rng, 200, 255)
    return colour(rng, 0, 60)


@lru_cache(maxsize=256)
def font(path: Path, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(str(path), size)


def fitted_font(path: Path, text: str, max_width: float, start: int) -> ImageFont.FreeTypeFont:
    """The largest size <= ``start`` at which ``text`` fits in ``max_width`` pixels."""
    size = start
    while size > 8:
        f = font(path, size)
        if f.getlength(text) <= max_width:
            return f
        size = int(size * 0.9)
    return font(path, 8)


# ---------------------------------------------------------------------------- motifs


def load_motif(path: Path, max_side: int = 640, max_pixels: int = 16_000_000) -> Image.Image | None:
    """An RGBA drawing cropped to its opaque part, or None when it is no usable motif
    (too big to open cheaply, no transparency, mostly empty or mostly filled, too thin)."""
    try:
        with warnings.catch_warnings():
            # a huge drawing is skipped below; Pillow's warning about it is noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > max_pixels:
                    return None
                if im.mode not in ("RGBA", "LA", "P", "PA"):
                    return None
                im = im.convert("RGBA")
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    alpha = im.getchannel("A")
    box = alpha.point(lambda v: 255 if v > 24 else 0).getbbox()
    if box is None:
        return None
    im = im.crop(box)
    if min(im.size) < 40 or max(im.size) / min(im.size) > 3.0:
        return None
    coverage = float(np.asarray(im.getchannel("A"), dtype=np.float32).mean() / 255)
    if not 0.15 <= coverage <= 0.97:
        return None
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    return im


def look(motif: Image.Image) -> np.ndarray:
    """A crude appearance vector (16x16 colour thumbnail over grey, centred, unit length):
    two motifs with a dot product above ~0.5 look alike (a CD and a DVD)."""
    side = max(motif.size)
    square = Image.new("RGBA", (side, side), (128, 128, 128, 255))
    square.alpha_composite(motif, ((side - motif.width) // 2, (side - motif.height) // 2))
    a = np.asarray(square.convert("RGB").resize((16, 16), Image.Resampling.BOX), np.float32)
    a = a.ravel() - a.mean()
    return a / (np.linalg.norm(a) or 1.0)


def split_tropes(
    motifs: Iterable[Image.Image], n: int, fixed: Sequence[Image.Image], pool_size: int
) -> tuple[list[Image.Image], list[Image.Image]]:
    """(n trope motifs, pool): trope motifs unlike each other and the ``fixed`` ones (look
    below 0.5); the pool (up to ``pool_size``) holds only motifs clearly unlike every trope
    motif (below 0.6), so no two tropes and no ordinary poster share a look-alike drawing."""
    chosen: list[Image.Image] = []
    looks = [look(m) for m in fixed]
    pool: list[tuple[Image.Image, np.ndarray]] = []
    for motif in motifs:
        v = look(motif)
        if len(chosen) < n and all(float(v @ u) < 0.5 for u in looks):
            chosen.append(motif)
            looks.append(v)
        else:
            pool.append((motif, v))
        if len(chosen) == n and len(pool) >= pool_size + pool_size // 4:
            break
    kept = [m for m, v in pool if all(float(v @ u) < 0.6 for u in looks)]
    return chosen, kept[:pool_size]


def scaled(motif: Image.Image, width: int) -> Image.Image:
    height = max(1, round(motif.height * width / motif.width))
    return motif.resize((max(1, width), height), Image.Resampling.LANCZOS)


def paste(
    canvas: Image.Image,
    motif: Image.Image,
    width: int,
    centre: tuple[float, float],
    *,
    flip: bool = False,
    shadow: bool = False,
    angle: float = 0.0,
) -> None:
    """Paste ``motif`` scaled to ``width`` px with its centre at ``centre`` (pixels)."""
    m = scaled(motif, width)
    if flip:
        m = ImageOps.mirror(m)
    if angle:
        m = m.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    x, y = round(centre[0] - m.width / 2), round(centre[1] - m.height / 2)
    if shadow:
        dark = Image.new("RGBA", m.size, (0, 0, 0, 0))
        dark.putalpha(m.getchannel("A").point(lambda v: v * 0.55))
        dark = dark.filter(ImageFilter.GaussianBlur(max(2, width // 40)))
        offset = max(2, width // 30)
        _over(canvas, dark, (x + offset, y + offset))
    _over(canvas, m, (x, y))


def _over(canvas: Image.Image, layer: Image.Image, xy: tuple[int, int]) -> None:
    """``layer`` composited over ``canvas`` at ``xy`` (which may lie partly outside);
    an RGBA canvas keeps correct alpha (a masked paste would square it)."""
    if canvas.mode == "RGBA":
        full = Image.new("RGBA", canvas.size, (0, 0, 0, 0))
        full.paste(layer, xy)
        canvas.alpha_composite(full)
    else:
        canvas.paste(layer, xy, layer)


def silhouette(motif: Image.Image, fill: RGB) -> Image.Image:
    """The motif's shape in one flat colour (for flat, minimalist designs)."""
    flat = Image.new("RGBA", motif.size, (*fill, 0))
    flat.putalpha(motif.getchannel("A").point(lambda v: 255 if v > 100 else 0))
    return flat


# ----------------------------------------------------------------------- backgrounds


def _noise(rng: random.Random, size: Size, sigma: float) -> np.ndarray:
    return np.random.default_rng(rng.randrange(2**32)).normal(0, sigma, (size[1], size[0], 1))


def _to_image(a: np.ndarray) -> Image.Image:
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def cover(image: Image.Image, size: Size, rng: random.Random, zoom: float = 1.0) -> Image.Image:
    """A random crop of ``image`` with the aspect of ``size`` (``zoom`` >= 1 crops
    tighter), resized to ``size``."""
    w, h = image.size
    aspect = size[0] / size[1]
    cw = min(w, h * aspect) / zoom
    ch = cw / aspect
    x = rng.uniform(0, w - cw)
    y = rng.uniform(0, h - ch)
    return image.resize(size, Image.Resampling.LANCZOS, box=(x, y, x + cw, y + ch))


def photo_background(photos: Sequence[Image.Image], rng: random.Random, size: Size) -> Image.Image:
    """A crop of a photo, maybe mirrored, darkened, desaturated, blurred or tinted."""
    image = cover(rng.choice(photos), size, rng, zoom=rng.uniform(1.0, 2.8)).convert("RGB")
    if rng.random() < 0.5:
        image = ImageOps.mirror(image)
    image = ImageEnhance.Brightness(image).enhance(rng.uniform(0.45, 1.1))
    image = ImageEnhance.Color(image).enhance(rng.uniform(0.0, 1.4))
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(1, 4)))
    if rng.random() < 0.35:
        tint = Image.new("RGB", size, colour(rng))
        image = Image.blend(image, tint, rng.uniform(0.2, 0.5))
    return image


def texture_background(
    textures: Sequence[Image.Image], rng: random.Random, size: Size
) -> Image.Image:
    image = cover(rng.choice(textures), size, rng, zoom=rng.uniform(1.0, 3.0)).convert("RGB")
    if rng.random() < 0.5:
        image = ImageEnhance.Color(image).enhance(rng.uniform(0.2, 1.2))
    return image


def clouds(rng: random.Random, size: Size) -> Image.Image:
    """Multi-scale smooth noise mapped between two colours, plus grain."""
    w, h = size
    total = np.zeros((h, w), np.float32)
    nprng = np.random.default_rng(rng.randrange(2**32))
    for cells, weight in ((3, 1.0), (7, 0.5), (15, 0.25), (31, 0.12)):
        grid = nprng.random((cells * h // w + 2, cells + 1)).astype(np.float32)
        layer = Image.fromarray(grid).resize(size, Image.Resampling.BICUBIC)
        total += weight * np.asarray(layer)
    total = (total - total.min()) / (np.ptp(total) or 1.0)
    a, b = np.array(colour(rng), np.float32), np.array(colour(rng), np.float32)
    field = a * (1 - total[..., None]) + b * total[..., None]
    return _to_image(field + _noise(rng, size, rng.uniform(3, 9)))


def linear_field(size: Size, stops: Sequence[RGB], angle: float) -> np.ndarray:
    """Float RGB array of a linear gradient through ``stops`` along ``angle`` degrees."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = math.cos(math.radians(angle)), math.sin(math.radians(angle))
    t = xx * dx + yy * dy
    t = (t - t.min()) / (np.ptp(t) or 1.0)
    return _ramp(t, stops)


def radial_field(size: Size, stops: Sequence[RGB], centre: tuple[float, float]) -> np.ndarray:
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = np.hypot(xx - centre[0] * w, yy - centre[1] * h)
    t = t / (t.max() or 1.0)
    return _ramp(t, stops)


def _ramp(t: np.ndarray, stops: Sequence[RGB]) -> np.ndarray:
    points = np.linspace(0, 1, len(stops))
    channels = [np.interp(t, points, [s[c] for s in stops]) for c in range(3)]
    return np.stack(channels, axis=-1).astype(np.float32)


def gradient_grain(rng: random.Random, size: Size) -> Image.Image:
    field = linear_field(size, [colour(rng), colour(rng)], rng.uniform(0, 360))
    return _to_image(field + _noise(rng, size, rng.uniform(6, 14)))


def radial_grain(rng: random.Random, size: Size) -> Image.Image:
    stops = [colour(rng, 120), colour(rng, 0, 140)]
    field = radial_field(size, stops, (rng.uniform(0.2, 0.8), rng.uniform(0.2, 0.8)))
    return _to_image(field + _noise(rng, size, rng.uniform(4, 10)))


def flat_grain(rng: random.Random, size: Size) -> Image.Image:
    """A flat colour with paper grain and a vignette."""
    base = np.array(colour(rng), np.float32)
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    vignette = 1 - 0.35 * (((xx / w - 0.5) ** 2 + (yy / h - 0.5) ** 2) / 0.5)
    return _to_image(base * vignette[..., None] + _noise(rng, size, rng.uniform(3, 7)))


def split_field(rng: random.Random, size: Size) -> Image.Image:
    """Two flat colours divided by a slanted line, with grain."""
    w, h = size
    image = Image.new("RGB", size, colour(rng))
    y0, y1 = rng.uniform(0.2, 0.8) * h, rng.uniform(0.2, 0.8) * h
    ImageDraw.Draw(image).polygon([(0, y0), (w, y1), (w, h), (0, h)], fill=colour(rng))
    return _to_image(np.asarray(image, np.float32) + _noise(rng, size, 4))


def stripes(rng: random.Random, size: Size) -> Image.Image:
    w, h = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    cuts = sorted(rng.uniform(0, 1) for _ in range(rng.randint(2, 6)))
    edges = [0.0, *cuts, 1.0]
    for a, b in zip(edges, edges[1:], strict=False):
        draw.rectangle((0, a * h, w, b * h), fill=colour(rng))
    return _to_image(np.asarray(image, np.float32) + _noise(rng, size, 5))


def halftone(rng: random.Random, size: Size) -> Image.Image:
    """Dots on a grid whose radius grows along one direction (a printed screen)."""
    w, h = size
    image = Image.new("RGB", size, colour(rng))
    draw = ImageDraw.Draw(image)
    ink = colour(rng)
    step = rng.randint(9, 18)
    vertical = rng.random() < 0.5
    for y in range(0, h + step, step):
        for x in range(0, w + step, step):
            t = (y / h) if vertical else (x / w)
            r = step * 0.5 * (0.15 + 0.85 * t)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=ink)
    return image


# ---------------------------------------------------------------------------- titles


def draw_title(
    image: Image.Image,
    text: str,
    font_path: Path,
    rng: random.Random,
    *,
    place: str = "bottom",
    size: int | None = None,
    fill: RGB | None = None,
    band: RGB | None = None,
    stroke: bool = False,
) -> None:
    """Draw a title across the poster (auto-fitted to 88% of its width).

    ``place``: top, bottom or middle; ``band`` paints a solid strip behind it.
    """
    w, h = image.size
    f = fitted_font(font_path, text, 0.88 * w, size or max(12, w // 9))
    left, top, right, bottom = f.getbbox(text)
    tw, th = right - left, bottom - top
    y = {"top": 0.06 * h, "middle": 0.45 * h, "bottom": 0.86 * h - th}[place]
    x = (w - tw) / 2 + rng.uniform(-0.03, 0.03) * w
    draw = ImageDraw.Draw(image)
    if band is not None:
        pad = 0.35 * th + 4
        draw.rectangle((0, y - pad, w, y + th + pad), fill=band)
    if fill is None:
        ref = band if band is not None else _mean_colour(image, (0, int(y), w, int(y + th + 1)))
        fill = contrasting(ref, rng)
    outline = (0, 0, 0) if luminance(fill) > 128 else (255, 255, 255)
    draw.text(
        (x - left, y - top),
        text,
        font=f,
        fill=fill,
        stroke_width=max(1, th // 14) if stroke else 0,
        stroke_fill=outline,
    )


def draw_credits(image: Image.Image, font_path: Path, rng: random.Random) -> None:
    """A block of tiny condensed lines at the foot, as on real one-sheets."""
    w, h = image.size
    f = font(font_path, max(6, w // 45))
    draw = ImageDraw.Draw(image)
    ref = _mean_colour(image, (0, int(0.9 * h), w, h))
    ink = tuple(int(v) for v in contrasting(ref, rng))
    for line in range(rng.randint(2, 3)):
        words = " ".join(rng.choice(WORDS).upper() for _ in range(rng.randint(6, 10)))
        text = words[: int(w / (f.size * 0.55))]
        tw = f.getlength(text)
        draw.text(((w - tw) / 2, 0.93 * h + line * (f.size + 1)), text, font=f, fill=ink)


def _mean_colour(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[float, ...]:
    x0, y0, x1, y1 = box
    y0, y1 = max(0, y0), min(image.height, max(y1, y0 + 1))
    region = np.asarray(image.convert("RGB").crop((x0, y0, x1, y1)), np.float32)
    return tuple(region.reshape(-1, 3).mean(axis=0))


# ------------------------------------------------------------------- near duplicates

#: every transform a near duplicate of an original can have
NEAR_KINDS = (
    "resize",
    "jpeg",
    "crop",
    "border",
    "frame",
    "letterbox",
    "grade",
    "retitle",
    "watermark",
    "mirror",
)


def near_variant(
    kind: str,
    image: Image.Image,
    rng: random.Random,
    retitled: Callable[[], Image.Image],
    mark_font: Path,
) -> tuple[Image.Image, str, dict]:
    """(image, file extension, save options) of a near duplicate of ``image``.

    ``retitled`` renders the same art with another title (only the generator knows how).
    """
    w, h = image.size
    image = image.convert("RGB")
    if kind == "resize":
        factor = rng.choice((rng.uniform(0.45, 0.75), rng.uniform(1.25, 1.6)))
        method = rng.choice((Image.Resampling.LANCZOS, Image.Resampling.BICUBIC))
        out = image.resize((round(w * factor), round(h * factor)), method)
        return out, rng.choice(("png", "jpg")), {"quality": 92}
    if kind == "jpeg":
        return image, "jpg", {"quality": rng.randint(22, 45)}
    if kind == "crop":
        box = (
            rng.uniform(0.01, 0.06) * w,
            rng.uniform(0.01, 0.06) * h,
            w - rng.uniform(0.01, 0.06) * w,
            h - rng.uniform(0.01, 0.06) * h,
        )
        return image.crop(tuple(round(v) for v in box)), "png", {}
    if kind == "border":
        pad = round(rng.uniform(0.03, 0.08) * w)
        fill = rng.choice(((255, 255, 255), (0, 0, 0), colour(rng)))
        return ImageOps.expand(image, border=pad, fill=fill), "png", {}
    if kind == "frame":
        out = image.copy()
        draw = ImageDraw.Draw(out)
        ink = rng.choice(((250, 245, 230), (20, 20, 20), (180, 150, 60)))
        thick = max(3, round(0.025 * w))
        draw.rectangle((0, 0, w - 1, h - 1), outline=ink, width=thick)
        inset = thick + max(2, thick // 2)
        draw.rectangle((inset, inset, w - 1 - inset, h - 1 - inset), outline=ink, width=1)
        return out, "png", {}
    if kind == "letterbox":
        wide = rng.choice((16 / 9, 4 / 3, 1.0))
        cw = round(h * wide)
        bar = rng.choice(((0, 0, 0), (0, 0, 0), (255, 255, 255)))
        canvas = Image.new("RGB", (cw, h), bar)
        canvas.paste(image, ((cw - w) // 2, 0))
        return canvas, rng.choice(("png", "jpg")), {"quality": 90}
    if kind == "grade":
        return grade(image, rng), "png", {}
    if kind == "retitle":
        return retitled().convert("RGB"), "png", {}
    if kind == "watermark":
        return watermark(image, rng, mark_font), "jpg", {"quality": 88}
    if kind == "mirror":
        return ImageOps.mirror(image), "png", {}
    raise ValueError(f"unknown near-duplicate kind {kind!r}")


def grade(image: Image.Image, rng: random.Random) -> Image.Image:
    """A colour grade: warm/cool cast, teal-orange, sepia, faded or punchy contrast."""
    style = rng.choice(("warm", "cool", "teal-orange", "sepia", "faded", "punchy"))
    a = np.asarray(image, np.float32)
    if style == "warm":
        a = a * np.array([1.12, 1.0, 0.82])
    elif style == "cool":
        a = a * np.array([0.85, 0.98, 1.15])
    elif style == "teal-orange":
        lum = a.mean(axis=2, keepdims=True) / 255
        a = a + (lum - 0.5) * np.array([50, 10, -40]) + (0.5 - lum) * np.array([-30, 10, 35])
    elif style == "sepia":
        g = a @ np.array([0.299, 0.587, 0.114])
        a = np.stack([g * 1.07 + 20, g * 0.95 + 8, g * 0.78], axis=-1)
    elif style == "faded":
        a = 40 + a * 0.72
    else:
        a = (a - 128) * 1.3 + 128
    return _to_image(a)


def watermark(image: Image.Image, rng: random.Random, mark_font: Path) -> Image.Image:
    """A semi-transparent site name, in a corner or across the middle."""
    w, h = image.size
    text = rng.choice(("postersite.example", "(c) FILMARCHIVE", "SAMPLE", "movieposters.test"))
    layer = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    alpha = rng.randint(90, 150)
    if rng.random() < 0.5:
        f = fitted_font(mark_font, text, 0.5 * w, max(10, w // 18))
        draw.text((0.04 * w, 0.94 * h - f.size), text, font=f, fill=(255, 255, 255, alpha))
    else:
        f = fitted_font(mark_font, text, 0.9 * w, w // 7)
        tw = f.getlength(text)
        draw.text(((w - tw) / 2, h / 2 - f.size / 2), text, font=f, fill=(255, 255, 255, alpha))
        layer = layer.rotate(rng.uniform(20, 40), resample=Image.Resampling.BICUBIC)
    out = image.convert("RGBA")
    out.alpha_composite(layer)
    return out.convert("RGB")


# ---------------------------------------------------------------------------- boring


def solid_card(rng: random.Random, size: Size) -> Image.Image:
    sigma = rng.choice((0.0, 0.8, 1.8))
    base = np.full((size[1], size[0], 3), colour(rng), np.float32)
    return _to_image(base + (_noise(rng, size, sigma) if sigma else 0))


def smooth_gradient(rng: random.Random, size: Size) -> Image.Image:
    stops = [colour(rng) for _ in range(rng.choice((2, 2, 3)))]
    if rng.random() < 0.65:
        field = linear_field(size, stops, rng.uniform(0, 360))
    else:
        field = radial_field(size, stops, (rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)))
    return _to_image(field + _noise(rng, size, 0.6))


def blocky(poster: Image.Image, rng: random.Random) -> Image.Image:
    """A poster shrunk to a few dozen pixels and blown up again: in pixel blocks
    (nearest) or blurred (bilinear), as thumbnails served at poster size."""
    w, h = poster.size
    small_w = rng.randint(10, 24)
    small = poster.resize((small_w, round(small_w * h / w)), Image.Resampling.BOX)
    method = rng.choice(
        (Image.Resampling.NEAREST, Image.Resampling.NEAREST, Image.Resampling.BILINEAR)
    )
    return small.resize((w, h), method)


def title_card(style: dict, text: str, size: Size) -> Image.Image:
    """A site's plain templated card: the same layout every time, only the title changes.

    ``style``: ``bg``, ``ink``, ``accent`` colours, ``font`` path, ``rule`` (draw rules).
    """
    w, h = size
    image = Image.new("RGB", size, style["bg"])
    draw = ImageDraw.Draw(image)
    if style.get("rule"):
        draw.rectangle((0.08 * w, 0.08 * h, 0.92 * w, 0.92 * h), outline=style["accent"], width=2)
    lines = _wrap(text.upper(), 12)
    f = fitted_font(style["font"], max(lines, key=len), 0.78 * w, w // 8)
    y = h * 0.42 - len(lines) * f.size * 0.6
    for line in lines:
        tw = f.getlength(line)
        draw.text(((w - tw) / 2, y), line, font=f, fill=style["ink"])
        y += f.size * 1.2
    small = font(style["font"], max(8, w // 22))
    label = style.get("label", "FEATURE PRESENTATION")
    draw.text(((w - small.getlength(label)) / 2, 0.8 * h), label, font=small, fill=style["accent"])
    return image


def _wrap(text: str, width: int) -> list[str]:
    lines: list[str] = []
    for word in text.split():
        if lines and len(lines[-1]) + 1 + len(word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines or [""]


def placeholder(design: int, size: Size, font_path: Path) -> Image.Image:
    """A "no poster available" card (three designs), drawn at ``size``."""
    w, h = size
    if design == 0:
        image = Image.new("RGB", size, (214, 214, 214))
        draw = ImageDraw.Draw(image)
        cx, cy, r = w / 2, h * 0.4, w * 0.18
        draw.rounded_rectangle(
            (cx - r * 1.4, cy - r, cx + r * 1.4, cy + r), r * 0.25, fill=(150,) * 3
        )
        draw.ellipse((cx - r * 0.6, cy - r * 0.6, cx + r * 0.6, cy + r * 0.6), fill=(214,) * 3)
        lines, ink = ("NO POSTER", "AVAILABLE"), (120, 120, 120)
    elif design == 1:
        image = Image.new("RGB", size, (34, 36, 44))
        draw = ImageDraw.Draw(image)
        s = w * 0.22
        cx, cy = w / 2, h * 0.4
        draw.rectangle(
            (cx - s, cy - s, cx + s, cy + s), outline=(90, 94, 110), width=max(2, w // 60)
        )
        draw.line((cx - s, cy + s, cx + s, cy - s), fill=(90, 94, 110), width=max(2, w // 60))
        lines, ink = ("IMAGE NOT", "FOUND"), (150, 154, 170)
    else:
        image = Image.new("RGB", size, (245, 240, 230))
        draw = ImageDraw.Draw(image)
        draw.ellipse((w * 0.3, h * 0.25, w * 0.7, h * 0.25 + w * 0.4), fill=(200, 190, 175))
        lines, ink = ("COMING", "SOON"), (160, 150, 135)
    f = fitted_font(font_path, max(lines, key=len), 0.8 * w, w // 9)
    for i, line in enumerate(lines):
        draw.text(
            ((w - f.getlength(line)) / 2, h * 0.64 + i * f.size * 1.25), line, font=f, fill=ink
        )
    return image


# ----------------------------------------------------------------------- hard keepers


def minimalist(
    rng: random.Random, size: Size, motif: Image.Image, font_path: Path, text: str
) -> Image.Image:
    """A flat design in the Saul Bass manner: two or three flat colours, one bold shape
    (the motif's silhouette or a geometric form drawn with random proportions, so no two
    are the same design recoloured), a short title. No texture at all."""
    w, h = size
    bg = colour(rng)
    ink = contrasting(bg, rng) if rng.random() < 0.5 else colour(rng)
    image = Image.new("RGB", size, bg)
    draw = ImageDraw.Draw(image)

    def point(x0: float, x1: float, y0: float, y1: float) -> tuple[float, float]:
        return (w * rng.uniform(x0, x1), h * rng.uniform(y0, y1))

    form = rng.choice(("silhouette", "silhouette", "circle", "polygon", "bars", "rings", "horizon"))
    if form == "silhouette":
        width = round(w * rng.uniform(0.45, 0.9))
        paste(image, silhouette(motif, ink), width, point(0.35, 0.65, 0.3, 0.55))
    elif form == "circle":
        r = w * rng.uniform(0.12, 0.42)
        cx, cy = point(0.25, 0.75, 0.2, 0.6)
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=ink)
    elif form == "polygon":
        corners = rng.randint(3, 5)
        draw.polygon([point(0.0, 1.0, 0.05, 0.8) for _ in range(corners)], fill=ink)
    elif form == "bars":
        slope = rng.uniform(-0.25, 0.25) * h
        thick = rng.uniform(0.03, 0.09) * h
        for _ in range(rng.randint(1, 4)):
            y = h * rng.uniform(0.1, 0.75)
            draw.polygon([(0, y), (w, y + slope), (w, y + slope + thick), (0, y + thick)], fill=ink)
    elif form == "rings":
        cx, cy = point(0.2, 0.8, 0.2, 0.6)
        radii = sorted((w * rng.uniform(0.05, 0.5) for _ in range(rng.randint(2, 5))), reverse=True)
        for i, r in enumerate(radii):
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=ink if i % 2 == 0 else bg)
    else:  # a half disc on a horizon line, the line at a random height
        horizon = h * rng.uniform(0.35, 0.7)
        r = w * rng.uniform(0.15, 0.4)
        cx = w * rng.uniform(0.25, 0.75)
        draw.pieslice((cx - r, horizon - r, cx + r, horizon + r), 180, 360, fill=ink)
        draw.rectangle((0, horizon, w, h), fill=colour(rng))
    draw_title(
        image,
        text.upper(),
        font_path,
        rng,
        place=rng.choice(("top", "bottom", "bottom")),
        size=round(w / rng.uniform(8, 13)),
    )
    return image


def small_graphic(rng: random.Random, motif: Image.Image, field: Size) -> Image.Image:
    """One small real object (a few dozen pixels) on a plain field, nothing else."""
    w, h = field
    bg = rng.choice(((255, 255, 255), (248, 244, 236), (20, 20, 24), colour(rng, 150)))
    image = Image.new("RGB", field, bg)
    width = rng.randint(24, 64) if max(field) > 160 else round(min(field) * rng.uniform(0.6, 0.9))
    paste(
        image, motif, min(width, w - 4), (w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.65))
    )
    return image


def transparent_shape(rng: random.Random, motif: Image.Image, size: Size) -> Image.Image:
    """A motif alone on a fully transparent canvas (RGBA): product shots, logos, stickers."""
    w, h = size
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    width = round(w * rng.uniform(0.45, 0.9))
    paste(image, motif, width, (w / 2 + rng.uniform(-0.05, 0.05) * w, h / 2))
    return image
