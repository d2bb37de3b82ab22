"""Facets: the catalog's metadata columns typed for filtering in the viewer.

Each column a person should see (:meth:`Workspace.shown_columns`) is typed once, when the
site is built, from its values:

* **year** — a column named like a year or date whose values start with four digits in
  1000..2999 (``1975``, ``1975-03-01``): a timeline with one bin per year (per 5 or 10
  years over long spans); values are kept as int16.
* **number** — every non-empty value parses as a number: a histogram of
  :data:`NUMBER_BINS` bins (logarithmic when the values are positive and span more than
  three orders of magnitude, as file sizes do); values are kept as float32 (NaN = none).
* **category** — at most :data:`MAX_VALUES` distinct values after splitting multi-valued
  cells on ``|`` or ``;`` (genre ``Drama|Comedy``): chips with counts; each image keeps
  one bit per value (``ceil(values / 8)`` bytes), so a multi-valued cell is one bitmask.

Anything else (titles, ids, free text, columns with one value) is not a facet. The
per-image values go into one small binary file per facet (``data/facets/<n>.bin``, typed
arrays the page fetches on first use: 2 bytes an image for a year, 1 for a category of up
to 8 values); the manifest carries only the facet's description and its counts.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: the most distinct values a column may have to be shown as chips
MAX_VALUES = 48
#: histogram bins of a numeric facet
NUMBER_BINS = 40
#: how multi-valued cells are separated
SPLIT = re.compile(r"\s*[|;]\s*")
YEAR = re.compile(r"^\s*([12]\d{3})(?:\D.*)?$")
YEAR_NAMES = re.compile(r"(year|date|released|published|founded)", re.IGNORECASE)
#: int16 marker of "no year"
NO_YEAR = -32768


@dataclass
class Facet:
    """One facet: its description for the manifest and its per-image values."""

    spec: dict[str, Any]
    data: bytes


def build_facets(items: Sequence[dict], columns: Sequence[str]) -> list[Facet]:
    """The facets among ``columns`` of ``items`` (catalog rows in item order)."""
    facets = []
    for column in columns:
        values = [_text(item.get(column)) for item in items]
        facet = type_column(column, values)
        if facet is not None:
            facets.append(facet)
    return facets


def type_column(name: str, values: list[str | None]) -> Facet | None:
    """A facet for column ``name`` with ``values`` (None or "" = missing), or None when the
    column is not one a person filters by."""
    present = [v for v in values if v]
    if not present:
        return None
    if YEAR_NAMES.search(name):
        years = [YEAR.match(v) for v in present]
        if all(years):
            return _year_facet(name, values)
    numbers = _numbers(present)
    if numbers is not None and len(set(numbers)) > 1:
        return _number_facet(name, values)
    return _category_facet(name, values)


def _year_facet(name: str, values: list[str | None]) -> Facet:
    array = np.full(len(values), NO_YEAR, dtype=np.int16)
    for i, value in enumerate(values):
        match = YEAR.match(value) if value else None
        if match:
            array[i] = int(match.group(1))
    known = array[array != NO_YEAR]
    low, high = int(known.min()), int(known.max())
    span = high - low + 1
    step = 1 if span <= 120 else 5 if span <= 600 else 10
    start = low - low % step
    edges = list(range(start, high + step + 1, step))
    counts = np.histogram(known, bins=edges)[0]
    spec = {
        "name": name,
        "kind": "year",
        "dtype": "int16",
        "missing": NO_YEAR,
        "min": low,
        "max": high,
        "edges": edges,
        "counts": counts.tolist(),
        "none": int(len(values) - len(known)),
    }
    return Facet(spec, array.tobytes())


def _number_facet(name: str, values: list[str | None]) -> Facet:
    array = np.array([float(v) if v else math.nan for v in values], dtype=np.float64)
    known = array[~np.isnan(array)]
    low, high = float(known.min()), float(known.max())
    log_scale = low > 0 and high / low > 1000
    if log_scale:
        edges = np.geomspace(low, high, NUMBER_BINS + 1)
    else:
        edges = np.linspace(low, high, NUMBER_BINS + 1)
    counts = np.histogram(known, bins=edges)[0]
    spec = {
        "name": name,
        "kind": "number",
        "dtype": "float32",
        "scale": "log" if log_scale else "linear",
        "min": low,
        "max": high,
        "edges": [float(f"{e:.6g}") for e in edges],
        "counts": counts.tolist(),
        "none": int(np.isnan(array).sum()),
    }
    # the last edge is rounded for the manifest: make sure the maximum is inside it
    spec["edges"][-1] = max(spec["edges"][-1], high)
    spec["edges"][0] = min(spec["edges"][0], low)
    return Facet(spec, array.astype(np.float32).tobytes())


def _category_facet(name: str, values: list[str | None]) -> Facet | None:
    split = [_split(v) for v in values]
    counts = Counter(part for parts in split for part in parts)
    if not 2 <= len(counts) <= MAX_VALUES:
        return None
    present = sum(1 for parts in split if parts)
    if len(counts) > present / 2:  # nearly one value per image: an id or a name
        return None
    ordered = sorted(counts, key=lambda v: (-counts[v], v))
    code = {value: k for k, value in enumerate(ordered)}
    width = (len(ordered) + 7) // 8
    bits = np.zeros((len(values), width), dtype=np.uint8)
    for i, parts in enumerate(split):
        for part in parts:
            k = code[part]
            bits[i, k >> 3] |= 1 << (k & 7)
    spec = {
        "name": name,
        "kind": "category",
        "dtype": "bits",
        "bytes": width,
        "multi": any(len(parts) > 1 for parts in split),
        "values": ordered,
        "counts": [counts[v] for v in ordered],
        "none": int(sum(1 for parts in split if not parts)),
    }
    return Facet(spec, bits.tobytes())


def _split(value: str | None) -> list[str]:
    if not value:
        return []
    return list(dict.fromkeys(p for p in SPLIT.split(value.strip()) if p))


def _numbers(values: list[str]) -> list[float] | None:
    out = []
    for value in values:
        try:
            number = float(value)
        except ValueError:
            return None
        if not math.isfinite(number):
            return None
        out.append(number)
    return out


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    text = str(value).strip()
    return text or None


def numeric_values(items: Sequence[dict], column: str) -> np.ndarray:
    """Per item, the value of a numeric or year-like ``column`` (NaN = none), as the
    facets read it; raises ValueError when the column is neither."""
    values = [_text(item.get(column)) for item in items]
    facet = type_column(column, values)
    if facet is None or facet.spec["kind"] == "category":
        raise ValueError(f"column {column!r} is not numeric (or not in the metadata)")
    if facet.spec["kind"] == "year":
        years = np.frombuffer(facet.data, dtype=np.int16).astype(np.float64)
        years[years == NO_YEAR] = np.nan
        return years
    return np.frombuffer(facet.data, dtype=np.float32).astype(np.float64)


def facet_bins(
    items: Sequence[dict], column: str, max_bins: int | None = None
) -> tuple[np.ndarray, list[str]]:
    """Per item, its bin of numeric ``column`` (-1 = no value) and each bin's label: one
    bin per year of a year column, the histogram's bins otherwise, so a column of the
    wall is a bar of the facet; a category column gets one bin per value (an image with
    several, in the bin of its first). With ``max_bins``, bins are widened (years to 2, 5, 10,
    20, ... years; histogram bins merged in runs) until at most that many hold images: a
    small collection spread over a century gets decades, not a column per lonely year."""
    values = [_text(item.get(column)) for item in items]
    facet = type_column(column, values)
    if facet is None:
        raise ValueError(
            f"column {column!r} is neither numeric nor a category of at most {MAX_VALUES} "
            f"values (or not in the metadata)"
        )
    spec = facet.spec
    if spec["kind"] == "category":
        return _category_bins(values, spec["values"], max_bins)
    numbers = numeric_values(items, column)
    known = ~np.isnan(numbers)
    edges = np.asarray(spec["edges"], dtype=np.float64)
    if spec["kind"] == "year":
        steps = [1, 2, 5, 10, 20, 25, 50, 100, 250, 500, 1000]
        step = int(edges[1] - edges[0]) if len(edges) > 1 else 1
        for step in [s for s in steps if s >= step]:
            low, high = spec["min"] - spec["min"] % step, spec["max"]
            edges = np.arange(low, high + step + 1, step, dtype=np.float64)
            found = np.unique(np.searchsorted(edges, numbers[known], side="right"))
            if max_bins is None or len(found) <= max_bins:
                break
        labels = [str(int(e)) if step == 1 else f"{int(e)}–{int(e) + step - 1}" for e in edges[:-1]]
    else:
        runs = 1
        while max_bins is not None and runs < len(edges) - 1:
            merged = np.append(edges[:-1:runs], edges[-1])
            found = np.unique(np.searchsorted(merged, numbers[known], side="right"))
            if len(found) <= max_bins:
                break
            runs += 1
        edges = np.append(edges[:-1:runs], edges[-1])
        labels = [f"{edges[k]:.3g}–{edges[k + 1]:.3g}" for k in range(len(edges) - 1)]
    bins = np.full(len(items), -1, dtype=np.int64)
    bins[known] = np.clip(
        np.searchsorted(edges, numbers[known], side="right") - 1, 0, len(edges) - 2
    )
    return bins, labels


def _category_bins(
    values: list[str | None], ordered: list[str], max_bins: int | None
) -> tuple[np.ndarray, list[str]]:
    """Bins of a category column: its values by count, the rarest ones merged into
    "other" beyond ``max_bins``."""
    keep = len(ordered) if max_bins is None or len(ordered) <= max_bins else max(1, max_bins - 1)
    code = {value: min(k, keep) for k, value in enumerate(ordered)}
    bins = np.array([code[_split(v)[0]] if _split(v) else -1 for v in values], dtype=np.int64)
    labels = ordered[:keep] + (["other"] if keep < len(ordered) else [])
    return bins, labels
