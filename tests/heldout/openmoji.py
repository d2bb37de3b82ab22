"""Held-out real set "openmoji": OpenMoji's emoji as they are, with their categories.

OpenMoji (npm ``openmoji``, CC BY-SA 4.0) is a different design language from Noto: flat
fills with a heavy black outline. The set is real drawings, all distinct: a person
curating it would remove almost none, so every image is ``keep`` and ``category`` is
OpenMoji's group (smileys-emotion, symbols, flags, ...), against which clustering can be
scored. Skin-tone variants (near identical by design) and the ``component`` swatches are
left out.

Chosen to contain the hard pairs that differ in the one thing that matters: faces with
another expression, left/right and up/down arrows and mirror-image half-black shapes,
white/black chess pieces, horizontal/vertical traffic lights, the regional-indicator
letters, jars that differ only in the colour of their content, man/woman/person variants.
Members of such a family carry ``kind`` ``pair:<family>`` (all members of a family are
included together); faces carry ``face:<subgroup>``.

Rendered from the SVGs with libvips (pyvips, a postermap dependency) at 160 px, PNG with
transparency, as an emoji set ships.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections import defaultdict
from pathlib import Path

from tests.heldout import sources
from tests.heldout.labels import SetWriter

log = logging.getLogger(__name__)

NAME = "openmoji"
SOURCES = ("openmoji",)
SIZE = 160
#: groups taken whole (they hold most of the hard pairs)
WHOLE = ("smileys-emotion", "symbols", "extras-unicode")
#: at most this many from every other group
CAP = 110
#: the words in which the members of a hard family differ
CONTRAST = frozenset(
    "left right up down upper lower upwards downwards black white horizontal vertical "
    "man woman person men women boy girl red blue orange yellow green purple brown "
    "clockwise anticlockwise counterclockwise half".split()
)


def family(annotation: str) -> str | None:
    """The annotation without its contrast words, or None if it has none: 'left arrow' and
    'right arrow' are one family ('arrow')."""
    words = re.findall(r"[a-z0-9]+", annotation.lower())
    rest = [w for w in words if w not in CONTRAST]
    if len(rest) == len(words) or not rest:
        return None
    return " ".join(rest)


def choose(entries: list[dict], rng: random.Random, scale: float) -> list[dict]:
    """Whole groups in :data:`WHOLE`, a sample of the others, and every hard family whose
    member was picked completed."""
    by_group: dict[str, list[dict]] = defaultdict(list)
    for e in entries:
        by_group[e["group"]].append(e)
    chosen: dict[str, dict] = {}
    for group in sorted(by_group):
        members = by_group[group]
        n = len(members) if group in WHOLE else min(CAP, len(members))
        n = max(1, round(n * scale))
        for e in rng.sample(members, min(n, len(members))):
            chosen[e["hexcode"]] = e
    families: dict[str, list[dict]] = defaultdict(list)
    for e in entries:
        key = family(e["annotation"])
        if key is not None:
            families[key].append(e)
    for members in families.values():
        if len(members) >= 2 and any(m["hexcode"] in chosen for m in members):
            chosen.update({m["hexcode"]: m for m in members})
    return sorted(chosen.values(), key=lambda e: e["order"] or 0)


def kind_of(entry: dict, families: dict[str, int]) -> str:
    key = family(entry["annotation"])
    if key is not None and families.get(key, 0) >= 2:
        return f"pair:{key}"
    if entry["group"] == "smileys-emotion" and entry["subgroups"].startswith("face-"):
        return f"face:{entry['subgroups']}"
    return ""


def build(out: Path, seed: int, scale: float = 1.0) -> Path:
    """Render the chosen emoji into ``out`` with labels; returns ``out``."""
    import pyvips

    sources.require(SOURCES)
    root = sources.source_path("openmoji")
    entries = json.loads((root / "data" / "openmoji.json").read_text(encoding="utf-8"))
    entries = [e for e in entries if not e.get("skintone") and e["group"] != "component"]
    entries = [e for e in entries if (root / "color" / "svg" / f"{e['hexcode']}.svg").exists()]
    rng = random.Random(f"{NAME}/{seed}")
    chosen = choose(entries, rng, scale)
    sizes: dict[str, int] = defaultdict(int)
    for e in chosen:
        key = family(e["annotation"])
        if key is not None:
            sizes[key] += 1
    writer = SetWriter(out, NAME, seed)
    seen: dict[str, str] = {}
    for e in chosen:
        svg = root / "color" / "svg" / f"{e['hexcode']}.svg"
        image = pyvips.Image.new_from_file(str(svg), scale=SIZE / 72)
        png = image.write_to_buffer(".png")
        pixels = hashlib.sha256(image.write_to_memory()).hexdigest()
        if pixels in seen:  # two code points drawn identically: not a distinct image
            log.info("skipping %s: drawn the same as %s", e["hexcode"], seen[pixels])
            continue
        seen[pixels] = e["hexcode"]
        writer.save_bytes(
            png,
            e["hexcode"],
            "png",
            "keep",
            category=e["group"],
            kind=kind_of(e, sizes),
            title=e["annotation"] or e["hexcode"],
        )
    log.info("%s seed %d: %d images in %s", NAME, seed, len(writer.labels), out)
    return writer.finish()
