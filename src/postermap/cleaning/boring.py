"""Boring images, judged one at a time from the measurements taken at ingest
(:func:`postermap.images.image_stats`).

What makes an image boring on a map is that a cell of it shows nothing: one colour, a
smooth ramp, fog, or a picture blown up from a few dozen pixels. Real graphics must not
look like that to the rules, so each rule asks about the whole picture, not an average:

* ``solid`` / ``gradient`` / ``low_detail`` need the edges to be soft *wherever there is
  anything at all* (``edge_sharp``: the 99th percentile of the Laplacian among non-flat
  pixels). One crisp object a few dozen pixels wide on a plain field is a real picture;
  a 99th percentile over all pixels (``edge_p99``) does not see it. A transparent
  picture was measured on black as well as on white, so a light shape is seen.
* ``tiny`` asks whether the picture holds enough pixels to fill a map cell: its
  *effective* size, the pixel size divided by the side of the pixel blocks it was blown
  up in (``block``, which finds the regular lattice a nearest-neighbour upscale leaves).
  A flat design repeats rows too (a bold letter, a striped flag, a Saul Bass poster), but
  its rows change where its shapes end, not on a lattice, so it keeps its full size.
"""

from __future__ import annotations

from postermap.cleaning.records import Verdict
from postermap.errors import internal_reason


def boring_verdicts(rows: list[dict], indices: list[int], params) -> dict[str, Verdict]:
    """``boring`` verdicts of the rows at ``indices`` that :func:`boring_reason` flags, and
    ``error`` ones (``internal: ...``) where it raises: a bug of ours on one image becomes
    that image's row, never the run's death."""
    verdicts: dict[str, Verdict] = {}
    for i in indices:
        try:
            reason = boring_reason(rows[i], params)
        except Exception as err:  # noqa: BLE001 -- isolation: the row records the bug
            verdicts[rows[i]["id"]] = Verdict("error", internal_reason(err))
            continue
        if reason is not None:
            verdicts[rows[i]["id"]] = Verdict("boring", reason)
    return verdicts


def boring_reason(row: dict, params) -> str | None:
    """Why an image is boring (``solid``, ``gradient``, ``tiny``, ``low_detail``, with the
    measured values), or None.

    ``params`` is a :class:`postermap.cleaning.CleanParams`. Rows measured by an older
    ingest (no ``edge_sharp`` / ``block``) are judged by ``edge_p99`` and their pixel size.
    """
    if row.get("gray_std") is None:
        return None
    sharp = row.get("edge_sharp")
    sharp = row["edge_p99"] if sharp is None else sharp
    soft = sharp < params.sharp_edge
    if soft and row["gray_std"] < params.solid_std:
        return f"solid: contrast {row['gray_std']:.1f}, no sharp edge (at most {sharp:.0f})"
    width, height = row["width"] or 0, row["height"] or 0
    block = max(1.0, row.get("block") or 1.0)
    if min(width, height) / block < params.boring_min_side:
        if block > 1:
            return (
                f"tiny: blown up from about {width / block:.0f}x{height / block:.0f} pixels "
                f"in {block:.0f}-pixel blocks"
            )
        return f"tiny: {width}x{height} pixels"
    if soft and row["detail"] < params.gradient_detail:
        return f"gradient: detail {row['detail']:.2f}, no sharp edge (at most {sharp:.0f})"
    if soft:
        return f"low_detail: no sharp edge anywhere (at most {sharp:.0f})"
    return None
