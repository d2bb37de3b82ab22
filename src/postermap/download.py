"""Concurrent, polite, resumable image downloads (httpx + asyncio).

* Politeness: at most ``concurrency`` requests in flight overall and ``per_host`` per host;
  a User-Agent that names the tool; ``Retry-After`` honoured on 429/503.
* Robustness: connect/read timeouts; retries with exponential backoff and full jitter on
  timeouts, dropped connections, 408/429/5xx; redirects followed up to a cap; bodies
  streamed and cut off past ``max_bytes``; only http/https.
* Validation: a body must be an image (magic bytes) and complete (end marker), so an HTML
  error page served with status 200 or a cut-off transfer never enters the store.
* Storage: each distinct body once, under ``downloads/<hash[:2]>/<hash>.<ext>``, written
  atomically.
* Resume: every finished URL (stored, or failed for good) is appended to
  ``downloads/journal.jsonl`` after its file is in place. A re-run (after Ctrl-C or
  kill -9) skips those URLs; a torn last line is ignored and that URL fetched again.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from postermap.images import content_hash, sniff_image
from postermap.workspace import atomic_write_bytes, write_errors

log = logging.getLogger(__name__)

TRANSIENT_ERRORS = frozenset(
    {
        "timeout",
        "connection_error",
        "truncated",
        "http_408",
        "http_429",
        "http_500",
        "http_502",
        "http_503",
        "http_504",
    }
)
#: file name suffix of a stored download, by the format :func:`sniff_image` names
FORMAT_SUFFIX = {
    "jpeg": ".jpg",
    "mpo": ".jpg",
    "png": ".png",
    "gif": ".gif",
    "webp": ".webp",
    "bmp": ".bmp",
    "tiff": ".tif",
    "ppm": ".ppm",
    "ico": ".ico",
    "avif": ".avif",
    "heif": ".heic",
    "svg": ".svg",
}


@dataclass(frozen=True)
class DownloadOptions:
    """How to fetch. None of these change what a successful download contains."""

    concurrency: int = 32
    per_host: int = 8
    retries: int = 3  #: attempts after the first, for transient failures only
    backoff: float = 0.5  #: base of the exponential backoff, seconds
    max_backoff: float = 30.0  #: cap on any single wait, Retry-After included
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    max_bytes: int = 50_000_000
    max_redirects: int = 5
    retry_failed: bool = False  #: on a re-run, try transient failures again
    user_agent: str = f"postermap/{version('postermap')} (image map builder)"


@dataclass
class DownloadResult:
    """The outcome for one URL; ``error`` is a short code (``http_404``, ``timeout``, ...)."""

    url: str
    status: str  # "ok" or "failed"
    error: str | None = None
    detail: str | None = None
    file: str | None = None  #: stored file, relative to the downloads folder
    content_hash: str | None = None
    http_status: int | None = None
    attempts: int = 0
    bytes: int = 0
    retry_after: str | None = None  #: the server's Retry-After header, if any


class Downloader:
    """Fetches URLs into ``store`` with a journal; see the module docstring."""

    def __init__(self, store: Path, options: DownloadOptions | None = None) -> None:
        self.store = store
        self.options = options or DownloadOptions()
        self.journal_path = store / "journal.jsonl"

    def finished(self) -> dict[str, DownloadResult]:
        """URLs already done according to the journal (and whose file still exists)."""
        done: dict[str, DownloadResult] = {}
        if not self.journal_path.exists():
            return done
        with open(self.journal_path, encoding="utf-8") as fh:
            for number, line in enumerate(fh, start=1):
                try:
                    result = DownloadResult(**json.loads(line))
                except (json.JSONDecodeError, TypeError):
                    log.warning(
                        "%s line %d is incomplete (killed mid-write?); that URL will "
                        "be fetched again",
                        self.journal_path,
                        number,
                    )
                    continue
                if result.status == "ok" and not (self.store / (result.file or "")).is_file():
                    continue
                if (
                    result.status == "failed"
                    and self.options.retry_failed
                    and result.error in TRANSIENT_ERRORS
                ):
                    continue
                done[result.url] = result
        return done

    def run(
        self, urls: Iterable[str], on_result: Callable[[DownloadResult], None] | None = None
    ) -> dict[str, DownloadResult]:
        """Fetch every URL not finished yet; returns results for all of them."""
        return asyncio.run(self.run_async(list(dict.fromkeys(urls)), on_result))

    async def run_async(
        self, urls: list[str], on_result: Callable[[DownloadResult], None] | None = None
    ) -> dict[str, DownloadResult]:
        self.store.mkdir(parents=True, exist_ok=True)
        results = self.finished()
        todo = [u for u in urls if u not in results]
        if len(todo) < len(urls):
            log.info(
                "download: %d of %d URLs already done, %d to fetch",
                len(urls) - len(todo),
                len(urls),
                len(todo),
            )
        for url in urls:
            if url in results and on_result is not None:
                on_result(results[url])
        if not todo:
            return results
        opts = self.options
        queue: asyncio.Queue[str] = asyncio.Queue()
        for url in todo:
            queue.put_nowait(url)
        hosts: dict[str, asyncio.Semaphore] = {}
        timeout = httpx.Timeout(opts.read_timeout, connect=opts.connect_timeout)
        limits = httpx.Limits(
            max_connections=opts.concurrency, max_keepalive_connections=opts.concurrency
        )
        with open(self.journal_path, "a", encoding="utf-8") as journal:
            async with httpx.AsyncClient(
                timeout=timeout,
                limits=limits,
                follow_redirects=True,
                max_redirects=opts.max_redirects,
                headers={"User-Agent": opts.user_agent},
            ) as client:

                async def worker() -> None:
                    while True:
                        try:
                            url = queue.get_nowait()
                        except asyncio.QueueEmpty:
                            return
                        host = urlsplit(url).netloc.lower()
                        gate = hosts.setdefault(host, asyncio.Semaphore(opts.per_host))
                        async with gate:
                            result = await self.fetch(client, url)
                        results[url] = result
                        with write_errors(self.journal_path):
                            journal.write(json.dumps(asdict(result)) + "\n")
                            journal.flush()
                        if on_result is not None:
                            on_result(result)

                await asyncio.gather(*(worker() for _ in range(min(opts.concurrency, len(todo)))))
        return results

    async def fetch(self, client: httpx.AsyncClient, url: str) -> DownloadResult:
        """One URL with retries; never raises for a network or content problem."""
        problem = check_url(url)
        if problem is not None:
            return DownloadResult(url, "failed", *problem)
        opts = self.options
        result = DownloadResult(url, "failed")
        for attempt in range(opts.retries + 1):
            result = await self._attempt(client, url)
            result.attempts = attempt + 1
            if result.status == "ok" or result.error not in TRANSIENT_ERRORS:
                return result
            if attempt < opts.retries:
                wait = self._wait(attempt, result)
                log.debug(
                    "download: %s %s, retry %d in %.2fs", url, result.error, attempt + 1, wait
                )
                await asyncio.sleep(wait)
        return result

    async def _attempt(self, client: httpx.AsyncClient, url: str) -> DownloadResult:
        opts = self.options
        try:
            async with client.stream("GET", url) as response:
                if response.status_code != 200:
                    code = response.status_code
                    return DownloadResult(
                        url,
                        "failed",
                        f"http_{code}",
                        f"HTTP {code} {response.reason_phrase}",
                        http_status=code,
                        retry_after=response.headers.get("Retry-After"),
                    )
                declared = response.headers.get("Content-Length")
                if declared and declared.isdigit() and int(declared) > opts.max_bytes:
                    return DownloadResult(
                        url,
                        "failed",
                        "too_large",
                        f"Content-Length {declared} > max_bytes {opts.max_bytes}",
                        http_status=200,
                    )
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) > opts.max_bytes:
                        return DownloadResult(
                            url,
                            "failed",
                            "too_large",
                            f"body exceeds max_bytes {opts.max_bytes}",
                            http_status=200,
                        )
        except httpx.TooManyRedirects as err:
            return DownloadResult(url, "failed", "redirect_loop", str(err))
        except httpx.TimeoutException as err:
            return DownloadResult(url, "failed", "timeout", type(err).__name__)
        except httpx.RemoteProtocolError as err:
            return DownloadResult(url, "failed", "truncated", str(err))
        except httpx.UnsupportedProtocol as err:
            return DownloadResult(url, "failed", "bad_scheme", str(err))
        except httpx.TransportError as err:
            return DownloadResult(url, "failed", "connection_error", f"{type(err).__name__}: {err}")
        data = bytes(body)
        fmt, problem = sniff_image(data)
        if problem is not None:
            kind = response.headers.get("Content-Type", "unknown type")
            return DownloadResult(
                url,
                "failed",
                problem,
                f"{len(data)} bytes of {kind}",
                http_status=200,
                bytes=len(data),
            )
        chash = content_hash(data)
        name = f"{chash[:2]}/{chash}{FORMAT_SUFFIX.get(fmt or '', '.img')}"
        target = self.store / name
        if not target.exists():
            atomic_write_bytes(target, data)
        return DownloadResult(
            url, "ok", file=name, content_hash=chash, http_status=200, bytes=len(data)
        )

    def _wait(self, attempt: int, result: DownloadResult) -> float:
        """Full-jitter exponential backoff, or the server's Retry-After if it gave one."""
        opts = self.options
        retry_after = parse_retry_after(result.retry_after)
        if retry_after is not None:
            return min(retry_after, opts.max_backoff)
        return random.uniform(0, min(opts.max_backoff, opts.backoff * 2**attempt))


def check_url(url: str) -> tuple[str, str] | None:
    """(error, detail) if ``url`` is not an http(s) URL we may fetch, else None."""
    try:
        parts = urlsplit(url)
    except ValueError as err:
        return "bad_url", f"{url!r}: {err}"
    if parts.scheme.lower() not in ("http", "https"):
        scheme = parts.scheme or "no"
        return "bad_scheme", f"only http and https URLs are fetched, not {scheme} scheme"
    if not parts.netloc:
        return "bad_url", f"{url!r} has no host"
    return None


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (now if now is not None else time.time()))


def summarise(results: Iterable[DownloadResult]) -> tuple[Counter, Counter]:
    """Counts by status/error and by host (for the summary table)."""
    by_status: Counter = Counter()
    by_host: Counter = Counter()
    for result in results:
        by_status[result.error or result.status] += 1
        by_host[(urlsplit(result.url).netloc or "(none)", result.status)] += 1
    return by_status, by_host
