"""Clean's perceptual-hash candidate pairs: array buckets against the plain Python loops.

    python -m benchmarks.candidates                # 1M hashes, as the 1M scale run has
    python -m benchmarks.candidates --n 169000

The hashes are the scale benchmark's (uniform random 64-bit values, so every 16-bit
quarter bucket holds n / 65,536 images on average) plus one in twenty a near copy of
another (a few bits flipped), and the bit budget is clean's default (16). The baseline is
:func:`bucket_pairs_by_hand`, the loops over buckets into a set of tuples that clean ran
before: the same pairs (checked), timed and traced (``tracemalloc`` peak: NumPy's
buffers are traced too) one after the other in this process. Writes
benchmarks/results/candidates-N.json.
"""

from __future__ import annotations

import argparse
import logging
import time
import tracemalloc

import numpy as np

from benchmarks.common import write_result
from postermap.cleaning import phash_candidates

log = logging.getLogger(__name__)


def bucket_pairs_by_hand(
    hashes: list[str | None], max_bits: int, involving: set[int] | None = None, cap: int = 64
) -> set[tuple[int, int]]:
    """The plain definition: per quarter, every pair of a bucket of at most ``cap``
    members whose hashes differ in at most ``max_bits`` bits."""
    values = [int(h, 16) if h else None for h in hashes]
    pairs: set[tuple[int, int]] = set()
    for quarter in range(4):
        buckets: dict[str, list[int]] = {}
        for i, h in enumerate(hashes):
            if h:
                buckets.setdefault(h[quarter * 4 : (quarter + 1) * 4], []).append(i)
        for members in buckets.values():
            if len(members) > cap:
                continue
            for x, a in enumerate(members):
                for b in members[x + 1 :]:
                    if involving is not None and a not in involving and b not in involving:
                        continue
                    if (values[a] ^ values[b]).bit_count() <= max_bits:
                        pairs.add((a, b))
    return pairs


def make_hashes(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 2**63, n, dtype=np.int64).astype(np.uint64)
    copies = rng.choice(n, n // 20, replace=False)
    flips = np.zeros(len(copies), np.uint64)
    for _ in range(4):
        flips |= np.uint64(1) << rng.integers(0, 64, len(copies)).astype(np.uint64)
    values[copies] = values[rng.integers(0, n, len(copies))] ^ flips
    return [f"{int(v):016x}" for v in values]


def measure(function, *args) -> tuple[object, float, float]:
    """(result, seconds, traced peak MB)."""
    tracemalloc.start()
    start = time.perf_counter()
    result = function(*args)
    seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return result, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--bits", type=int, default=16)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    hashes = make_hashes(args.n)
    arrays, array_s, array_mb = measure(phash_candidates, hashes, args.bits)
    loops, loop_s, loop_mb = measure(bucket_pairs_by_hand, hashes, args.bits)
    same = [tuple(p) for p in arrays.tolist()] == sorted(loops)
    if not same:
        raise SystemExit("the array buckets and the plain loops found different pairs")
    log.info(
        "%d hashes, %d pairs within %d bits: arrays %.1f s, %.0f MB traced; loops %.1f s, "
        "%.0f MB; arrays / loops: time %.3f, memory %.3f",
        args.n,
        len(arrays),
        args.bits,
        array_s,
        array_mb,
        loop_s,
        loop_mb,
        array_s / loop_s,
        array_mb / loop_mb,
    )
    write_result(
        f"candidates-{args.n}.json",
        {
            "n": args.n,
            "bits": args.bits,
            "pairs": len(arrays),
            "arrays": {"seconds": array_s, "peak_mb": array_mb},
            "loops": {"seconds": loop_s, "peak_mb": loop_mb},
            "time_ratio": array_s / loop_s,
            "memory_ratio": array_mb / loop_mb,
        },
    )


if __name__ == "__main__":
    main()
