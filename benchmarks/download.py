"""Downloader throughput against a local static server, and its overhead over a bare loop.

    python -m benchmarks.download [--n 600]

Serves real images (the default emoji set, re-encoded as ~20 KB JPEGs, poster-sized) from
`python -m http.server` in a separate process on 127.0.0.1, then fetches them all with
postermap's Downloader at concurrency 1, 16 and 64, and with a bare httpx loop (same
concurrency, no validation, no storage, no journal) in the same run. Prints images/s and
the ratio ours/bare. Writes benchmarks/results/download.json.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from PIL import Image

from benchmarks.common import RESULTS, write_result
from postermap.download import Downloader, DownloadOptions

REPO = Path(__file__).resolve().parents[1]


def make_images(dest: Path, n: int) -> list[str]:
    from postermap.datasets import fetch_emoji

    emoji = sorted(fetch_emoji(REPO / "data" / "emoji").glob("*.png"))
    names = []
    for i in range(n):
        image = Image.open(emoji[i % len(emoji)]).convert("RGBA")
        canvas = Image.new("RGB", (200, 300), (i * 37 % 255, 90, 160))
        canvas.paste(image.resize((180, 180)), (10, 60), image.resize((180, 180)))
        name = f"p{i:05d}.jpg"
        canvas.save(dest / name, quality=85)
        names.append(name)
    return names


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def bare_loop(urls: list[str], concurrency: int) -> int:
    """The least a downloader must do: GET every URL, read the body."""
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:

        async def one(url: str) -> int:
            async with gate:
                response = await client.get(url)
                return len(response.content)

        sizes = await asyncio.gather(*(one(u) for u in urls))
    return sum(1 for s in sizes if s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=600, help="images to serve")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pm-download-"))
    served = work / "served"
    served.mkdir()
    names = make_images(served, args.n)
    port = free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "http.server",
            str(port),
            "--bind",
            "127.0.0.1",
            "--directory",
            str(served),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                httpx.get(f"http://127.0.0.1:{port}/{names[0]}")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        urls = [f"http://127.0.0.1:{port}/{name}" for name in names]
        results = []
        for concurrency in (1, 16, 64):
            start = time.perf_counter()
            fetched = asyncio.run(bare_loop(urls, concurrency))
            bare_rate = fetched / (time.perf_counter() - start)
            store = work / f"store-{concurrency}"
            opts = DownloadOptions(concurrency=concurrency, per_host=concurrency)
            start = time.perf_counter()
            done = Downloader(store, opts).run(urls)
            ours_rate = sum(r.status == "ok" for r in done.values()) / (time.perf_counter() - start)
            row = {
                "concurrency": concurrency,
                "bare_images_per_s": bare_rate,
                "ours_images_per_s": ours_rate,
                "ours_vs_bare": ours_rate / bare_rate,
            }
            results.append(row)
            print(
                f"concurrency: {concurrency} bare_images_per_s: {bare_rate:.1f} "
                f"ours_images_per_s: {ours_rate:.1f} ours_vs_bare: {ours_rate / bare_rate:.2f}",
                flush=True,
            )
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    write_result("download.json", results)


if __name__ == "__main__":
    main()
