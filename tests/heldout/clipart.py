"""Held-out set "clipart-posters": Open Clip Art drawings on photographs, DejaVu titles.

Differs from tests/cleanset.py and tests/tropes.py in every ingredient: motifs are Open
Clip Art drawings (Debian ``openclipart-png``, public domain) instead of Noto emoji;
backgrounds are crops of scikit-image's sample photographs (CC0 / public domain), smooth
multi-scale noise, gradients with grain or flat paper; posters are 2:3 at 300x450 (PNG)
or 600x900 (JPEG, a third of them); titles are set in DejaVu (Debian
``fonts-dejavu-core``) at the top or foot, some with an outline or a band, some with a
tagline and a credits block. One large motif plus up to three small ones, placed anywhere
(partly off the edge, overlapping). Tropes: six large drawings and two small round ones
(an eyeball, a billiard ball).
"""

from __future__ import annotations

import os
import random
from functools import lru_cache
from pathlib import Path

from PIL import Image

from tests.heldout import compose, sources
from tests.heldout.posters import Recipe, Trope, assemble

NAME = "clipart-posters"
SOURCES = ("openclipart", "skimage-photos", "dejavu")
FONTS = tuple(
    compose.DEJAVU / f
    for f in ("DejaVuSans-Bold.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSans.ttf", "DejaVuSerif.ttf")
)
SMALL_FONT = compose.DEJAVU / "DejaVuSans.ttf"
ROUND_MOTIFS = {
    "eyeball": "signs_and_symbols/eye_01.png",
    "eight-ball": "recreation/games/8_ball_jarno_vasamaa.png",
}
LARGE_TROPES = 6
KEEPERS = 60
POOL_SIZE = 400


@lru_cache(maxsize=4)
def _library(
    seed: int, pool_size: int
) -> tuple[list[Image.Image], list[Image.Image], list[Image.Image]]:
    """(large trope motifs, motif pool, round trope motifs), sampled with the seed; see
    :func:`compose.split_tropes`."""
    root = sources.source_path("openclipart")
    files = sorted({os.path.realpath(p) for p in root.rglob("*.png")})
    round_paths = [os.path.realpath(root / p) for p in ROUND_MOTIFS.values()]
    files = [f for f in files if f not in round_paths]
    random.Random(f"clipart-library/{seed}").shuffle(files)
    tropes = [compose.load_motif(Path(p), max_side=800) for p in round_paths]
    if any(m is None for m in tropes):
        raise sources.SourceUnavailable(f"{root}: a trope motif is missing or unusable")
    loaded = (m for m in (compose.load_motif(Path(p)) for p in files) if m is not None)
    large, pool = compose.split_tropes(loaded, LARGE_TROPES, tropes, pool_size)
    return large, pool, tropes


@lru_cache(maxsize=1)
def _photos() -> list[Image.Image]:
    folder = sources.source_path("skimage-photos")
    return [Image.open(folder / name).convert("RGB") for name in sources.SKIMAGE_PHOTOS]


def build(out: Path, seed: int, scale: float = 1.0) -> Path:
    """Write the labelled set into ``out``; returns ``out``."""
    sources.require(SOURCES)
    large, pool, round_motifs = _library(seed, max(40, round(POOL_SIZE * min(1.0, scale))))
    keepers = min(len(pool) // 4, KEEPERS)  # motifs of their own: see Recipe
    keeper_pool, pool = pool[:keepers], pool[keepers:]
    photos = _photos()
    tropes = [Trope(f"clipart-{i}", m, "large") for i, m in enumerate(large)]
    tropes += [Trope(name, m, "small") for name, m in zip(ROUND_MOTIFS, round_motifs, strict=True)]

    def poster(seed_: int, text: str, trope: Trope | None) -> Image.Image:
        rng = random.Random(seed_)
        size = (600, 900) if rng.random() < 0.33 else (300, 450)
        w, h = size
        pick = rng.random()
        if pick < 0.45:
            image = compose.photo_background(photos, rng, size)
        elif pick < 0.6:
            image = compose.clouds(rng, size)
        elif pick < 0.8:
            image = compose.gradient_grain(rng, size)
        else:
            image = compose.flat_grain(rng, size)
        for _ in range(rng.randint(0, 3)):
            compose.paste(
                image,
                rng.choice(pool),
                round(w * rng.uniform(0.12, 0.3)),
                (w * rng.uniform(-0.05, 1.05), h * rng.uniform(0.1, 0.9)),
                flip=rng.random() < 0.5,
            )
        if trope is None or trope.style == "small":
            compose.paste(
                image,
                pool[seed_ % len(pool)],
                round(w * rng.uniform(0.35, 0.65)),
                (w * rng.uniform(0.25, 0.75), h * rng.uniform(0.3, 0.65)),
                flip=rng.random() < 0.5,
                shadow=rng.random() < 0.4,
            )
        if trope is not None and trope.style == "large":
            compose.paste(
                image,
                trope.motif,
                round(w * rng.uniform(0.5, 0.85)),
                (w * rng.uniform(0.3, 0.7), h * rng.uniform(0.3, 0.6)),
                flip=rng.random() < 0.35,
                shadow=rng.random() < 0.4,
            )
        elif trope is not None:
            compose.paste(
                image,
                trope.motif,
                round(w * rng.uniform(0.14, 0.24)),
                (w * rng.uniform(0.15, 0.85), h * rng.uniform(0.15, 0.75)),
                flip=rng.random() < 0.35,
            )
        place = rng.choice(("top", "bottom", "bottom"))
        compose.draw_title(
            image,
            text.upper() if rng.random() < 0.7 else text.title(),
            rng.choice(FONTS),
            rng,
            place=place,
            size=round(w / rng.uniform(7, 11)),
            stroke=rng.random() < 0.5,
            band=compose.colour(rng) if rng.random() < 0.2 else None,
        )
        if rng.random() < 0.4:
            compose.draw_title(
                image,
                rng.choice(compose.TAGLINES),
                SMALL_FONT,
                rng,
                place="top" if place == "bottom" else "middle",
                size=max(9, w // 26),
            )
        if rng.random() < 0.5:
            compose.draw_credits(image, SMALL_FONT, rng)
        return image

    def encode(image: Image.Image, rng: random.Random) -> tuple[str, dict]:
        if image.width >= 600:
            return "jpg", {"quality": rng.randint(85, 94)}
        return "png", {}

    card_styles = [
        {"bg": (24, 24, 28), "ink": (235, 235, 235), "accent": (200, 160, 60), "rule": True,
         "font": compose.DEJAVU / "DejaVuSerif-Bold.ttf"},
        {"bg": (236, 230, 216), "ink": (40, 40, 40), "accent": (150, 40, 40), "rule": False,
         "font": compose.DEJAVU / "DejaVuSans-Bold.ttf", "label": "NOW SHOWING", "ext": "jpg"},
    ]  # fmt: skip
    recipe = Recipe(
        name=NAME,
        poster=poster,
        encode=encode,
        tropes=tropes,
        keeper_motifs=keeper_pool,
        title_font=compose.DEJAVU / "DejaVuSans-Bold.ttf",
        mark_font=compose.DEJAVU / "DejaVuSans-Bold.ttf",
        card_styles=card_styles,
        sizes=((300, 450), (600, 900), (200, 300)),
    )
    return assemble(recipe, out, seed, scale)
