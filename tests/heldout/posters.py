"""How a poster-like held-out set is assembled from a recipe, with its truth.

A :class:`Recipe` says how one poster of the set is drawn (from a seed and a title, maybe
carrying a trope motif), how originals are encoded, and which motifs, fonts and card
styles the boring and keeper images use. :func:`assemble` plants, in fixed proportions:

* ordinary posters (``keep``), some of them originals of
* exact copies (``duplicate``: byte copies; the same pixels as BMP, TIFF, lossless WebP,
  or a JPEG original's decoded pixels as PNG) and
* near duplicates (``near_duplicate``: every kind in :data:`compose.NEAR_KINDS`, a few
  originals with two);
* trope siblings (``keep`` + ``trope``): posters sharing one drawing at another position,
  size, maybe mirrored, on another background with another title; large motifs and small
  round ones (the harder case: the shared part is a small share of the picture);
* boring images: solid cards, smooth gradients, pixel-block and blurred upscales of tiny
  posters, templated title cards (one layout, only the title changes) and "no poster"
  placeholders (the same card at several sizes and compressions);
* hard keepers (``keep``): flat minimalist posters, small real graphics (an object a few
  dozen pixels wide on a plain field, or a small image file), shapes on a transparent
  background (RGBA PNG).

``scale`` multiplies every count (tests use a small one).
"""

from __future__ import annotations

import io
import itertools
import logging
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from tests.heldout import compose
from tests.heldout.labels import SetWriter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Trope:
    """One planted trope: the same drawing on every sibling.

    ``style`` is ``large`` (the motif dominates) or ``small`` (a small round motif among
    other things).
    """

    name: str
    motif: Image.Image
    style: str


@dataclass
class Recipe:
    name: str
    #: draws one poster: (seed, title, trope or None) -> image
    poster: Callable[[int, str, Trope | None], Image.Image]
    #: file extension and save options of an original: (image, rng) -> (ext, options)
    encode: Callable[[Image.Image, random.Random], tuple[str, dict]]
    tropes: list[Trope]
    #: motifs of the keepers (minimalist, small graphics, transparent shapes), each used
    #: once while they last (two keepers with one motif would be the same picture), and
    #: best not used by the posters
    keeper_motifs: Sequence[Image.Image]
    title_font: Path
    mark_font: Path
    #: templated title card styles (see :func:`compose.title_card`)
    card_styles: list[dict]
    #: canvas sizes of boring cards and keepers, first most common
    sizes: Sequence[compose.Size]
    counts: dict[str, int] = field(default_factory=dict)


DEFAULT_COUNTS = {
    "originals": 150,
    "near": 110,
    "trope_siblings": 20,
    "solid": 12,
    "gradient": 12,
    "blocky": 12,
    "cards_per_template": 8,
    "minimal": 20,
    "small": 16,
    "transparent": 16,
}
#: copies of each of the three placeholder designs
PLACEHOLDER_COPIES = (10, 6, 3)


def assemble(recipe: Recipe, out: Path, seed: int, scale: float = 1.0) -> Path:
    """Write the set into ``out`` (must be empty or absent); returns ``out``."""
    counts = {**DEFAULT_COUNTS, **recipe.counts}

    def count(name: str, least: int = 1) -> int:
        return max(least, round(counts[name] * scale))

    rng = random.Random(f"{recipe.name}/{seed}")
    writer = SetWriter(out, recipe.name, seed)
    # consecutive poster seeds: a recipe can pick its main motif as pool[seed % len(pool)],
    # so posters share a motif only once the pool is used up
    seeds = itertools.count(rng.randrange(2**30))
    used_titles: set[str] = set()

    def fresh_title(words: int | None = None) -> str:
        while True:
            text = compose.title(rng, words)
            if text not in used_titles:
                used_titles.add(text)
                return text

    n_orig, n_near = count("originals", 4), min(count("near", 2), count("originals", 4))
    for i in range(n_orig):
        poster_seed = next(seeds)
        text = fresh_title()
        image = recipe.poster(poster_seed, text, None)
        ext, options = recipe.encode(image, rng)
        original = writer.save(
            image, f"orig-{i}", ext, "keep", kind="poster", title=text, **options
        )
        if ext == "jpg":  # what a reader gets back from the file
            image = Image.open(out / original)
            image.load()
        if i % 6 == 1:
            writer.copy_bytes(original, f"bytecopy-{i}")
        if i % 10 == 7:
            _same_pixels(writer, image, original, ext, f"reenc-{i}", rng)
        kinds = []
        if i < n_near:
            kinds.append(compose.NEAR_KINDS[i % len(compose.NEAR_KINDS)])
            if i % 9 == 4:
                kinds.append(compose.NEAR_KINDS[(i + 3) % len(compose.NEAR_KINDS)])
        for kind in kinds:
            other = fresh_title()

            def retitled(seed_=poster_seed, other_=other) -> Image.Image:
                return recipe.poster(seed_, other_, None)

            variant, vext, voptions = compose.near_variant(
                kind, image, rng, retitled, recipe.mark_font
            )
            writer.save(
                variant,
                f"near-{kind}-{i}",
                vext,
                "near_duplicate",
                duplicate_of=original,
                kind=f"near:{kind}",
                title=other if kind == "retitle" else text,
                **voptions,
            )

    for trope in recipe.tropes:
        for j in range(count("trope_siblings", 3)):
            text = fresh_title()
            image = recipe.poster(next(seeds), text, trope)
            ext, options = recipe.encode(image, rng)
            writer.save(
                image,
                f"trope-{trope.name}-{j}",
                ext,
                "keep",
                trope=trope.name,
                kind=f"trope:{trope.style}",
                title=text,
                **options,
            )

    _boring(recipe, writer, rng, count, fresh_title, scale, seeds)
    _keepers(recipe, writer, rng, count, fresh_title)
    log.info("%s seed %d: %d images in %s", recipe.name, seed, len(writer.labels), out)
    return writer.finish()


def _same_pixels(
    writer: SetWriter, image: Image.Image, original: str, ext: str, key: str, rng: random.Random
) -> None:
    """The original's pixels in another lossless format (a decoded JPEG as PNG)."""
    if ext == "jpg":
        fmt, options = "png", {}
    else:
        fmt, options = rng.choice((("bmp", {}), ("tiff", {}), ("webp", {"lossless": True})))
    rgb = image.convert("RGB")
    writer.save(rgb, key, fmt, "duplicate", duplicate_of=original, kind=f"exact:{fmt}", **options)


def _size(recipe: Recipe, rng: random.Random) -> compose.Size:
    sizes = recipe.sizes
    return sizes[0] if rng.random() < 0.7 else rng.choice(sizes)


def _boring(
    recipe: Recipe,
    writer: SetWriter,
    rng: random.Random,
    count: Callable[..., int],
    fresh_title: Callable[..., str],
    scale: float,
    seeds: Iterator[int],
) -> None:
    for i in range(count("solid")):
        image = compose.solid_card(rng, _size(recipe, rng))
        ext = rng.choice(("png", "png", "jpg"))
        writer.save(image, f"solid-{i}", ext, "boring", kind="boring:solid", quality=90)
    for i in range(count("gradient")):
        image = compose.smooth_gradient(rng, _size(recipe, rng))
        writer.save(image, f"gradient-{i}", "png", "boring", kind="boring:gradient")
    for i in range(count("blocky")):
        poster = recipe.poster(next(seeds), fresh_title(), None)
        image = compose.blocky(poster, rng)
        writer.save(image, f"blocky-{i}", "png", "boring", kind="boring:upscale")
    for t, style in enumerate(recipe.card_styles):
        size = _size(recipe, rng)
        for i in range(count("cards_per_template", 6)):
            image = compose.title_card(style, fresh_title(), size)
            ext = style.get("ext", "png")
            writer.save(image, f"card-{t}-{i}", ext, "boring", kind="boring:template", quality=90)
    # one site placeholder is common, one occasional, one rare
    for design, copies in enumerate(PLACEHOLDER_COPIES):
        base = compose.placeholder(design, recipe.sizes[0], recipe.title_font)
        for i in range(max(2, round(copies * scale))):
            factor = rng.uniform(0.5, 1.8) if i else 1.0
            size = (round(base.width * factor), round(base.height * factor))
            image = base.resize(size, Image.Resampling.BICUBIC) if i else base
            quality = rng.randint(60, 95)
            image = _recompressed(image, quality) if i % 2 else image
            writer.save(
                image,
                f"placeholder-{design}-{i}",
                "jpg",
                "boring",
                kind="boring:placeholder",
                quality=quality,
            )


def _recompressed(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    buffer.seek(0)
    out = Image.open(buffer)
    out.load()
    return out


def _keepers(
    recipe: Recipe,
    writer: SetWriter,
    rng: random.Random,
    count: Callable[..., int],
    fresh_title: Callable[..., str],
) -> None:
    motifs = itertools.cycle(recipe.keeper_motifs)
    for i in range(count("minimal")):
        text = fresh_title(rng.choice((1, 1, 2)))
        image = compose.minimalist(rng, _size(recipe, rng), next(motifs), recipe.title_font, text)
        ext = rng.choice(("png", "png", "jpg"))
        writer.save(
            image, f"minimal-{i}", ext, "keep", kind="keeper:minimalist", title=text, quality=93
        )
    for i in range(count("small")):
        if i % 2:
            side = rng.randint(48, 96)
            field = (side, rng.choice((side, round(side * 1.5))))
        else:
            field = _size(recipe, rng)
        image = compose.small_graphic(rng, next(motifs), field)
        kind = "keeper:small-file" if i % 2 else "keeper:small-object"
        writer.save(image, f"small-{i}", "png", "keep", kind=kind)
    for i in range(count("transparent")):
        size = _size(recipe, rng) if i % 3 else (rng.randint(100, 260),) * 2
        image = compose.transparent_shape(rng, next(motifs), size)
        writer.save(image, f"transparent-{i}", "png", "keep", kind="keeper:transparent")
