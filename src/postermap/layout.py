"""The 2-D layout: L2-normalised features -> PCA -> openTSNE (default) or UMAP, seeded.

Features are L2-normalised first, so Euclidean distance in PCA space ranks neighbours like
cosine similarity does in the full space. PCA is fitted on a 50k sample and applied chunk
by chunk (:mod:`postermap.vectors`), so the full features are never held. PCA to
``pca_dims`` removes noise and makes the neighbour search cheap. openTSNE's defaults (PCA
initialisation, FFT gradients for large N) keep global structure and scale to 169k points;
UMAP (umap-learn, ``postermap[umap]``) is the layout most peers offer, here seeded (which
makes it single-threaded: the same layout on every run).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from postermap.errors import NothingToMapError, SettingsError
from postermap.vectors import Projection

log = logging.getLogger(__name__)

MIN_IMAGES = 5
REDUCERS = ("tsne", "umap")


@dataclass
class UmapModel:
    """What places new images on a finished UMAP layout: the projection the layout was
    made in and the fitted reducer (``umap.UMAP.transform``)."""

    projection: Projection
    reducer: Any

    def place(self, features: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
        """Positions of ``features[rows]`` on the layout; the layout does not move."""
        return np.asarray(
            self.reducer.transform(self.projection.transform(features, rows)), dtype=np.float64
        )


def reduce_to_2d(
    features: np.ndarray,
    pca_dims: int,
    perplexity: float,
    seed: int,
    n_jobs: int = 1,
    rows: np.ndarray | None = None,
    *,
    method: str = "tsne",
    umap_neighbors: int = 15,
    umap_min_dist: float = 0.1,
) -> tuple[np.ndarray, UmapModel | None]:
    """2-D layout of ``features[rows]`` (all rows if None; ``features`` may be a memmap:
    it is read in chunks) with ``method`` (``tsne`` or ``umap``), and for UMAP the
    :class:`UmapModel` that places new images on the layout later (None for t-SNE:
    :func:`tsne_place` needs no fitted model). Small N gets a smaller perplexity /
    neighbour count."""
    if method not in REDUCERS:
        raise SettingsError(f"reducer must be one of {', '.join(REDUCERS)}, got {method!r}")
    n = len(features) if rows is None else len(rows)
    if n < MIN_IMAGES:
        raise NothingToMapError(
            f"a map needs at least {MIN_IMAGES} images, and only {n} are "
            f"left after cleaning (statuses and reasons in catalog.parquet; "
            f"overrides.toml can keep flagged ones)"
        )
    dims = min(pca_dims, n - 1, features.shape[1])
    projection = Projection.fit(features, rows, dims, seed, renormalise=False)
    reduced = projection.transform(features, rows)
    if method == "umap":
        xy, reducer = umap_layout(reduced, seed, umap_neighbors, umap_min_dist)
        return xy, UmapModel(projection, reducer)
    return tsne_layout(reduced, perplexity, seed, n_jobs), None


def tsne_layout(reduced: np.ndarray, perplexity: float, seed: int, n_jobs: int) -> np.ndarray:
    from openTSNE import TSNE

    # openTSNE requires 3 * perplexity < N; keep tiny test sets valid.
    perplexity = min(perplexity, (len(reduced) - 1) / 3.0)
    tsne = TSNE(
        n_components=2, perplexity=perplexity, random_state=seed, n_jobs=n_jobs, verbose=False
    )
    with exact_fast_fft(n_jobs):
        return np.asarray(tsne.fit(reduced), dtype=np.float64)


#: FFT sizes (elements) from which a transform is split over threads; below it, waking
#: them costs more than it saves (measured: 600x600 no faster, 1200x1200 1.5-2x)
THREADED_FFT = 800 * 800


@contextlib.contextmanager
def exact_fast_fft(workers: int) -> Iterator[None]:
    """Inside: ``numpy.fft.rfft2`` and ``irfft2`` give the same arrays, bit for bit,
    faster (scipy's pocketfft, threaded for large grids; zero rows skipped).

    openTSNE's PyPI build computes the FFT gradient with numpy's 2-D transforms (its
    FFTW path is compiled only where FFTW is installed): nine per iteration on a grid
    up to ~1,200 px square, half of the reduce stage's time at 20k images. Its forward
    inputs are zero outside their top-left quadrant, so the row transforms of the empty
    rows are zeros and need not be computed. The replacements keep numpy's semantics
    for every input (anything but a plain 2-D float transform goes to numpy itself), so
    another caller in the process is not affected; the layout stays the same (tested).
    """
    fft = np.fft
    numpy_rfft2, numpy_irfft2 = fft.rfft2, fft.irfft2
    fft.rfft2 = _exact_rfft2(numpy_rfft2, workers)
    fft.irfft2 = _exact_irfft2(numpy_irfft2, workers)
    try:
        yield
    finally:
        fft.rfft2, fft.irfft2 = numpy_rfft2, numpy_irfft2


def _plain_2d(a: np.ndarray, dtype: type, s: Any, axes: Any, norm: Any, out: Any) -> bool:
    return (
        a.ndim == 2
        and a.dtype == dtype
        and s is None
        and tuple(axes) == (-2, -1)
        and norm is None
        and out is None
    )


def _exact_rfft2(numpy_rfft2: Any, workers: int) -> Any:
    import scipy.fft

    def rfft2(a: Any, s: Any = None, axes: Any = (-2, -1), norm: Any = None, out: Any = None):
        a = np.asarray(a)
        if not _plain_2d(a, np.float64, s, axes, norm, out):
            return numpy_rfft2(a, s=s, axes=axes, norm=norm, out=out)
        threads = workers if a.size >= THREADED_FFT else 1
        # numpy's rfft2 is the real transform of each row, then the complex transform
        # of each column: the same steps, without the rows that are all zeros
        filled = np.flatnonzero(a.any(axis=1))
        used = int(filled[-1]) + 1 if filled.size else 0
        rows = np.zeros((a.shape[0], a.shape[1] // 2 + 1), np.complex128)
        rows[:used] = scipy.fft.rfft(a[:used], axis=1, workers=threads)
        return scipy.fft.fft(rows, axis=0, overwrite_x=True, workers=threads)

    return rfft2


def _exact_irfft2(numpy_irfft2: Any, workers: int) -> Any:
    import scipy.fft

    def irfft2(a: Any, s: Any = None, axes: Any = (-2, -1), norm: Any = None, out: Any = None):
        a = np.asarray(a)
        if not _plain_2d(a, np.complex128, s, axes, norm, out):
            return numpy_irfft2(a, s=s, axes=axes, norm=norm, out=out)
        threads = workers if 2 * a.size >= THREADED_FFT else 1
        columns = scipy.fft.ifft(a, axis=0, workers=threads)
        return scipy.fft.irfft(columns, axis=1, overwrite_x=True, workers=threads)

    return irfft2


#: openTSNE's recipe for adding points to a finished embedding (``TSNEEmbedding.transform``):
#: each new point's affinities to its nearest points of the map at a low perplexity, then
#: gradient descent on the new points alone against the fixed map
PARTIAL_PERPLEXITY = 5.0
PARTIAL_NEIGHBOURS = 25
PARTIAL_ITERATIONS = 250


def tsne_place(
    reference: np.ndarray,
    start: np.ndarray,
    neighbours: np.ndarray,
    distances: np.ndarray,
    n_jobs: int = 1,
) -> np.ndarray:
    """Positions of new points in the finished t-SNE layout ``reference`` (N, 2), which
    does not move: the t-SNE objective of the new points against the map's, optimised
    from ``start`` (M, 2), with affinities from each new point's ``neighbours`` (M, k
    rows of ``reference``, nearest first) at ``distances`` (Euclidean between unit
    vectors: only their order and gaps matter, the perplexity calibration sets the
    scale).

    openTSNE's ``transform`` does this from the fitted affinity model, which ``reduce``
    does not keep (hundreds of MB at 169k); the neighbours come from the map's own index
    instead, the optimisation is openTSNE's (``PartialTSNEEmbedding``, FFT gradients,
    ``transform``'s step settings).
    """
    from openTSNE import PartialTSNEEmbedding, TSNEEmbedding
    from openTSNE.affinity import PrecomputedAffinities, joint_probabilities_nn
    from scipy import sparse

    out = np.array(start, dtype=np.float64)
    # a point without finite distances or start has nothing to move by: it stays put
    usable = np.isfinite(distances).all(axis=1) & np.isfinite(out).all(axis=1)
    n, k = len(reference), neighbours.shape[1]
    if not usable.any() or k < 2 or n < MIN_IMAGES:
        return out
    neighbours, distances, start = neighbours[usable], distances[usable], out[usable]
    # the FFT gradient's interpolation grid is laid out around the origin
    centre = (reference.max(axis=0) + reference.min(axis=0)) / 2
    affinities = joint_probabilities_nn(
        np.ascontiguousarray(neighbours, dtype=np.int64),
        np.ascontiguousarray(distances, dtype=np.float64),
        [min(PARTIAL_PERPLEXITY, (k - 1) / 3)],
        symmetrize=False,
        normalization="point-wise",
        n_reference_samples=n,
        n_jobs=n_jobs,
    )
    # the map's own affinities are not needed to move only the new points
    unused = PrecomputedAffinities(sparse.identity(n, format="csr"), normalize=False)
    fixed = TSNEEmbedding(
        np.ascontiguousarray(reference - centre, dtype=np.float64),
        unused,
        negative_gradient_method="fft",
        n_jobs=n_jobs,
    )
    fixed.prepare_interpolation_grid()
    moving = PartialTSNEEmbedding(
        np.asarray(start - centre, dtype=np.float64),
        fixed,
        affinities,
        negative_gradient_method="fft",
        n_jobs=n_jobs,
    )
    with exact_fast_fft(n_jobs):
        moving.optimize(
            n_iter=PARTIAL_ITERATIONS,
            learning_rate=0.1,
            exaggeration=1.5,
            momentum=0.8,
            max_grad_norm=0.25,
            inplace=True,
        )
    out[usable] = np.asarray(moving, dtype=np.float64) + centre
    return out


def umap_layout(
    reduced: np.ndarray, seed: int, neighbors: int, min_dist: float
) -> tuple[np.ndarray, Any]:
    """The UMAP layout of ``reduced`` and the fitted reducer."""
    try:
        import umap
    except ImportError as err:
        raise SettingsError(
            "--reducer umap needs umap-learn: pip install 'postermap[umap]'"
        ) from err
    neighbors = max(2, min(neighbors, len(reduced) - 1))
    model = umap.UMAP(
        n_components=2, n_neighbors=neighbors, min_dist=min_dist, random_state=seed, n_jobs=1
    )
    return np.asarray(model.fit_transform(reduced), dtype=np.float64), model


def trustworthiness(
    features: np.ndarray, xy: np.ndarray, k: int = 10, sample: int = 5000, seed: int = 0
) -> float:
    """How far the layout's neighbourhoods can be trusted (Venna & Kaski; 1.0: no point
    has a 2-D neighbour among its ``k`` nearest that is not also close in the features).

    The features are L2-normalised first, so closeness is cosine similarity, as
    everywhere else in postermap. Above ``sample`` points a seeded random sample is
    scored (the measure needs all pairwise distances of the points it scores).
    """
    from sklearn.manifold import trustworthiness as sklearn_trustworthiness

    from postermap.vectors import normalise

    picked = _sample(len(xy), sample, seed)
    unit, layout = normalise(np.asarray(features)[picked]), np.asarray(xy)[picked]
    k = min(k, (len(picked) - 1) // 2 - 1)
    return float(sklearn_trustworthiness(unit, layout, n_neighbors=max(k, 1)))


def knn_preservation(
    features: np.ndarray, xy: np.ndarray, k: int = 10, sample: int | None = None, seed: int = 0
) -> float:
    """The share of each point's ``k`` nearest neighbours in the (L2-normalised)
    features that are among its ``k`` nearest in the layout, averaged over all points
    (1.0: every neighbourhood kept; a random layout keeps about k / N).

    With ``sample``, a seeded random sample of that many points is scored, each against
    all points: only the sample is searched exactly, so this scales to a million points.
    """
    from postermap.vectors import normalise

    n = len(xy)
    k = min(k, n - 1)
    picked = _sample(n, sample, seed) if sample else np.arange(n)
    high = _nearest_others(normalise(np.asarray(features)), picked, k)
    low = _nearest_others(np.asarray(xy), picked, k)
    both = np.concatenate([high, low], axis=1)
    both.sort(axis=1)
    kept = int((both[:, 1:] == both[:, :-1]).sum())  # each shared neighbour once per row
    return kept / (len(picked) * k)


def _nearest_others(points: np.ndarray, picked: np.ndarray, k: int) -> np.ndarray:
    """The ``k`` nearest other points of each ``picked`` point: itself left out wherever
    a tie sorts it, the farthest of ``k + 1`` dropped where it is not among them."""
    from sklearn.neighbors import NearestNeighbors

    found = (
        NearestNeighbors(n_neighbors=k + 1)
        .fit(points)
        .kneighbors(points[picked], return_distance=False)
    )
    keep = found != picked[:, None]
    keep[keep.sum(axis=1) > k, -1] = False
    return found[keep].reshape(len(picked), k)


def _sample(n: int, size: int, seed: int) -> np.ndarray:
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))
