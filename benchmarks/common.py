"""Helpers shared by the benchmark scripts: cached data sets, timing, peak memory."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import platform
import resource
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

CACHE = Path(__file__).resolve().parent / ".cache"
RESULTS = Path(__file__).resolve().parent / "results"


def gaussian_mixture(n: int, dim: int = 50, clusters: int = 40, seed: int = 0) -> np.ndarray:
    """High-dimensional clusters of unequal size and spread, like CNN features of a
    collection with recurring motifs."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim)) * 4.0
    weights = rng.dirichlet(np.full(clusters, 0.7))
    labels = rng.choice(clusters, size=n, p=weights)
    spread = rng.uniform(0.5, 2.0, size=clusters)[labels, None]
    return (centres[labels] + rng.normal(size=(n, dim)) * spread).astype(np.float32)


def tsne_layout(n: int, seed: int = 0) -> np.ndarray:
    """A t-SNE layout of a Gaussian mixture (cached on disk: t-SNE at 169k takes minutes)."""
    path = CACHE / f"tsne-mixture-{n}-{seed}.npy"
    if path.exists():
        return np.load(path)
    from openTSNE import TSNE

    features = gaussian_mixture(n, seed=seed)
    xy = np.asarray(TSNE(n_jobs=2, random_state=seed).fit(features))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, xy)
    return xy


def blob_layout(n: int, seed: int = 0) -> np.ndarray:
    """A t-SNE-looking 2-D layout without running t-SNE (for 1M points): many dense blobs
    of varied size on a sparse background."""
    rng = np.random.default_rng(seed)
    k = 200
    centres = rng.uniform(0, 100, size=(k, 2))
    weights = rng.dirichlet(np.full(k, 0.5))
    labels = rng.choice(k, size=n, p=weights)
    radius = np.sqrt(weights[labels] * n) * 0.01 + 0.3
    angle = rng.uniform(0, 2 * np.pi, n)
    r = radius * np.sqrt(rng.uniform(0, 1, n))
    xy = centres[labels] + np.stack([r * np.cos(angle), r * np.sin(angle)], axis=1)
    background = rng.random(n) < 0.05
    xy[background] = rng.uniform(0, 100, size=(int(background.sum()), 2))
    return xy


def neighbour_recall(found: np.ndarray, truth: np.ndarray) -> float:
    """Mean share of each row of ``truth`` (the exact neighbours) that the same row of
    ``found`` (an index's answer, as many columns) holds."""
    k = truth.shape[1]
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(found, truth, strict=True)]))


def heldout_set(name: str, seed: int, rebuild: bool = False) -> tuple[Path, float | None]:
    """A labelled set of ``tests/heldout`` built into ``CACHE/heldout/NAME-SEED`` once (its
    sources fetched beforehand), and the seconds building took (None: from the cache). The
    one cache every benchmark shares: a ``build.json`` stamp holds the recipe's version, so
    a changed recipe builds again."""
    import shutil

    from tests.heldout import SETS, VERSIONS

    folder = CACHE / "heldout" / f"{name}-{seed}"
    stamp = folder / "build.json"
    if not rebuild and (folder / "labels.csv").exists() and stamp.exists():
        if json.loads(stamp.read_text()).get("version") == VERSIONS[name]:
            return folder, None
    shutil.rmtree(folder, ignore_errors=True)
    start = time.perf_counter()
    SETS[name](folder, seed)
    seconds = time.perf_counter() - start
    stamp.write_text(json.dumps({"version": VERSIONS[name], "seconds": seconds}))
    return folder, seconds


@contextmanager
def timed():
    """Yields a dict whose 'seconds' is filled in on exit."""
    out: dict[str, float] = {}
    start = time.perf_counter()
    yield out
    out["seconds"] = time.perf_counter() - start


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MB (Linux reports kB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_result(name: str, data: dict) -> Path:
    """Write ``benchmarks/results/<name>`` with the commit and machine it was measured on
    (a figure without them cannot be compared with a later one)."""
    path = RESULTS / name
    RESULTS.mkdir(parents=True, exist_ok=True)
    record = {"measured": measurement_context(), **data}
    path.write_text(json.dumps(record, indent=2, default=str))
    return path


def measurement_context() -> dict:
    """Commit (and whether the tree had uncommitted changes), machine and time."""
    repo = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True)
        return done.stdout.strip()

    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "commit": git("rev-parse", "HEAD"),
        "dirty": bool(git("status", "--porcelain", "--untracked-files=no")),
        "when": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpu": cpu,
            "cores": os.cpu_count(),
            "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9, 1),
            "python": platform.python_version(),
        },
    }
