"""Embedding rows without loading them: chunked normalisation, projection and group sums.

The embeddings file is memory-mapped (N x 1280 float32: 5 GB at a million images). The
stages after embed need, from all of it, only low-dimensional projections (PCA-50 for
t-SNE, PCA-128 for neighbour search, PCA-30 for clustering in the embedding space) and
per-cluster sums. Copying the rows out, normalising them and centring them for PCA made
three or four full copies at once; here every pass reads ``CHUNK`` rows at a time
(:func:`postermap.workspace.read_rows`, which leaves none of the file resident), and
PCA is fitted on a seeded random sample of ``PCA_SAMPLE`` rows (principal axes from 50k
points of a smooth distribution are as good as from all of them for what they are used
for: a neighbourhood-preserving projection), so memory stays O(N x dims).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from postermap.workspace import atomic_path, read_rows

CHUNK = 32_768
PCA_SAMPLE = 50_000


def normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero), float32."""
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def row_chunks(
    embeddings: np.ndarray, rows: np.ndarray | None = None, unit: bool = True, chunk: int = CHUNK
) -> Iterator[tuple[int, np.ndarray]]:
    """(offset, rows) over ``embeddings[rows]`` (all rows if None), unit-normalised unless
    ``unit`` is False."""
    n = len(embeddings) if rows is None else len(rows)
    for start in range(0, n, chunk):
        if rows is None:
            part = read_rows(embeddings, np.arange(start, min(start + chunk, n)))
        else:  # memmaps read fastest in order; then restore the caller's order
            wanted = np.asarray(rows[start : start + chunk])
            part = read_rows(embeddings, np.sort(wanted))
            part = part[np.argsort(np.argsort(wanted, kind="stable"))]
        yield start, normalise(part) if unit else part


class Projection:
    """Centre, rotate onto the principal axes (optionally re-normalise): fit once, apply
    to any rows, including a new image's features at query time."""

    def __init__(self, mean: np.ndarray, components: np.ndarray, renormalise: bool = True) -> None:
        self.mean = np.asarray(mean, np.float32)
        self.components = np.asarray(components, np.float32)
        self.renormalise = renormalise

    @classmethod
    def fit(
        cls,
        embeddings: np.ndarray,
        rows: np.ndarray | None,
        dims: int,
        seed: int,
        renormalise: bool = True,
        sample: int = PCA_SAMPLE,
    ) -> Projection:
        """PCA of the unit-normalised rows, from at most ``sample`` of them (seeded)."""
        from sklearn.decomposition import PCA

        all_rows = np.arange(len(embeddings)) if rows is None else np.asarray(rows)
        if len(all_rows) > sample:
            picked = np.random.default_rng(seed).choice(len(all_rows), sample, replace=False)
            all_rows = all_rows[np.sort(picked)]
        unit = normalise(read_rows(embeddings, np.sort(all_rows)))
        dims = min(dims, unit.shape[0], unit.shape[1])
        pca = PCA(n_components=dims, random_state=seed).fit(unit)
        return cls(pca.mean_, pca.components_, renormalise)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        out = (normalise(features) - self.mean) @ self.components.T
        if self.renormalise:
            out = normalise(out)
        return np.ascontiguousarray(out, dtype=np.float32)

    def transform(self, embeddings: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Projected ``embeddings[rows]``, read chunk by chunk."""
        n = len(embeddings) if rows is None else len(rows)
        out = np.empty((n, len(self.components)), dtype=np.float32)
        for start, part in row_chunks(embeddings, rows, unit=False):
            out[start : start + len(part)] = self(part)
        return out

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(
                    fh, mean=self.mean, components=self.components, renormalise=self.renormalise
                )

    @classmethod
    def load(cls, path: Path) -> Projection:
        data = np.load(path)
        renormalise = bool(data["renormalise"]) if "renormalise" in data else True
        return cls(data["mean"], data["components"], renormalise)


def group_sums(
    embeddings: np.ndarray,
    rows: np.ndarray | None,
    groups: np.ndarray,
    n_groups: int,
    transform=None,
    unit: bool = True,
) -> np.ndarray:
    """Per group g in 0..n_groups-1, the float64 sum of ``transform(rows)`` over its
    members (unit-normalised rows unless ``unit`` is False; negative groups skipped),
    read chunk by chunk: one sparse (groups x chunk) product per chunk."""
    from scipy import sparse

    groups = np.asarray(groups)
    total = None
    for start, part in row_chunks(embeddings, rows, unit=unit):
        values = part if transform is None else transform(part)
        g = groups[start : start + len(part)]
        keep = np.nonzero(g >= 0)[0]
        member = sparse.csr_matrix(
            (np.ones(len(keep)), (g[keep], keep)), shape=(n_groups, len(part))
        )
        chunk_sum = member @ np.asarray(values, dtype=np.float64)
        total = chunk_sum if total is None else total + chunk_sum
    return total if total is not None else np.zeros((n_groups, 0))
