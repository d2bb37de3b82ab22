"""The faster FFT the t-SNE layout runs inside must be numpy's, bit for bit."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from postermap import layout
from postermap.layout import THREADED_FFT, exact_fast_fft


def _padded(side: int, rng: np.random.Generator) -> np.ndarray:
    """Like openTSNE's forward inputs: values in the top-left quadrant, zeros elsewhere."""
    out = np.zeros((side, side))
    out[: side // 2, : side // 2] = rng.random((side // 2, side // 2))
    return out


# 900 and above take the threaded path (THREADED_FFT); 902 = 2 x 11 x 41, 7 is odd
@pytest.mark.parametrize("side", [2, 7, 300, 902])
def test_transforms_are_numpys(side):
    assert side * side < THREADED_FFT or side >= 900
    rng = np.random.default_rng(side)
    inputs = [_padded(side, rng), rng.random((side, side)), np.zeros((side, side))]
    spectra = [np.fft.rfft2(a) for a in inputs]
    product = spectra[0] * spectra[1]
    expected = [*spectra, np.fft.irfft2(product)]
    with exact_fast_fft(2):
        got = [np.fft.rfft2(a) for a in inputs] + [np.fft.irfft2(product)]
    for want, have in zip(expected, got, strict=True):
        assert have.dtype == want.dtype and have.shape == want.shape
        assert np.array_equal(have, want)


def test_other_calls_go_to_numpy_and_numpy_comes_back():
    rng = np.random.default_rng(0)
    cube, single = rng.random((3, 8, 8)), rng.random((8, 8)).astype(np.float32)
    originals = np.fft.rfft2, np.fft.irfft2
    with exact_fast_fft(2):
        assert np.fft.rfft2 is not originals[0]
        assert np.array_equal(np.fft.rfft2(cube), originals[0](cube))
        assert np.array_equal(np.fft.rfft2(single), originals[0](single))
        assert np.array_equal(np.fft.rfft2(cube[0], s=(16, 16)), originals[0](cube[0], s=(16, 16)))
        spectrum = originals[0](cube[0])
        assert np.array_equal(np.fft.irfft2(spectrum, s=(8, 8)), originals[1](spectrum, s=(8, 8)))
    assert (np.fft.rfft2, np.fft.irfft2) == originals


def test_placing_is_the_same_with_numpys_fft(monkeypatch):
    """openTSNE's FFT gradient (which ``tsne_place`` always uses, and ``tsne_layout`` from
    10,000 points) calls numpy.fft: the patch is used there, and changes nothing."""
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(300, 2)) * 10
    start = rng.normal(size=(20, 2))
    neighbours = np.argsort(((start[:, None] - reference[None]) ** 2).sum(-1), axis=1)[:, :10]
    distances = np.sort(rng.uniform(0.1, 1.0, size=(20, 10)), axis=1)
    fast = layout.tsne_place(reference, start, neighbours, distances, n_jobs=2)
    monkeypatch.setattr(layout, "exact_fast_fft", lambda _workers: contextlib.nullcontext())
    calls = []
    numpy_rfft2 = np.fft.rfft2
    monkeypatch.setattr(np.fft, "rfft2", lambda a, *k, **kw: calls.append(1) or numpy_rfft2(a))
    plain = layout.tsne_place(reference, start, neighbours, distances, n_jobs=2)
    assert calls, "openTSNE no longer uses numpy.fft.rfft2: the speed-up is gone"
    assert not np.array_equal(plain, start)
    assert np.array_equal(fast, plain)
