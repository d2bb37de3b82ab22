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

import errno
import logging
import shutil
from pathlib import Path
from typing import Any

from postermap.errors import WorkspaceWriteError
from postermap.progress import track
from postermap.runner import Runner
from postermap.workspace import describe_write_error

log = logging.getLogger(__name__)

TILE_SIZE = 256


def render_pyramid(
    cells: list[list[str | None]],
    cell: tuple[int, int],
    background: str,
    quality: int,
    out_dir: Path,
    runner: Runner,
) -> tuple[int, dict[tuple[int, int], str]]:
    """Write the tile pyramid of a grid whose row ``r``, column ``c`` shows the thumbnail
    file ``cells[r][c]`` (None = empty) in a cell of ``cell`` = (width, height) pixels.

    Returns the number of zoom levels (0 .. levels-1, the last at full resolution) and the
    cells that could not be drawn, ``(row, col) -> reason`` (they show the background).
    """
    import pyvips

    rows = len(cells)
    bg = hex_to_rgb(background)
    strips_dir = out_dir.parent / ".tmp-strips"
    strips_dir.mkdir(parents=True, exist_ok=True)
    failed: dict[tuple[int, int], str] = {}
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
        for row, row_failures in enumerate(track(done, rows, "tiles: mosaic rows")):
            failed.update(((row, col), reason) for col, reason in row_failures.items())
        mosaic = pyvips.Image.arrayjoin(
            [pyvips.Image.new_from_file(str(p), access="sequential") for p in strips], across=1
        )
        log.info("tiles: mosaic %dx%d px, writing pyramid", mosaic.width, mosaic.height)
        try:
            mosaic.dzsave(
                str(out_dir),
                layout="google",
                suffix=f".jpg[Q={quality}]",
                tile_size=TILE_SIZE,
                overlap=0,
                background=bg,
            )
        except pyvips.Error as err:
            raise_if_full(out_dir, err)
            raise
    finally:
        shutil.rmtree(strips_dir, ignore_errors=True)
    levels = len([p for p in out_dir.iterdir() if p.is_dir() and p.name.isdigit()])
    return levels, failed


def render_row(
    thumbs: list[str | None], cell: tuple[int, int], bg: list[int], out: Path
) -> dict[int, str]:
    """Join one grid row's thumbnails, each in a ``cell`` = (width, height) box on ``bg``
    (filling it when its shape is close, see :func:`fills_cell`), into an uncompressed
    vips strip at ``out`` (``None`` = empty cell). A unit of parallel work: it touches
    nothing but its own files.

    Total: a thumbnail that cannot be drawn leaves its cell blank; returns
    ``column -> reason`` for those.
    """
    import pyvips

    width, height = cell
    blank = (pyvips.Image.black(width, height, bands=3) + bg).cast("uchar")
    tiles, failed = [], {}
    for col, path in enumerate(thumbs):
        if path is None:
            tiles.append(blank)
            continue
        try:
            tiles.append(_cell_image(pyvips, path, width, height, bg))
        except pyvips.Error as err:
            failed[col] = f"thumbnail not drawn: {' '.join(str(err).split())[:200]}"
            tiles.append(blank)
    try:
        pyvips.Image.arrayjoin(tiles, across=len(thumbs)).write_to_file(str(out))
    except pyvips.Error as err:
        raise_if_full(out, err)
        raise
    return failed


#: the most of its width or height an image may lose to fill its cell; an image whose
#: shape is further from the cell's is fitted inside it, with the background around it
MAX_CROP = 0.08


def fills_cell(width: int, height: int, cell_width: int, cell_height: int) -> bool:
    """Whether an image of ``width`` x ``height`` is cropped to fill the cell (its shape is
    within :data:`MAX_CROP` of the cell's) rather than fitted inside it."""
    if width <= 0 or height <= 0:
        return False
    ratio = (width / height) / (cell_width / cell_height)
    return min(ratio, 1 / ratio) >= 1 - MAX_CROP


def content_share(width: int, height: int, cell_width: int, cell_height: int) -> float:
    """The share of its cell an image covers (1 when it fills it; the rest is background)."""
    if fills_cell(width, height, cell_width, cell_height):
        return 1.0
    ratio = (width / height) / (cell_width / cell_height)
    return min(ratio, 1 / ratio)


def _cell_image(pyvips: Any, path: str, width: int, height: int, bg: list[int]) -> Any:
    # decode now (copy_memory), so a broken file fails here, inside its own cell's
    # guard, rather than later when the whole row is written
    header = pyvips.Image.new_from_file(path)
    if fills_cell(header.width, header.height, width, height):
        thumb = pyvips.Image.thumbnail(path, width, height=height, crop="centre")
    else:
        thumb = pyvips.Image.thumbnail(path, width, height=height)
    if thumb.bands != 3:
        thumb = thumb.colourspace("srgb")[:3]
    fitted = thumb.gravity("centre", width, height, extend="background", background=bg)
    return fitted.copy_memory()


def raise_if_full(path: Path, err: Exception) -> None:
    """libvips reports a full disk as a message, not an errno: turn it into the one
    workspace write error."""
    message = str(err)
    for text, code in (
        ("No space left", errno.ENOSPC),
        ("Read-only file system", errno.EROFS),
        ("Permission denied", errno.EACCES),
        ("File too large", errno.EFBIG),
    ):
        if text in message:
            raise WorkspaceWriteError(describe_write_error(path, OSError(code, text))) from err


def cell_pixels(ratio: tuple[int, int], shorter: int) -> tuple[int, int]:
    """(width, height) in pixels of a ``ratio``-shaped cell whose shorter side is
    ``shorter`` (2:3 at 128 -> 128 x 192)."""
    width, height = ratio
    scale = shorter / min(width, height)
    return round(width * scale), round(height * scale)


def hex_to_rgb(colour: str) -> list[int]:
    return [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
