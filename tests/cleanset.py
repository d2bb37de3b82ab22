"""A labelled set for the clean stage: poster-like 2:3 images composed from real emoji.

Each image's file name says what it is, so precision and recall can be computed:

    orig-NNN.png            an ordinary poster (must stay ok)
    bytecopy-NNN.png        byte copy of orig-NNN            -> duplicate (same_bytes)
    reenc-NNN.bmp           same pixels, other encoding      -> duplicate (same_pixels)
    near-KIND-NNN.(jpg|png) orig-NNN resized / recompressed / cropped / letterboxed /
                            colour-shifted / retitled        -> near_duplicate of orig-NNN
    template-NNN.png        a "no poster available" card, only the title changes -> boring
    solid-NNN.png           one colour (with sensor-like noise)                   -> boring
    gradient-NNN.png        a smooth two-colour gradient                          -> boring
    tiny-NNN.png            a 20x30 poster blown up to 200x300                    -> boring
    minimal-NNN.png         a real minimalist poster: plain field, one small motif, a
                            short title (must stay ok)
"""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont

W, H = 200, 300
WORDS = (
    "night",
    "river",
    "last",
    "city",
    "fire",
    "dream",
    "love",
    "dark",
    "summer",
    "ghost",
    "king",
    "road",
    "storm",
    "blue",
    "island",
    "return",
    "secret",
    "star",
    "wolf",
    "rain",
)
NEAR_KINDS = ("resize", "jpeg", "crop", "letterbox", "colour", "retitle")


def _font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _title(rng: random.Random) -> str:
    return " ".join(rng.sample(WORDS, rng.randint(1, 3))).upper()


def poster(emoji: list[Image.Image], rng: random.Random, title: str) -> Image.Image:
    """Textured background, a few motifs, a title: busy enough to be a real poster."""
    top = np.array([rng.randrange(256) for _ in range(3)], dtype=np.float32)
    bottom = np.array([rng.randrange(256) for _ in range(3)], dtype=np.float32)
    t = np.linspace(0, 1, H, dtype=np.float32)[:, None, None]
    field = top * (1 - t) + bottom * t + np.zeros((H, W, 3), np.float32)
    noise = np.random.default_rng(rng.randrange(2**31)).normal(0, 12, (H, W, 3))
    image = Image.fromarray(np.clip(field + noise, 0, 255).astype(np.uint8))
    for _ in range(rng.randint(2, 4)):
        motif = rng.choice(emoji)
        size = rng.randint(50, 130)
        motif = motif.resize((size, size))
        image.paste(motif, (rng.randint(-10, W - size + 10), rng.randint(20, H - size - 30)), motif)
    _draw_title(image, title, rng)
    return image


def _draw_title(image: Image.Image, title: str, rng: random.Random) -> None:
    draw = ImageDraw.Draw(image)
    colour = tuple(rng.randrange(256) for _ in range(3))
    draw.text((10, H - 34), title, fill=colour, font=_font(18))


def make_clean_set(emoji_dir: Path, out: Path, n: int = 60, seed: int = 0) -> Path:
    """Write the labelled set into ``out`` (created); returns ``out``."""
    rng = random.Random(seed)
    files = sorted(emoji_dir.glob("*.png"))
    emoji = [Image.open(p).convert("RGBA") for p in rng.sample(files, 300)]
    out.mkdir(parents=True)
    for i in range(n):
        title = _title(rng)
        state = rng.getstate()
        base = poster(emoji, rng, title)
        base.save(out / f"orig-{i:03d}.png")
        kind = NEAR_KINDS[(i // 2) % len(NEAR_KINDS)]
        if i % 5 == 0:
            shutil.copy(out / f"orig-{i:03d}.png", out / f"bytecopy-{i:03d}.png")
        if i % 7 == 0:
            base.save(out / f"reenc-{i:03d}.bmp")
        if i % 2 == 0:
            _near(base, kind, rng, state, emoji, out / f"near-{kind}-{i:03d}")
    placeholder_icon = rng.choice(emoji).resize((64, 64))
    card_titles: set[str] = set()
    while len(card_titles) < 16:  # distinct, or two cards would be byte-identical
        card_titles.add(_title(rng).title()[:22])
    for i, card_title in enumerate(sorted(card_titles)):
        card = Image.new("RGB", (W, H), (58, 58, 62))
        card.paste(placeholder_icon, (68, 90), placeholder_icon)
        draw = ImageDraw.Draw(card)
        draw.text((32, 180), "NO POSTER", fill=(200, 200, 200), font=_font(22))
        draw.text((14, 230), card_title, fill=(160, 160, 160), font=_font(14))
        card.save(out / f"template-{i:03d}.png")
    for i in range(12):
        colour = np.array([rng.randrange(256) for _ in range(3)], np.float32)
        noise = np.random.default_rng(i).normal(0, 1.5, (H, W, 3))
        Image.fromarray(np.clip(colour + noise, 0, 255).astype(np.uint8)).save(
            out / f"solid-{i:03d}.png"
        )
    for i in range(12):
        a = np.array([rng.randrange(256) for _ in range(3)], np.float32)
        b = np.array([rng.randrange(256) for _ in range(3)], np.float32)
        t = np.linspace(0, 1, H if i % 2 else W, dtype=np.float32)
        t = t[:, None, None] if i % 2 else t[None, :, None]
        field = a * (1 - t) + b * t + np.zeros((H, W, 3), np.float32)
        Image.fromarray(field.astype(np.uint8)).save(out / f"gradient-{i:03d}.png")
    for i in range(12):
        small = poster(emoji, rng, _title(rng)).resize((20, 30), Image.Resampling.BOX)
        resample = Image.Resampling.NEAREST if i % 2 else Image.Resampling.BILINEAR
        small.resize((W, H), resample).save(out / f"tiny-{i:03d}.png")
    for i in range(20):
        bg = tuple(rng.randrange(256) for _ in range(3))
        image = Image.new("RGB", (W, H), bg)
        motif = rng.choice(emoji)
        size = rng.randint(36, 90)
        image.paste(
            motif.resize((size, size)),
            (rng.randint(10, W - size - 10), rng.randint(30, H - size - 60)),
            motif.resize((size, size)),
        )
        ImageDraw.Draw(image).text(
            (12, H - 40), _title(rng), fill=(255 - bg[0], 255 - bg[1], 255 - bg[2]), font=_font(16)
        )
        image.save(out / f"minimal-{i:03d}.png")
    return out


def _near(base: Image.Image, kind: str, rng: random.Random, state, emoji, stem: Path) -> None:
    if kind == "resize":
        base.resize((140, 210), Image.Resampling.LANCZOS).save(stem.with_suffix(".png"))
    elif kind == "jpeg":
        base.save(stem.with_suffix(".jpg"), quality=35)
    elif kind == "crop":
        base.crop((10, 15, W - 10, H - 15)).save(stem.with_suffix(".png"))
    elif kind == "letterbox":
        canvas = Image.new("RGB", (W, int(H * 1.25)), (0, 0, 0))
        canvas.paste(base, (0, int(H * 0.125)))
        canvas.save(stem.with_suffix(".png"))
    elif kind == "colour":
        shifted = ImageEnhance.Color(ImageEnhance.Brightness(base).enhance(1.12)).enhance(1.3)
        shifted.save(stem.with_suffix(".png"))
    elif kind == "retitle":
        replay = random.Random()
        replay.setstate(state)
        redrawn = poster(emoji, replay, "TITLE")  # same art from the same random draws
        # cover the old title band and write a different title
        ImageDraw.Draw(redrawn).rectangle((0, H - 40, W, H), fill=(20, 20, 20))
        _draw_title(redrawn, _title(rng), rng)
        redrawn.save(stem.with_suffix(".png"))


def truth(path: Path) -> tuple[str, str | None]:
    """(expected status, name of the original it duplicates or None) from a file name."""
    name = path.name
    kind, _, rest = name.partition("-")
    number = rest.rsplit("-", 1)[-1].split(".")[0]
    if kind in ("orig", "minimal"):
        return "ok", None
    if kind in ("bytecopy", "reenc"):
        return "duplicate", f"orig-{number}.png"
    if kind == "near":
        return "near_duplicate", f"orig-{number}.png"
    return "boring", None


def evaluate(rows: list[dict]) -> dict[str, dict]:
    """Precision and recall per category from catalog rows of a :func:`make_clean_set` run.

    Duplicates are judged per group (an original and its copies): which member is kept is
    arbitrary for identical copies and a size rule for near ones, so a flag is correct when
    the image and its ``duplicate_of`` belong to the same group, and a group with k
    expected copies yields at most k correct flags. Boring is judged per image.
    """
    from collections import Counter

    by_name = {Path(r["path"]).name: r for r in rows}
    id_to_name = {r["id"]: Path(r["path"]).name for r in rows}

    def group(name: str | None) -> str | None:
        if name is None or name.split("-")[0] not in ("orig", "bytecopy", "reenc", "near"):
            return None
        return name.rsplit("-", 1)[-1].split(".")[0]

    metrics = {}
    for status in ("duplicate", "near_duplicate", "boring"):
        expected = {n for n in by_name if truth(Path(n))[0] == status}
        flagged = {n for n, r in by_name.items() if r["status"] == status}
        if status == "boring":
            correct = len(flagged & expected)
            wrong = sorted(flagged - expected)
            missed = sorted(expected - flagged)
        else:
            want = Counter(group(n) for n in expected)
            got = Counter(
                group(n)
                for n in flagged
                if group(n) is not None
                and group(n) == group(id_to_name.get(by_name[n]["duplicate_of"]))
            )
            correct = sum(min(got[g], want[g]) for g in got)
            wrong = sorted(n for n in flagged if got[group(n)] == 0 or group(n) is None)
            missed = sorted(g for g in want if got[g] < want[g])
        metrics[status] = {
            "precision": correct / len(flagged) if flagged else 1.0,
            "recall": correct / len(expected) if expected else 1.0,
            "flagged": len(flagged),
            "expected": len(expected),
            "false_positives": wrong[:10],
            "missed": missed[:10],
        }
    return metrics
