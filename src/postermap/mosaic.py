"""The grid mosaic as a deep-zoom pyramid (pyvips ``dzsave``, Google tile layout).

The mosaic is built one grid row at a time: each row's thumbnails are drawn (JPEGs
decoded at n/8 scale, :func:`cell_pixels_of`) into one array and written as an
uncompressed ``.v`` strip by :func:`render_row`, rows in parallel on the run's runner
(local processes or Ray tasks), so at most one row of
thumbnails per worker is open at once (one lazy pyvips image per cell for the whole grid
holds ~170 KB each: 3.4 GB at 20k images). The strips are then joined, memory-mapped,
and ``dzsave`` streams the pyramid from them. Temporary disk: the raw mosaic (3 bytes per
pixel; ~8 GB at 169k images of 128 px cells), removed afterwards.
"""

from __future__ import annotations

import errno
import json
import logging
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from postermap.errors import WorkspaceWriteError
from postermap.images import DECODE_ERRORS
from postermap.progress import track
from postermap.runner import Runner
from postermap.workspace import atomic_path, describe_write_error

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
    # a new folder per render: libvips caches what it opened by file name, so a strip
    # of an earlier render in this process at the same path could be served again
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    strips_dir = Path(tempfile.mkdtemp(prefix=".tmp-strips-", dir=out_dir.parent))
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


def pyramid_levels(width: int, height: int) -> int:
    """Zoom levels ``dzsave`` writes in the Google layout for a ``width`` x ``height``
    mosaic: the top level's square of tiles is the smallest power of two that holds it."""
    side = max(width, height, 1)
    return max(0, math.ceil(math.log2(side / TILE_SIZE))) + 1 if side > TILE_SIZE else 1


#: share of the full-resolution tiles above which drawing only the changed ones is slower
#: than rendering the whole pyramid again
PARTIAL_SHARE = 0.5


def update_pyramid(
    cells: list[list[str | None]],
    cell: tuple[int, int],
    background: str,
    quality: int,
    out_dir: Path,
    old_dir: Path,
    changed: set[tuple[int, int]],
    runner: Runner | None = None,
) -> tuple[int, dict[tuple[int, int], str], int] | None:
    """The pyramid of ``cells`` made from the one in ``old_dir`` by drawing again only
    the tiles that show a ``changed`` cell (row, col), and their parents up to the top.

    The Google layout anchors the mosaic at the top left, so as long as the number of
    levels stays the same every unchanged tile is the same file: those are hard-linked
    from ``old_dir``. A full-resolution tile is drawn from its cells, a parent from its
    four children (as ``dzsave`` shrinks them); a tile with nothing on it is left out, as
    ``dzsave`` leaves blank tiles out. Each level's tiles are drawn one tile row per task
    on ``runner`` (in this process without one), a level after the one below it.

    Returns (levels, cells that could not be drawn, tiles drawn), or None when the
    levels changed or more than :data:`PARTIAL_SHARE` of the full-resolution tiles show a
    changed cell (the caller renders the whole pyramid: drawn tile by tile, a cell on
    the corner of four tiles is decoded four times, and at 169k images with every tile
    changed that took 298 s where the whole render takes ~190 s).
    """
    cw, ch = cell
    rows, cols = len(cells), len(cells[0]) if cells else 0
    levels = pyramid_levels(cols * cw, rows * ch)
    old_levels = len([p for p in old_dir.iterdir() if p.is_dir() and p.name.isdigit()])
    if levels != old_levels:
        return None
    bg = hex_to_rgb(background)
    top = levels - 1
    todo: set[tuple[int, int]] = set()
    for r, c in changed:
        x0, y0 = c * cw, r * ch
        for ty in range(y0 // TILE_SIZE, (y0 + ch - 1) // TILE_SIZE + 1):
            for tx in range(x0 // TILE_SIZE, (x0 + cw - 1) // TILE_SIZE + 1):
                todo.add((tx, ty))
    tiles_across, tiles_down = -(-cols * cw // TILE_SIZE), -(-rows * ch // TILE_SIZE)
    if len(todo) > PARTIAL_SHARE * tiles_across * tiles_down:
        return None
    _link_tree(old_dir, out_dir)
    apply = runner.map if runner is not None else map
    failed: dict[tuple[int, int], str] = {}
    drawn = 0
    by_row = _by_tile_row(todo)
    # a task gets only the grid rows its tile row shows
    spans = [
        (ty * TILE_SIZE // ch, min(rows, ((ty + 1) * TILE_SIZE - 1) // ch + 1)) for ty in by_row
    ]
    results = apply(
        draw_tile_row,
        [cells[r0:r1] for r0, r1 in spans],
        [r0 for r0, _ in spans],
        list(by_row),
        list(by_row.values()),
        [cell] * len(by_row),
        [bg] * len(by_row),
        [quality] * len(by_row),
        [out_dir / str(top)] * len(by_row),
    )
    for row_failed, row_drawn in track(results, len(by_row), "tiles: tile rows"):
        failed.update(row_failed)
        drawn += row_drawn
    for level in range(top - 1, -1, -1):
        todo = {(tx // 2, ty // 2) for tx, ty in todo}
        by_row = _by_tile_row(todo)
        results = apply(
            shrink_tile_row,
            list(by_row),
            list(by_row.values()),
            [bg] * len(by_row),
            [quality] * len(by_row),
            [out_dir / str(level + 1)] * len(by_row),
            [out_dir / str(level)] * len(by_row),
        )
        drawn += sum(results)
    return levels, failed, drawn


def _by_tile_row(tiles: set[tuple[int, int]]) -> dict[int, list[int]]:
    """Tile columns by tile row, both sorted."""
    out: dict[int, list[int]] = {}
    for tx, ty in sorted(tiles, key=lambda t: (t[1], t[0])):
        out.setdefault(ty, []).append(tx)
    return out


def _link_tree(old_dir: Path, out_dir: Path) -> None:
    """Hard-link every file under ``old_dir`` to the same place under ``out_dir``."""
    old, out = str(old_dir), str(out_dir)
    for folder, _, files in os.walk(old):
        target = out + folder[len(old) :]
        os.makedirs(target, exist_ok=True)
        for name in files:
            os.link(os.path.join(folder, name), os.path.join(target, name))


def draw_tile_row(
    cells: list[list[str | None]],
    first_row: int,
    ty: int,
    txs: list[int],
    cell: tuple[int, int],
    bg: list[int],
    quality: int,
    level_dir: Path,
) -> tuple[dict[tuple[int, int], str], int]:
    """Draw the full-resolution tiles ``txs`` of tile row ``ty`` from ``cells`` (the grid
    rows from ``first_row`` that the tile row shows); a unit of parallel work.

    Returns the cells (row, col) that could not be drawn, and the number of tiles written.
    """
    import pyvips

    failed: dict[tuple[int, int], str] = {}
    drawn = 0
    for tx in txs:
        image, tile_failed = _draw_tile(pyvips, cells, first_row, cell, bg, tx, ty)
        failed.update(tile_failed)
        drawn += _save_tile(image, level_dir / str(ty) / f"{tx}.jpg", quality)
    return failed, drawn


def shrink_tile_row(
    ty: int, txs: list[int], bg: list[int], quality: int, child_dir: Path, level_dir: Path
) -> int:
    """Draw tiles ``txs`` of row ``ty`` of a level from their four children one level
    down (as ``dzsave`` shrinks them); a unit of parallel work. Returns tiles written."""
    import pyvips

    drawn = 0
    for tx in txs:
        children = [
            child_dir / str(2 * ty + dy) / f"{2 * tx + dx}.jpg" for dy in (0, 1) for dx in (0, 1)
        ]
        image = None
        if any(child.exists() for child in children):
            blank = (pyvips.Image.black(TILE_SIZE, TILE_SIZE, bands=3) + bg).cast("uchar")
            parts = [pyvips.Image.new_from_file(str(p)) if p.exists() else blank for p in children]
            image = pyvips.Image.arrayjoin(parts, across=2).shrink(2, 2).cast("uchar")
        drawn += _save_tile(image, level_dir / str(ty) / f"{tx}.jpg", quality)
    return drawn


def _draw_tile(
    pyvips: Any,
    cells: list[list[str | None]],
    first_row: int,
    cell: tuple[int, int],
    bg: list[int],
    tx: int,
    ty: int,
) -> tuple[Any, dict[tuple[int, int], str]]:
    """The full-resolution tile (tx, ty) drawn from the cells it shows (None if it shows
    none), and the cells that could not be drawn; ``cells`` are the grid's rows from
    ``first_row`` on."""
    cw, ch = cell
    x0, y0 = tx * TILE_SIZE, ty * TILE_SIZE
    canvas, failed = None, {}
    last = min(first_row + len(cells), (y0 + TILE_SIZE - 1) // ch + 1)
    for r in range(y0 // ch, last):
        line = cells[r - first_row]
        for c in range(x0 // cw, min(len(line), (x0 + TILE_SIZE - 1) // cw + 1)):
            path = line[c]
            if path is None:
                continue
            if canvas is None:
                canvas = (pyvips.Image.black(TILE_SIZE, TILE_SIZE, bands=3) + bg).cast("uchar")
            try:
                pixels = cell_pixels_of(path, cw, ch, bg)
            except DECODE_ERRORS as err:
                failed[(r, c)] = not_drawn(err)
                continue
            # a cell can be a view of its decoded thumbnail: libvips needs one block
            pixels = np.ascontiguousarray(pixels)
            image = pyvips.Image.new_from_memory(pixels.data, cw, ch, 3, "uchar")
            canvas = canvas.insert(image, c * cw - x0, r * ch - y0)
    return canvas, failed


def _save_tile(image: Any, path: Path, quality: int) -> int:
    """Replace the tile at ``path`` by ``image`` (None: no tile there); 1 if one was written."""
    import pyvips

    path.unlink(missing_ok=True)  # a hard link to the old site's tile: never write through
    if image is None:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        image.write_to_file(f"{path}[Q={quality}]")
    except pyvips.Error as err:
        raise_if_full(path, err)
        raise
    return 1


#: file beside the tiles that records what each cell shows, so the next render can redraw
#: only the tiles whose cells changed
DRAWN_FILE = "drawn.npz"


def write_drawn(tiles_dir: Path, shown: list[list[str | None]], params: dict[str, Any]) -> None:
    """Record what every cell of the pyramid in ``tiles_dir`` shows (a content hash, or
    None) and what it was drawn with (cell size, background, quality, thumbnails)."""
    flat = np.array([[h or "" for h in row] for row in shown], dtype=str)
    with atomic_path(tiles_dir / DRAWN_FILE) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, shown=flat, params=np.array(json.dumps(params, sort_keys=True)))


def changed_cells(
    tiles_dir: Path, shown: list[list[str | None]], params: dict[str, Any]
) -> set[tuple[int, int]] | None:
    """The cells (row, col) whose content differs from what the pyramid in ``tiles_dir``
    shows, or None when it cannot be reused (none there, or drawn otherwise)."""
    path = tiles_dir / DRAWN_FILE
    if not path.exists():
        return None
    with np.load(path) as data:
        if str(data["params"]) != json.dumps(params, sort_keys=True):
            return None
        before = data["shown"]
    rows, cols = len(shown), len(shown[0]) if shown else 0
    now = np.array([[h or "" for h in row] for row in shown], dtype=str).reshape(rows, cols)
    was = np.full((rows, cols), "", dtype=now.dtype if now.size else str)
    if before.ndim == 2:
        r, c = min(rows, before.shape[0]), min(cols, before.shape[1])
        was[:r, :c] = before[:r, :c]
        if (before[r:, :] != "").any() or (before[:, c:] != "").any():
            return None  # the grid shrank: not a change this can draw
    return {(int(i), int(j)) for i, j in zip(*np.nonzero(was != now), strict=True)}


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
    # every cell is written once: pixels, or the background where there are none (a
    # strip filled first and then drawn over wrote each of its ~16 MB twice)
    strip = np.empty((height, width * len(thumbs), 3), np.uint8)
    failed = {}
    for col, path in enumerate(thumbs):
        target = strip[:, col * width : (col + 1) * width]
        if path is None:
            target[:] = bg
            continue
        try:
            target[:] = cell_pixels_of(path, width, height, bg)
        except DECODE_ERRORS as err:
            target[:] = bg
            failed[col] = not_drawn(err)
    image = pyvips.Image.new_from_memory(strip.data, strip.shape[1], height, 3, "uchar")
    try:
        image.write_to_file(str(out))
    except pyvips.Error as err:
        raise_if_full(out, err)
        raise
    return failed


def not_drawn(err: BaseException) -> str:
    """The render error of a cell whose thumbnail could not be read."""
    return f"thumbnail not drawn: {' '.join(str(err).split())[:200]}"


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


def cell_pixels_of(path: str, width: int, height: int, bg: list[int]) -> np.ndarray:
    """The (height, width, 3) pixels of a cell showing the thumbnail at ``path``: cropped
    to fill the cell when its shape is close (:func:`fills_cell`), else fitted inside it
    on ``bg``; raises one of :data:`~postermap.images.DECODE_ERRORS` when the file cannot
    be read.

    A thumbnail is a JPEG, and libjpeg-turbo can decode one at n/8 of its size in the
    inverse DCT itself (``simplejpeg``): decoded at the smallest such size that still
    covers the cell, a 2:3 thumbnail of 256 px comes out 192 px high, the cell's height,
    and only a column is cropped, with no resampling at all (about 4x the cells per
    second of a full decode and a Lanczos resize in Pillow, ``benchmarks/cells.py``; the
    two differ by under one grey level on average). Whatever that decode does not bring
    to the cell's size exactly is resized with Lanczos from the smaller image, and a file
    it cannot read (not a JPEG, or broken) goes through Pillow, whose errors name the
    problem. The cell may be a view of the decoded pixels.
    """
    data = Path(path).read_bytes()
    size = _jpeg_size(data)
    pixels = None
    if size is None:  # not a JPEG libjpeg-turbo reads: Pillow decodes it, or says why not
        pixels = _pillow_pixels(path)
        size = (pixels.shape[1], pixels.shape[0])
    fill = fills_cell(*size, width, height)
    if pixels is None:
        wanted = (width, height) if fill else _fitted_size(size, width, height)
        pixels = _decoded_at_least(path, data, wanted)
    return place_in_cell(pixels, fill, width, height, bg)


def place_in_cell(
    pixels: np.ndarray, fill: bool, width: int, height: int, bg: list[int]
) -> np.ndarray:
    """The (height, width, 3) cell showing the RGB ``pixels``: cropped about their
    centre to fill the cell, or fitted inside it on ``bg``; resized with Lanczos only
    where they are not the size the cell needs already (a crop is a view of them)."""
    h, w = pixels.shape[:2]
    if fill:
        scale = max(width / w, height / h)
        if scale == 1.0:  # one side fits already: a crop
            left, top = (w - width) // 2, (h - height) // 2
            return pixels[top : top + height, left : left + width]
        left, top = (w - width / scale) / 2, (h - height / scale) / 2
        box = (left, top, left + width / scale, top + height / scale)
        image = Image.fromarray(pixels, "RGB")
        return np.asarray(image.resize((width, height), Image.Resampling.LANCZOS, box=box))
    size = _fitted_size((w, h), width, height)
    if (w, h) != size:
        image = Image.fromarray(pixels, "RGB")
        pixels = np.asarray(image.resize(size, Image.Resampling.LANCZOS))
    out = np.full((height, width, 3), bg, np.uint8)
    x, y = (width - size[0]) // 2, (height - size[1]) // 2
    out[y : y + size[1], x : x + size[0]] = pixels
    return out


def _fitted_size(size: tuple[int, int], width: int, height: int) -> tuple[int, int]:
    """The size of an image of ``size`` fitted inside a ``width`` x ``height`` cell."""
    w, h = size
    scale = min(width / w, height / h)
    return max(1, min(width, round(w * scale))), max(1, min(height, round(h * scale)))


def _jpeg_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of a JPEG that libjpeg-turbo reads, None for anything else."""
    import simplejpeg

    if not simplejpeg.is_jpeg(data):
        return None
    try:
        height, width, _, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None  # Pillow reads it, or says why not
    return width, height


def _decoded_at_least(path: str, data: bytes, size: tuple[int, int]) -> np.ndarray:
    """The RGB pixels of the JPEG ``data`` (the file at ``path``) decoded at the smallest
    n/8 scale with both sides at least ``size`` (full size if none is smaller); a file
    libjpeg-turbo gives up on is decoded by Pillow, which raises what is wrong with it."""
    import simplejpeg

    try:
        return simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=size[0], min_height=size[1])
    except ValueError:
        return _pillow_pixels(path)


def _pillow_pixels(path: str) -> np.ndarray:
    """The RGB pixels of the file at ``path`` as Pillow decodes it. Opened by its path, not
    from the bytes already read: Pillow's errors then name the file (a cell's
    ``render_error``), not a memory address."""
    with Image.open(path) as opened:
        return np.asarray(opened.convert("RGB"))


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
