"""A static file server for a workspace's site (the site itself needs no server logic)."""

from __future__ import annotations

import functools
import logging
import webbrowser
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click

log = logging.getLogger(__name__)


class QuietHandler(SimpleHTTPRequestHandler):
    """Serves files without logging every request to stderr."""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (stdlib's name)
        log.debug("%s - %s", self.address_string(), format % args)


def make_server(site: Path, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    handler = functools.partial(QuietHandler, directory=str(site))
    return ThreadingHTTPServer((host, port), handler)


def serve_site(
    site: Path, host: str = "127.0.0.1", port: int = 8000, open_browser: bool = False
) -> None:
    server = make_server(site, host, port)
    url = f"http://{host}:{server.server_address[1]}/"
    click.echo(f"serving {site} at {url}  (Ctrl-C to stop)")
    if open_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        click.echo("stopped")
    finally:
        server.server_close()
