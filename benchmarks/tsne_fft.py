"""The reduce stage's t-SNE with numpy's FFT against the exact faster one, same run.

    python -m benchmarks.tsne_fft [--n 20000] [--rounds 2] [--workspace WS]

openTSNE's PyPI build computes its FFT gradient with ``numpy.fft``; the reduce stage runs
it inside :func:`postermap.layout.exact_fast_fft`, which gives the same arrays faster.
This times :func:`postermap.layout.tsne_layout` both ways in alternating rounds on the
same points and checks that the layouts are identical. The points: the PCA projection
of a finished workspace's images (``--workspace``), made as the reduce stage makes it,
else a Gaussian mixture of ``--n`` points; both at the stage's default dimensions and
perplexity. Writes ``benchmarks/results/tsne-fft.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.common import gaussian_mixture, write_result
from postermap import layout
from postermap.config import Settings


def points(workspace: Path | None, n: int, seed: int, dims: int) -> tuple[np.ndarray, str]:
    """What the reduce stage hands openTSNE, and where it came from."""
    if workspace is None:
        return gaussian_mixture(n, dim=dims, clusters=100, seed=seed).astype(np.float64), "mixture"
    from postermap.catalog import ok_ids
    from postermap.vectors import Projection
    from postermap.workspace import Workspace

    ws = Workspace(workspace)
    embeddings, rows = ws.embedding_rows(np.array(ok_ids(ws)))
    projection = Projection.fit(embeddings, rows, dims, seed, renormalise=False)
    return projection.transform(embeddings, rows), str(workspace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--workspace", type=Path)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    defaults = Settings().for_stage("reduce")
    reduced, source = points(args.workspace, args.n, args.seed, defaults.pca_dims)
    print(f"{len(reduced)} points from {source}")
    exact = layout.exact_fast_fft
    seconds: dict[str, list[float]] = {"numpy": [], "exact_fast": []}
    layouts: dict[str, np.ndarray] = {}
    try:
        for _ in range(args.rounds):
            for name in seconds:
                # the baseline: tsne_layout as it is, with numpy's own transforms
                layout.exact_fast_fft = (
                    exact if name == "exact_fast" else lambda _w: contextlib.nullcontext()
                )
                start = time.perf_counter()
                layouts[name] = layout.tsne_layout(
                    reduced, defaults.perplexity, args.seed, args.workers
                )
                seconds[name].append(time.perf_counter() - start)
                print(f"{name}: {seconds[name][-1]:.1f} s", flush=True)
    finally:
        layout.exact_fast_fft = exact
    ratios = [a / b for a, b in zip(seconds["exact_fast"], seconds["numpy"], strict=True)]
    identical = bool(np.array_equal(layouts["numpy"], layouts["exact_fast"]))
    print(
        f"exact fast FFT / numpy FFT: {statistics.median(ratios):.2f} "
        f"(rounds {', '.join(f'{r:.2f}' for r in ratios)}), layouts identical: {identical}"
    )
    write_result(
        "tsne-fft.json",
        {
            "points": len(reduced),
            "source": source,
            "seconds": seconds,
            "ratio": ratios,
            "identical": identical,
        },
    )


if __name__ == "__main__":
    main()
