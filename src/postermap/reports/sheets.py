"""The one contact-sheet renderer: thumbnails in a grid, optionally labelled and framed."""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageDraw

from postermap.images import ImageLoadError, load_image

LIGHT = (255, 255, 255)
DARK = (32, 33, 36)


def contact_sheet(
    paths: list[Path],
    *,
    thumb: int = 96,
    per_row: int = 10,
    labels: list[str] | None = None,
    highlight_first: bool = False,
    background: tuple[int, int, int] = LIGHT,
) -> bytes:
    """PNG bytes of ``paths`` fitted into ``thumb``-pixel cells, ``per_row`` per row.

    With ``labels``, each cell gets its label underneath (ids to paste into
    ``overrides.toml``); ``highlight_first`` frames the first cell in green (the image a
    duplicate group keeps). An unreadable thumbnail is drawn as an empty cell, so one bad
    file never loses the whole report.
    """
    gap, label_height = 8, (18 if labels is not None else 0)
    pitch_x, pitch_y = thumb + gap, thumb + gap + label_height
    lines = max(1, (len(paths) + per_row - 1) // per_row)
    sheet = Image.new("RGB", (per_row * pitch_x, lines * pitch_y), background)
    draw = ImageDraw.Draw(sheet)
    ink = (60, 60, 60) if background == LIGHT else (200, 200, 200)
    for i, path in enumerate(paths):
        x, y = (i % per_row) * pitch_x + gap // 2, (i // per_row) * pitch_y + gap // 2
        image = _thumbnail(path, thumb)
        if image is not None:
            sheet.paste(image, (x + (thumb - image.width) // 2, y + (thumb - image.height) // 2))
        if highlight_first and i == 0:
            draw.rectangle(
                (x - 3, y - 3, x + thumb + 2, y + thumb + 2), outline=(0, 160, 0), width=3
            )
        if labels is not None:
            label = labels[i]
            if len(label) > 14:
                label = f"{label[:6]}..{label[-6:]}"
            draw.text((x, y + thumb + 4), label, fill=ink)
    buffer = io.BytesIO()
    sheet.save(buffer, "PNG")
    return buffer.getvalue()


def _thumbnail(path: Path, size: int) -> Image.Image | None:
    try:
        image = load_image(path)
    except ImageLoadError:
        return None
    image.thumbnail((size, size))
    return image
