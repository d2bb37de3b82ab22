"""Held-out set "icon-posters": Oxygen icons on wallpapers and printed patterns, Liberation
titles in banners, 27:40 JPEGs.

Differs from tests/cleanset.py / tests/tropes.py and from "clipart-posters" in its
ingredients and layout: motifs are KDE's Oxygen icons (Debian ``oxygen-icon-theme``,
LGPL-3+), shaded and glossy rather than flat; backgrounds are crops of GNOME's abstract
wallpapers (Debian ``gnome-backgrounds``, CC BY-SA 3.0), radial gradients, two-colour
splits, stripes and halftone screens; posters are 27:40 (270x400, a quarter 540x800),
mostly JPEG at quality 80-92; titles are Liberation Sans/Serif/Mono (Debian
``fonts-liberation2``, OFL) in a coloured banner or plain at the foot, with a year line.
Three layouts: a hero icon on a plate, a row of two or three icons, or a scatter of small
tilted icons. Tropes: six large hero icons (each sibling with another plate, background
and title) and two small round ones (a smiley emote, a sun).
"""

from __future__ import annotations

import random
from functools import lru_cache
from pathlib import Path

from PIL import Image, ImageDraw

from tests.heldout import compose, sources
from tests.heldout.posters import Recipe, Trope, assemble

NAME = "icon-posters"
SOURCES = ("oxygen", "gnome-backgrounds", "liberation")
FONTS = tuple(
    compose.LIBERATION / f
    for f in (
        "LiberationSans-Bold.ttf",
        "LiberationSerif-Bold.ttf",
        "LiberationSans-BoldItalic.ttf",
        "LiberationMono-Bold.ttf",
    )
)
YEAR_FONT = compose.LIBERATION / "LiberationMono-Regular.ttf"
ROUND_MOTIFS = {
    "smiley": "128x128/emotes/face-smile.png",
    "sun": "128x128/status/weather-clear.png",
}
TEXTURES = ("adwaita", "grid", "licorice", "pixels", "truchet", "wood")
LARGE_TROPES = 6
KEEPERS = 60
POOL_SIZE = 400


def _icon_files(root: Path) -> list[Path]:
    """One file per icon name (the largest size), no symlinks, no emotes or suns (kept for
    the round tropes), no file-type icons (hundreds of near-identical document pages)."""
    best: dict[tuple[str, str], Path] = {}
    for size in ("128x128", "256x256"):  # later (larger) sizes win
        for path in sorted((root / size).glob("*/*.png")):
            context = path.parent.name
            if path.is_symlink() or context in ("emotes", "mimetypes"):
                continue
            if path.name.startswith("weather-clear"):
                continue
            best[(context, path.name)] = path
    return [best[k] for k in sorted(best)]


@lru_cache(maxsize=4)
def _library(
    seed: int, pool_size: int
) -> tuple[list[Image.Image], list[Image.Image], list[Image.Image]]:
    """(large trope motifs, motif pool, round trope motifs); see
    :func:`compose.split_tropes`."""
    root = sources.source_path("oxygen")
    files = _icon_files(root)
    random.Random(f"icon-library/{seed}").shuffle(files)
    tropes = [compose.load_motif(root / p) for p in ROUND_MOTIFS.values()]
    if any(m is None for m in tropes):
        raise sources.SourceUnavailable(f"{root}: a trope motif is missing or unusable")
    loaded = (m for m in (compose.load_motif(p) for p in files) if m is not None)
    large, pool = compose.split_tropes(loaded, LARGE_TROPES, tropes, pool_size)
    return large, pool, tropes


@lru_cache(maxsize=1)
def _textures() -> list[Image.Image]:
    """The wallpapers at 1024 px, kept as PNG in the source cache (decoding a 4096 px WebP
    takes a quarter of a second, and there are twelve)."""
    folder = sources.source_path("gnome-backgrounds")
    cache = sources.cache_dir() / "gnome-textures-1024"
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    for stem in TEXTURES:
        for shade in ("d", "l"):
            small = cache / f"{stem}-{shade}.png"
            if not small.exists():
                with Image.open(folder / f"{stem}-{shade}.webp") as image:
                    reduced = image.convert("RGB").reduce(4)
                tmp = small.with_name(f".tmp-{small.name}")
                reduced.save(tmp)
                tmp.replace(small)
            out.append(Image.open(small).convert("RGB"))
    return out


def build(out: Path, seed: int, scale: float = 1.0) -> Path:
    """Write the labelled set into ``out``; returns ``out``."""
    sources.require(SOURCES)
    large, pool, round_motifs = _library(seed, max(40, round(POOL_SIZE * min(1.0, scale))))
    keepers = min(len(pool) // 4, KEEPERS)  # motifs of their own: see Recipe
    keeper_pool, pool = pool[:keepers], pool[keepers:]
    textures = _textures()
    tropes = [Trope(f"icon-{i}", m, "large") for i, m in enumerate(large)]
    tropes += [Trope(name, m, "small") for name, m in zip(ROUND_MOTIFS, round_motifs, strict=True)]

    def background(rng: random.Random, size: compose.Size) -> Image.Image:
        pick = rng.random()
        if pick < 0.3:
            return compose.texture_background(textures, rng, size)
        if pick < 0.45:
            return compose.radial_grain(rng, size)
        if pick < 0.6:
            return compose.split_field(rng, size)
        if pick < 0.75:
            return compose.stripes(rng, size)
        if pick < 0.87:
            return compose.halftone(rng, size)
        return compose.gradient_grain(rng, size)

    def hero(image: Image.Image, motif: Image.Image, rng: random.Random, lo: float, hi: float):
        w, h = image.size
        width = round(w * rng.uniform(lo, hi))
        cx, cy = w * rng.uniform(0.35, 0.65), h * rng.uniform(0.35, 0.55)
        if rng.random() < 0.6:  # a plate behind the icon
            r = width * rng.uniform(0.55, 0.7)
            draw = ImageDraw.Draw(image)
            box = (cx - r, cy - r, cx + r, cy + r)
            if rng.random() < 0.5:
                draw.ellipse(box, fill=compose.colour(rng))
            else:
                draw.rounded_rectangle(box, r * 0.2, fill=compose.colour(rng))
        compose.paste(image, motif, width, (cx, cy), flip=rng.random() < 0.35, shadow=True)

    def poster(seed_: int, text: str, trope: Trope | None) -> Image.Image:
        rng = random.Random(seed_)
        size = (540, 800) if rng.random() < 0.25 else (270, 400)
        w, h = size
        image = background(rng, size)
        layout = rng.choice(("hero", "hero", "row", "scatter"))
        if trope is not None and trope.style == "large":
            layout = "hero"
        if layout == "hero":
            motif = trope.motif if trope is not None and trope.style == "large" else None
            hero(image, motif or pool[seed_ % len(pool)], rng, 0.45, 0.8 if motif else 0.7)
        elif layout == "row":
            n = rng.randint(2, 3)
            width = round(w * rng.uniform(0.24, 0.32))
            y = h * rng.uniform(0.35, 0.6)
            for k in range(n):
                x = w * (k + 0.5) / n + rng.uniform(-0.04, 0.04) * w
                compose.paste(image, rng.choice(pool), width, (x, y), shadow=True)
        else:
            for _ in range(rng.randint(5, 9)):
                compose.paste(
                    image,
                    rng.choice(pool),
                    round(w * rng.uniform(0.12, 0.3)),
                    (w * rng.uniform(0.05, 0.95), h * rng.uniform(0.15, 0.8)),
                    angle=rng.uniform(-25, 25),
                )
        if trope is not None and trope.style == "small":
            compose.paste(
                image,
                trope.motif,
                round(w * rng.uniform(0.14, 0.22)),
                (w * rng.uniform(0.15, 0.85), h * rng.uniform(0.15, 0.75)),
                flip=rng.random() < 0.35,
            )
        top = rng.random() < 0.5
        compose.draw_title(
            image,
            text.upper(),
            rng.choice(FONTS),
            rng,
            place="top" if top else "bottom",
            size=round(w / rng.uniform(8, 12)),
            band=compose.colour(rng) if top or rng.random() < 0.3 else None,
        )
        if rng.random() < 0.6:
            year = str(rng.randint(1950, 2024))
            compose.draw_title(
                image, year, YEAR_FONT, rng, place="bottom" if top else "top", size=w // 18
            )
        return image

    def encode(image: Image.Image, rng: random.Random) -> tuple[str, dict]:
        if rng.random() < 0.2:
            return "png", {}
        return "jpg", {"quality": rng.randint(80, 92)}

    card_styles = [
        {"bg": (16, 40, 72), "ink": (250, 250, 250), "accent": (120, 170, 230), "rule": False,
         "font": compose.LIBERATION / "LiberationSans-Bold.ttf", "label": "STREAMING SOON",
         "ext": "jpg"},
        {"bg": (250, 250, 250), "ink": (20, 20, 20), "accent": (200, 30, 30), "rule": True,
         "font": compose.LIBERATION / "LiberationSerif-Bold.ttf", "label": "TITLE CARD"},
    ]  # fmt: skip
    recipe = Recipe(
        name=NAME,
        poster=poster,
        encode=encode,
        tropes=tropes,
        keeper_motifs=keeper_pool,
        title_font=compose.LIBERATION / "LiberationSans-Bold.ttf",
        mark_font=compose.LIBERATION / "LiberationSans-Regular.ttf",
        card_styles=card_styles,
        sizes=((270, 400), (540, 800), (400, 600)),
    )
    return assemble(recipe, out, seed, scale)
