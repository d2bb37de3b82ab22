"""Posters with planted tropes, for measuring clustering (benchmarks/clusters.py).

trope-T-NNN.png    trope T: the same motif, large, on posters of every palette
palette-P-NNN.png  palette P: the same colour scheme, unrelated random motifs
other-NNN.png      everything random (background of the collection)
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image

W, H = 200, 300


def _canvas(rng: random.Random, top, bottom) -> Image.Image:
    t = np.linspace(0, 1, H, dtype=np.float32)[:, None, None]
    field = np.array(top, np.float32) * (1 - t) + np.array(bottom, np.float32) * t
    field = field + np.zeros((H, W, 3), np.float32)
    noise = np.random.default_rng(rng.randrange(2**31)).normal(0, 10, (H, W, 3))
    return Image.fromarray(np.clip(field + noise, 0, 255).astype(np.uint8))


def _paste(image: Image.Image, motif: Image.Image, size: int, rng: random.Random) -> None:
    motif = motif.resize((size, size))
    image.paste(motif, (rng.randint(0, W - size), rng.randint(0, H - size)), motif)


def make_trope_set(
    emoji_dir: Path,
    out: Path,
    tropes: int = 6,
    palettes: int = 6,
    per_group: int = 25,
    others: int = 150,
    seed: int = 0,
    motifs: list[str] | None = None,
) -> Path:
    """Write the set into ``out`` (created). ``motifs`` (emoji file names) replaces the
    randomly drawn trope motifs (``tropes`` is then their number); the rest of the draw
    is the same."""
    rng = random.Random(seed)
    files = sorted(emoji_dir.glob("*.png"))
    pool = [Image.open(p).convert("RGBA") for p in rng.sample(files, 400)]
    chosen = [Image.open(emoji_dir / m).convert("RGBA") for m in motifs] if motifs else pool
    if motifs:
        tropes = len(motifs)
    colour = lambda: tuple(rng.randrange(256) for _ in range(3))  # noqa: E731
    out.mkdir(parents=True)
    for t in range(tropes):
        motif = chosen[t]
        for i in range(per_group):
            image = _canvas(rng, colour(), colour())
            _paste(image, rng.choice(pool[50:]), rng.randint(30, 60), rng)
            _paste(image, motif, rng.randint(110, 150), rng)
            image.save(out / f"trope-{t}-{i:03d}.png")
    for p in range(palettes):
        top, bottom = colour(), colour()
        for i in range(per_group):
            image = _canvas(rng, top, bottom)
            for _ in range(2):
                _paste(image, rng.choice(pool[50:]), rng.randint(40, 90), rng)
            image.save(out / f"palette-{p}-{i:03d}.png")
    for i in range(others):
        image = _canvas(rng, colour(), colour())
        for _ in range(rng.randint(1, 3)):
            _paste(image, rng.choice(pool[50:]), rng.randint(40, 120), rng)
        image.save(out / f"other-{i:03d}.png")
    return out


def group_of(path: str) -> str:
    """'trope-3', 'palette-1' or 'other' from a file name."""
    name = Path(path).name
    kind = name.split("-")[0]
    return "other" if kind == "other" else "-".join(name.split("-")[:2])


def heldout_trope_motifs(set_name: str, seed: int, pool_size: int = 400) -> dict[str, str]:
    """Trope name -> the source file of its motif, for a held-out poster set: its labels
    name the large tropes only ``clipart-3``, so this replays the set's motif draw
    (tests/heldout, at scale 1) and keeps the file of each large trope motif. The round
    tropes are named after their motif already."""
    import os

    from tests.heldout import clipart, compose, icons, sources

    module = {clipart.NAME: clipart, icons.NAME: icons}[set_name]
    if module is clipart:
        root = sources.source_path("openclipart")
        round_paths = [os.path.realpath(root / p) for p in clipart.ROUND_MOTIFS.values()]
        files = sorted({os.path.realpath(p) for p in root.rglob("*.png")} - set(round_paths))
        random.Random(f"clipart-library/{seed}").shuffle(files)
        fixed = [compose.load_motif(Path(p), max_side=800) for p in round_paths]
        paths = [Path(f) for f in files]
    else:
        root = sources.source_path("oxygen")
        paths = icons._icon_files(root)
        random.Random(f"icon-library/{seed}").shuffle(paths)
        fixed = [compose.load_motif(root / p) for p in icons.ROUND_MOTIFS.values()]
    seen: list[tuple[Path, Image.Image]] = []

    def loaded():
        for path in paths:
            motif = compose.load_motif(path)
            if motif is not None:
                seen.append((path, motif))
                yield motif

    large, _ = compose.split_tropes(loaded(), module.LARGE_TROPES, fixed, pool_size)
    prefix = "clipart" if module is clipart else "icon"
    out = {
        f"{prefix}-{i}": next(str(p) for p, m in seen if m is motif)
        for i, motif in enumerate(large)
    }
    for name, rel in module.ROUND_MOTIFS.items():
        out[name] = str(root / rel)
    return out
