"""A small poster set with real pictures in it: Tux Paint's stamps (photographs and
drawings of animals and vehicles, Debian package ``tuxpaint-stamps-default``) on poster
backgrounds, with a ``metadata.csv`` of ``filename, title, year, genre``; or, untitled,
the stamps as square pictures with neutral file names and no metadata, so only the
picture can tell that one shows a horse.

    python -m tests.posterset DEST [--untitled]

The stamps are extracted from the Debian package (``apt-get download``, no install) into
``$POSTERMAP_STAMPS_CACHE`` (else ``~/.cache/postermap/tuxpaint-stamps``) once; an
installed ``/usr/share/tuxpaint/stamps`` is used as it is.
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

PACKAGE = "tuxpaint-stamps-default"
INSTALLED = Path("/usr/share/tuxpaint/stamps")
FOLDERS = ("animals/mammals", "vehicles")
WORDS = (
    "Silent Midnight Golden River Last Summer Broken Promise Distant Shore Velvet Storm "
    "Paper Moon Iron Garden Hidden Valley Burning Sky Quiet Harbour Crimson Letter Lost "
    "Signal Endless Road Glass City Winter Song Second Chance Open Window Northern Light"
).split()
GENRES = ("Drama", "Comedy", "Western", "Adventure", "Romance", "Thriller")


def cache_dir() -> Path:
    return Path(
        os.environ.get("POSTERMAP_STAMPS_CACHE", Path.home() / ".cache/postermap/tuxpaint-stamps")
    )


def stamps_root() -> Path:
    """The stamps folder: the installed one, else extracted from the package."""
    if INSTALLED.is_dir():
        return INSTALLED
    root = cache_dir() / "stamps"
    if (root / "vehicles").is_dir():
        return root
    cache_dir().mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        if subprocess.run(["apt-get", "download", PACKAGE], cwd=tmp).returncode != 0:
            # a fresh machine has no package lists yet
            subprocess.run(["apt-get", "update"], check=True)
            subprocess.run(["apt-get", "download", PACKAGE], cwd=tmp, check=True)
        deb = next(Path(tmp).glob("*.deb"))
        extract = Path(tmp) / "x"
        extract.mkdir()
        dpkg = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
        patterns = [f"./usr/share/tuxpaint/stamps/{f}/*.png" for f in FOLDERS]
        subprocess.run(
            ["tar", "-x", "-C", str(extract), "--wildcards", *patterns],
            stdin=dpkg.stdout,
            check=True,
        )
        dpkg.wait()
        (extract / "usr/share/tuxpaint/stamps").rename(root)
    return root


def stamp_files() -> list[Path]:
    root = stamps_root()
    files = []
    for folder in FOLDERS:
        files += sorted(p for p in (root / folder).rglob("*.png") if "cartoon" not in p.parts)
    return files


def picture(stamp: Path, seed: int) -> Image.Image:
    """A 320x320 picture: the stamp on a plain pale background (square, so the model sees
    it undistorted: it squeezes every image into a square)."""
    rng = np.random.default_rng(seed)
    canvas = Image.new("RGBA", (320, 320), tuple(int(v) for v in rng.integers(225, 256, 3)))
    shape = Image.open(stamp).convert("RGBA")
    shape.thumbnail((300, 300))
    canvas.alpha_composite(shape, ((320 - shape.width) // 2, (320 - shape.height) // 2))
    return canvas.convert("RGB")


def poster(stamp: Path, seed: int) -> Image.Image:
    """A 300x450 poster: a pale vertical gradient with the stamp large in the middle."""
    rng = np.random.default_rng(seed)
    top, bottom = rng.integers(170, 256, 3), rng.integers(120, 230, 3)
    t = np.linspace(0, 1, 450)[:, None, None]
    field = top * (1 - t) + bottom * t
    canvas = Image.fromarray(np.broadcast_to(field, (450, 300, 3)).astype(np.uint8)).convert("RGBA")
    picture = Image.open(stamp).convert("RGBA")
    picture.thumbnail((280, 330))
    x, y = (300 - picture.width) // 2, 20 + (330 - picture.height) // 2
    canvas.alpha_composite(picture, (x, y))
    return canvas.convert("RGB")


def make_posterset(dest: Path, untitled: bool = False, seed: int = 0) -> list[dict]:
    """Write the posters (and, titled, ``metadata.csv``) into ``dest``; returns one row per
    poster with its stamp's name (``shows``) for tests to check against."""
    dest.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for k, stamp in enumerate(stamp_files()):
        name = f"img-{k:04d}.jpg" if untitled else f"poster-{k:04d}.jpg"
        draw = picture if untitled else poster
        draw(stamp, seed * 10_000 + k).save(dest / name, quality=90)
        words = rng.choice(WORDS, size=2, replace=False)
        genres = rng.choice(GENRES, size=int(rng.integers(1, 3)), replace=False)
        rows.append(
            {
                "filename": name,
                "title": f"The {words[0]} {words[1]}",
                "year": str(int(rng.integers(1930, 2020))),
                "genre": "|".join(genres),
                "shows": stamp.stem,
            }
        )
    if not untitled:
        with open(dest / "metadata.csv", "w", newline="") as fh:
            writer = csv.DictWriter(fh, ["filename", "title", "year", "genre"])
            writer.writeheader()
            for row in rows:
                writer.writerow({k: row[k] for k in ("filename", "title", "year", "genre")})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dest", type=Path)
    parser.add_argument("--untitled", action="store_true")
    args = parser.parse_args()
    rows = make_posterset(args.dest, args.untitled)
    print(f"{len(rows)} posters in {args.dest}")


if __name__ == "__main__":
    main()
