"""Drawing mosaic cells: scaled JPEG decodes against a full decode and a Lanczos resize.

    python -m benchmarks.cells [--n 2000] [--rounds 3] [--thumbs DIR]

The tile stage draws every image into its cell from the thumbnail
(:func:`postermap.mosaic.cell_pixels_of`), which decodes a JPEG at the smallest n/8 scale
that covers the cell. The baseline, written out here, is what it did before: Pillow
decodes the whole thumbnail and one Lanczos resize brings it to the cell. Both draw the
same thumbnails (``--thumbs``: default the 169k or 20k scale run's, else the demo's
emoji) into cells of 128 px (2:3, the posters' default) and 32 px (the 1M run's), in
alternating rounds; prints cells/s, the ratio and the mean difference in grey levels.
Writes ``benchmarks/results/cells.json``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
from PIL import Image

from benchmarks.common import CACHE, write_result
from postermap.mosaic import cell_pixels, cell_pixels_of, fills_cell, place_in_cell

SCALE_THUMBS = [CACHE / f"scale-{n}" / "ws" / "thumbs" for n in (169000, 20000)]


def lanczos_cell(path: str, width: int, height: int, bg: list[int]) -> np.ndarray:
    """The baseline, as the tile stage drew cells before: a full Pillow decode, then one
    Lanczos resize of the centred crop into the cell (an image that does not fill its
    cell is placed as the stage places it now)."""
    with Image.open(path) as opened:
        image = opened.convert("RGB")
    w, h = image.size
    if not fills_cell(w, h, width, height):
        return place_in_cell(np.asarray(image), False, width, height, bg)
    scale = max(width / w, height / h)
    left, top = (w - width / scale) / 2, (h - height / scale) / 2
    box = (left, top, left + width / scale, top + height / scale)
    return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS, box=box))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--thumbs", type=Path)
    args = parser.parse_args()
    folder = args.thumbs or next((p for p in SCALE_THUMBS if p.exists()), None)
    if folder is None:
        from postermap.datasets import fetch_emoji

        folder = fetch_emoji(CACHE / "emoji")
    paths = sorted(str(p) for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".png"))
    paths = paths[: args.n]
    print(f"{len(paths)} thumbnails from {folder}")
    results = {}
    for shorter in (128, 32):
        cell = cell_pixels((2, 3), shorter)
        rates: dict[str, list[float]] = {"scaled_decode": [], "lanczos": []}
        drawn = {}
        for _ in range(args.rounds):
            for name, draw in (("scaled_decode", cell_pixels_of), ("lanczos", lanczos_cell)):
                start = time.perf_counter()
                drawn[name] = [draw(p, *cell, [0, 0, 0]) for p in paths]
                rates[name].append(len(paths) / (time.perf_counter() - start))
        pairs = zip(drawn["scaled_decode"], drawn["lanczos"], strict=True)
        difference = float(np.mean([np.abs(a.astype(np.int16) - b).mean() for a, b in pairs]))
        ratios = [a / b for a, b in zip(rates["scaled_decode"], rates["lanczos"], strict=True)]
        results[f"{cell[0]}x{cell[1]}"] = {
            "cells_per_s": rates,
            "ratio": ratios,
            "mean_abs_difference": difference,
        }
        print(
            f"{cell[0]}x{cell[1]} cells: scaled decode "
            f"{statistics.median(rates['scaled_decode']):.0f}/s, full decode + Lanczos "
            f"{statistics.median(rates['lanczos']):.0f}/s, ratio "
            f"{statistics.median(ratios):.2f} (rounds {', '.join(f'{r:.2f}' for r in ratios)}), "
            f"mean difference {difference:.2f} grey levels"
        )
    write_result("cells.json", {"thumbnails": len(paths), "folder": str(folder), **results})


if __name__ == "__main__":
    main()
