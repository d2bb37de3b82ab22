"""Shared fixtures: tiny synthetic images for unit tests, real emoji for integration tests."""

from __future__ import annotations

import csv
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

DATA = Path(__file__).parent / "data"
REPO = Path(__file__).resolve().parents[1]
#: Where `make test` puts the default set; override with POSTERMAP_EMOJI_DIR.
EMOJI_DIR = Path(os.environ.get("POSTERMAP_EMOJI_DIR", REPO / "data" / "emoji"))


def draw_image(
    path: Path,
    seed: int,
    size: tuple[int, int] = (48, 64),
    mode: str = "RGB",
    fmt: str | None = None,
) -> Path:
    """A small deterministic picture: coloured background with a few shapes."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, tuple(rng.randrange(256) for _ in range(3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = rng.randrange(size[0]), rng.randrange(size[1])
        box = (x0, y0, x0 + rng.randrange(5, 30), y0 + rng.randrange(5, 30))
        draw.ellipse(box, fill=tuple(rng.randrange(256) for _ in range(3)))
    if mode != "RGB":
        image = image.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt)
    return path


@pytest.fixture
def tiny_folder(tmp_path: Path) -> Path:
    """12 distinct images, a byte copy, a same-pixels re-encode, 3 broken files, a text file."""
    root = tmp_path / "images"
    for i in range(12):
        draw_image(root / ("sub" if i % 3 == 0 else "") / f"img{i:02d}.png", seed=i)
    shutil.copy(root / "img01.png", root / "copy_of_img01.png")
    Image.open(root / "img02.png").save(root / "img02_as_bmp.bmp")
    for name in ("truncated.jpg", "not_an_image.png", "empty.jpg"):
        shutil.copy(DATA / name, root / name)
    (root / "notes.txt").write_text("not an image\n")
    return root


@pytest.fixture(scope="session")
def emoji_images() -> Path:
    """The real default set (fetched by `make test`; fetched here if missing)."""
    from postermap.datasets import fetch_emoji

    return fetch_emoji(EMOJI_DIR)


def emoji_subset(emoji_images: Path, dest: Path, per_category: int, seed: int = 0) -> Path:
    """A stratified sample of the default set with its metadata rows, plus planted copies."""
    with open(emoji_images / "metadata.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    rng = random.Random(seed)
    by_category: dict[str, list[dict]] = {}
    for row in rows:
        if "skin tone" in row["title"]:
            continue  # keep the sample diverse; skin-tone variants are near-duplicates
        by_category.setdefault(row["category"], []).append(row)
    chosen = []
    for category in sorted(by_category):
        members = by_category[category]
        chosen += rng.sample(members, min(per_category, len(members)))
    dest.mkdir(parents=True)
    for row in chosen:
        shutil.copy(emoji_images / row["filename"], dest / row["filename"])
    with open(dest / "metadata.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(chosen)
    return dest


def grid_neighbour_agreement(rows: np.ndarray, cols: np.ndarray, labels: list[str]) -> float:
    """Share of 4-neighbour cell pairs whose images carry the same label."""
    where = {(int(r), int(c)): labels[i] for i, (r, c) in enumerate(zip(rows, cols, strict=True))}
    same = total = 0
    for (r, c), label in where.items():
        for nb in ((r + 1, c), (r, c + 1)):
            if nb in where:
                total += 1
                same += where[nb] == label
    return same / total
