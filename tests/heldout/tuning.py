"""The sets the clean and cluster thresholds were tuned on (tests/cleanset.py,
tests/tropes.py), written in the held-out labels format so one evaluation and one table
cover tuning and held-out sets alike.

Both compose Google's Noto emoji (the project's default set, npm
``emoji-datasource-google``, Apache-2.0), fetched by :func:`postermap.datasets.fetch_emoji`.
"""

from __future__ import annotations

import os
from pathlib import Path

from tests.heldout.labels import Label, write_labels

REPO = Path(__file__).resolve().parents[2]
CLEANSET_KINDS = {
    "orig": "poster",
    "minimal": "keeper:minimalist",
    "bytecopy": "exact:bytes",
    "reenc": "exact:bmp",
    "template": "boring:template",
    "solid": "boring:solid",
    "gradient": "boring:gradient",
    "tiny": "boring:upscale",
}


def emoji_dir() -> Path:
    """Where the default set lives (as in tests/conftest.py)."""
    return Path(os.environ.get("POSTERMAP_EMOJI_DIR", REPO / "data" / "emoji"))


def emoji_available() -> bool:
    return (emoji_dir() / "images" / "metadata.csv").exists()


def fetch_emoji() -> Path:
    from postermap.datasets import fetch_emoji as fetch

    return fetch(emoji_dir())


def _fresh(out: Path) -> None:
    """The tuning generators create ``out`` themselves and refuse an existing one."""
    if out.exists():
        if any(out.iterdir()):
            raise FileExistsError(f"{out} is not empty")
        out.rmdir()


def build_cleanset(out: Path, seed: int, scale: float = 1.0) -> Path:
    """tests/cleanset.py's labelled poster set (60 originals at scale 1)."""
    from tests.cleanset import make_clean_set, truth

    _fresh(out)
    make_clean_set(fetch_emoji(), out, n=max(6, round(60 * scale)), seed=seed)
    labels = []
    for path in sorted(p for p in out.iterdir() if p.is_file()):
        status, original = truth(path)
        prefix = path.name.split("-")[0]
        kind = CLEANSET_KINDS.get(prefix)
        if prefix == "near":
            kind = f"near:{path.name.split('-')[1]}"
        role = "keep" if status == "ok" else status
        labels.append(Label(path.name, role, original or "", "", "", kind or ""))
    write_labels(out, labels)
    return out


def build_tropes(out: Path, seed: int, scale: float = 1.0) -> Path:
    """tests/tropes.py's planted tropes: six motifs, six palettes, random others."""
    from tests.tropes import group_of, make_trope_set

    _fresh(out)
    make_trope_set(
        fetch_emoji(),
        out,
        per_group=max(3, round(25 * scale)),
        others=max(6, round(150 * scale)),
        seed=seed,
    )
    labels = []
    for path in sorted(p for p in out.iterdir() if p.is_file()):
        group = group_of(path.name)
        if group.startswith("trope"):
            labels.append(Label(path.name, "keep", "", group, "", "trope:large"))
        elif group.startswith("palette"):
            labels.append(Label(path.name, "keep", "", "", group, "palette"))
        else:
            labels.append(Label(path.name, "keep", "", "", "", "poster"))
    write_labels(out, labels)
    return out
