"""The downloader against a local fault-injecting HTTP server on 127.0.0.1."""

from __future__ import annotations

import io
import json
import time

import pytest
from PIL import Image

from postermap.download import Downloader, DownloadOptions, check_url, parse_retry_after
from tests.conftest import draw_image
from tests.httpserver import FaultServer


def _jpeg(seed: int, tmp_path) -> bytes:
    path = draw_image(tmp_path / f"{seed}.jpg", seed=seed, size=(120, 180), fmt="JPEG")
    return path.read_bytes()


@pytest.fixture
def server(tmp_path):
    images = {f"p{i}.jpg": _jpeg(i, tmp_path) for i in range(12)}
    with FaultServer(images) as srv:
        yield srv


FAST = DownloadOptions(
    concurrency=8,
    per_host=8,
    retries=2,
    backoff=0.05,
    max_backoff=2.0,
    connect_timeout=2.0,
    read_timeout=1.0,
    max_bytes=1_000_000,
)


def test_every_url_gets_a_final_status(server, tmp_path):
    cases = {
        "/img/p0.jpg": ("ok", None),
        "/404/p1.jpg": ("failed", "http_404"),
        "/flaky/p2.jpg": ("ok", None),
        "/ratelimit/p3.jpg": ("ok", None),
        "/slow/p4.jpg?s=3": ("failed", "timeout"),
        "/truncated/p5.jpg": ("failed", "truncated"),
        "/cut/p6.jpg": ("failed", "truncated"),
        "/html/p7.jpg": ("failed", "not_an_image"),
        "/empty/p8.jpg": ("failed", "empty"),
        "/redirect/p9.jpg": ("ok", None),
        "/loop/p10.jpg": ("failed", "redirect_loop"),
        "/big/p11.jpg": ("failed", "too_large"),
        "/bigstream/p11.jpg": ("failed", "too_large"),
    }
    urls = [server.url + path for path in cases] + [
        "file:///etc/passwd",
        "ftp://x/y.jpg",
        "not a url",
    ]
    results = Downloader(tmp_path / "dl", FAST).run(urls)
    for path, (status, error) in cases.items():
        result = results[server.url + path]
        assert (result.status, result.error) == (status, error), (path, result)
    assert results["file:///etc/passwd"].error == "bad_scheme"
    assert results["ftp://x/y.jpg"].error == "bad_scheme"
    assert results["not a url"].error in {"bad_scheme", "bad_url"}
    # retries happened where they should, and only there
    assert server.hits["/flaky/p2.jpg"] == 2
    assert server.hits["/ratelimit/p3.jpg"] == 2
    assert server.hits["/404/p1.jpg"] == 1
    assert server.hits["/slow/p4.jpg"] == 3  # first try + 2 retries
    assert results[server.url + "/flaky/p2.jpg"].attempts == 2


def test_retry_after_is_honoured(server, tmp_path):
    started = time.monotonic()
    results = Downloader(tmp_path / "dl", FAST).run([server.url + "/ratelimit/p0.jpg"])
    assert results[server.url + "/ratelimit/p0.jpg"].status == "ok"
    assert time.monotonic() - started >= 0.9  # the server asked for 1 s


def test_images_are_stored_once_by_content_and_never_partial(server, tmp_path):
    store = tmp_path / "dl"
    urls = [
        server.url + "/img/p0.jpg",
        server.url + "/redirect/p0.jpg",
        server.url + "/truncated/p1.jpg",
        server.url + "/cut/p2.jpg",
    ]
    results = Downloader(store, FAST).run(urls)
    files = sorted(p for p in store.rglob("*") if p.is_file() and p.name != "journal.jsonl")
    assert len(files) == 1  # p0 twice -> one file; the broken ones -> none
    assert results[urls[0]].file == results[urls[1]].file
    with Image.open(io.BytesIO(files[0].read_bytes())) as image:
        image.load()
    assert not list(store.rglob(".tmp-*"))


def test_rerun_does_not_refetch_finished_urls(server, tmp_path):
    store = tmp_path / "dl"
    urls = [server.url + f"/img/p{i}.jpg" for i in range(6)] + [server.url + "/404/p7.jpg"]
    Downloader(store, FAST).run(urls)
    hits = dict(server.hits)
    # a torn last journal line (as after kill -9 mid-write) is ignored: that URL is refetched
    journal = store / "journal.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(lines[:-1]) + "\n" + lines[-1][: len(lines[-1]) // 2])
    torn = json.loads(lines[-1])["url"]
    results = Downloader(store, FAST).run(urls)
    refetched = {p for p, n in server.hits.items() if n != hits.get(p)}
    assert refetched == {torn.removeprefix(server.url)}
    assert {r.status for u, r in results.items() if "/img/" in u} == {"ok"}


def test_per_host_limit_bounds_parallel_requests(server, tmp_path):
    opts = DownloadOptions(concurrency=8, per_host=2, read_timeout=5.0)
    urls = [server.url + f"/slow/p{i}.jpg?s=0.3" for i in range(8)]
    results = Downloader(tmp_path / "dl", opts).run(urls)
    assert all(r.status == "ok" for r in results.values())
    assert server.max_in_flight == 2


def test_check_url_and_retry_after_parsing():
    assert check_url("https://example.org/a.jpg") is None
    assert check_url("file:///etc/passwd")[0] == "bad_scheme"
    assert check_url("http:///nohost")[0] == "bad_url"
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert parse_retry_after("soon") is None


def test_todays_web_formats_are_stored_under_their_own_suffix(tmp_path):
    from postermap.images import IMAGE_EXTENSIONS

    picture = Image.new("RGB", (40, 60), (200, 40, 90))
    bodies = {}
    for fmt, suffix in (("AVIF", ".avif"), ("WEBP", ".webp"), ("ICO", ".ico"), ("PPM", ".ppm")):
        if suffix not in IMAGE_EXTENSIONS:
            continue
        buffer = io.BytesIO()
        picture.save(buffer, fmt)
        bodies[f"x{suffix}.bin"] = buffer.getvalue()  # the URL's name says nothing
    with FaultServer(bodies) as srv:
        results = Downloader(tmp_path / "store", FAST).run(
            [f"{srv.url}/img/{name}" for name in bodies]
        )
    for url, result in results.items():
        assert result.status == "ok", (url, result)
        expected = "." + url.rsplit("/", 1)[1].split(".")[1]
        assert result.file.endswith(expected), (url, result.file)
