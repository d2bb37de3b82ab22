"""The grid mosaic as a deep-zoom pyramid (pyvips ``dzsave``, Google tile layout).

The mosaic is built one grid row at a time: each row's thumbnails are joined and written
to an uncompressed ``.v`` strip by :func:`render_row`, rows in parallel on the run's
runner (local processes or Ray tasks), so at most one row of thumbnails per worker is
open at once (one lazy pyvips image per cell for the whole grid holds ~170 KB each:
3.4 GB at 20k images). The strips are then joined, memory-mapped, and ``dzsave`` streams
the pyramid from them. Temporary disk: the raw mosaic (3 bytes per pixel; ~8 GB at 169k
images of 128 px cells), removed afterwards.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from postermap.progress import track
from postermap.runner import Runner

log = logging.getLogger(__name__)

TILE_SIZE = 256


def render_pyramid(
    cells: list[list[str | None]],
    cell: int,
    background: str,
    quality: int,
    out_dir: Path,
    runner: Runner,
) -> int:
    """Write the tile pyramid of a grid whose row ``r``, column ``c`` shows the thumbnail
    file ``cells[r][c]`` (None = empty) in a ``cell``-pixel square; returns the number of
    zoom levels (0 .. levels-1, the last at full resolution)."""
    import pyvips

    rows = len(cells)
    bg = hex_to_rgb(background)
    strips_dir = out_dir.parent / ".tmp-strips"
    strips_dir.mkdir(parents=True, exist_ok=True)
    try:
        strips = [strips_dir / f"row-{row:05d}.v" for row in range(rows)]
        done = runner.map(
            render_row,
            cells,
            [cell] * rows,
            [bg] * rows,
            strips,
            chunksize=4 if runner.distributed else 1,
        )
        for _ in track(done, rows, "tiles: mosaic rows"):
            pass
        mosaic = pyvips.Image.arrayjoin(
            [pyvips.Image.new_from_file(str(p), access="sequential") for p in strips], across=1
        )
        log.info("tiles: mosaic %dx%d px, writing pyramid", mosaic.width, mosaic.height)
        mosaic.dzsave(
            str(out_dir),
            layout="google",
            suffix=f".jpg[Q={quality}]",
            tile_size=TILE_SIZE,
            overlap=0,
            background=bg,
        )
    finally:
        shutil.rmtree(strips_dir, ignore_errors=True)
    return len([p for p in out_dir.iterdir() if p.is_dir() and p.name.isdigit()])


def render_row(thumbs: list[str | None], cell: int, bg: list[int], out: Path) -> Path:
    """Join one grid row's thumbnails, each fitted into a ``cell`` square on ``bg``, into
    an uncompressed vips strip at ``out`` (``None`` = empty cell). A unit of parallel work:
    it touches nothing but its own files."""
    import pyvips

    blank = (pyvips.Image.black(cell, cell, bands=3) + bg).cast("uchar")
    tiles = []
    for path in thumbs:
        if path is None:
            tiles.append(blank)
            continue
        thumb = pyvips.Image.thumbnail(path, cell, height=cell)
        if thumb.bands != 3:
            thumb = thumb.colourspace("srgb")[:3]
        tiles.append(thumb.gravity("centre", cell, cell, extend="background", background=bg))
    pyvips.Image.arrayjoin(tiles, across=len(thumbs)).write_to_file(str(out))
    return out


def hex_to_rgb(colour: str) -> list[int]:
    return [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
