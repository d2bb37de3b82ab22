"""Where the held-out sets' pictures and fonts come from, and how they get onto a machine.

Everything is installed from code (CI starts on a clean machine that reaches only PyPI,
npm and Debian), through each registry's ordinary client, and only when missing:

======================  ========  ==================================  =====================
source                  registry  package                             licence
======================  ========  ==================================  =====================
``openclipart``         Debian    ``openclipart-png``                 public domain
                                                                      (Open Clip Art
                                                                      dedication)
``oxygen``              Debian    ``oxygen-icon-theme``               LGPL-3+
``gnome-backgrounds``   Debian    ``gnome-backgrounds``               CC BY-SA 3.0 (the
                                                                      WebP wallpapers used)
``dejavu``              Debian    ``fonts-dejavu-core``               Bitstream Vera
                                                                      licence (free)
``liberation``          Debian    ``fonts-liberation2``               SIL OFL 1.1
``openmoji``            npm       ``openmoji@17.0.0`` (SVGs)          CC BY-SA 4.0
``skimage-photos``      PyPI      ``scikit-image==0.26.0`` (wheel,    CC0 / public domain
                                  only its bundled sample photos;     (the photos picked)
                                  nothing is installed into the
                                  environment)
======================  ========  ==================================  =====================

Downloaded archives and what is extracted from them live in ``cache_dir()``
(``$POSTERMAP_HELDOUT_CACHE``, else ``~/.cache/postermap/heldout``). Debian packages need
root (``apt-get``); a missing source raises :class:`SourceUnavailable` saying what to run.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

OPENMOJI_VERSION = "17.0.0"
SKIMAGE_VERSION = "0.26.0"
#: scikit-image sample photos whose docstrings say CC0 or public domain
SKIMAGE_PHOTOS = (
    "astronaut.png",
    "brick.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "grass.png",
    "gravel.png",
    "hubble_deep_field.jpg",
    "retina.jpg",
    "rocket.jpg",
)


class SourceUnavailable(RuntimeError):
    """A source a held-out set needs is missing and could not be installed here."""


@dataclass(frozen=True)
class DebianSource:
    """A Debian package, present when ``marker`` exists."""

    name: str
    package: str
    marker: Path
    licence: str

    @property
    def path(self) -> Path:
        return self.marker


DEBIAN = {
    s.name: s
    for s in (
        DebianSource(
            "openclipart", "openclipart-png", Path("/usr/share/openclipart/png"), "public domain"
        ),
        DebianSource(
            "oxygen", "oxygen-icon-theme", Path("/usr/share/icons/oxygen/base"), "LGPL-3+"
        ),
        DebianSource(
            "gnome-backgrounds",
            "gnome-backgrounds",
            Path("/usr/share/backgrounds/gnome"),
            "CC BY-SA 3.0",
        ),
        DebianSource(
            "dejavu",
            "fonts-dejavu-core",
            Path("/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf"),
            "Bitstream Vera licence",
        ),
        DebianSource(
            "liberation",
            "fonts-liberation2",
            Path("/usr/share/fonts/truetype/liberation2/LiberationSans-Bold.ttf"),
            "SIL OFL 1.1",
        ),
    )
}
OTHER = ("openmoji", "skimage-photos")
ALL_SOURCES = (*DEBIAN, *OTHER)


def cache_dir() -> Path:
    return Path(
        os.environ.get("POSTERMAP_HELDOUT_CACHE", Path.home() / ".cache" / "postermap" / "heldout")
    )


def openmoji_dir() -> Path:
    """Extracted ``openmoji`` package: ``color/svg/*.svg`` and ``data/openmoji.json``."""
    return cache_dir() / f"openmoji-{OPENMOJI_VERSION}"


def skimage_photo_dir() -> Path:
    return cache_dir() / f"skimage-photos-{SKIMAGE_VERSION}"


def source_path(name: str) -> Path:
    """Where source ``name`` lives once fetched (it may not exist yet)."""
    if name in DEBIAN:
        return DEBIAN[name].path
    if name == "openmoji":
        return openmoji_dir()
    if name == "skimage-photos":
        return skimage_photo_dir()
    raise KeyError(f"unknown source {name!r}; known: {', '.join(ALL_SOURCES)}")


def is_available(name: str) -> bool:
    if name in DEBIAN:
        return DEBIAN[name].marker.exists()
    return (source_path(name) / ".complete").exists()


def missing(names: Iterable[str]) -> list[str]:
    return [n for n in names if not is_available(n)]


def require(names: Iterable[str]) -> None:
    """Raise :class:`SourceUnavailable` naming the fetch command if any source is missing."""
    gone = missing(names)
    if gone:
        raise SourceUnavailable(
            f"held-out sources not installed: {', '.join(gone)}; "
            "run `python -m tests.heldout fetch` (Debian packages need root)"
        )


def fetch(names: Iterable[str]) -> dict[str, Path]:
    """Install or download every source in ``names`` that is missing; path per source.

    Idempotent: a source already present is not touched. Raises :class:`SourceUnavailable`
    with the client's own message when something cannot be had.
    """
    names = list(dict.fromkeys(names))
    debian = [DEBIAN[n] for n in names if n in DEBIAN and not is_available(n)]
    if debian:
        _apt_install([s.package for s in debian])
    if "openmoji" in names and not is_available("openmoji"):
        _fetch_openmoji()
    if "skimage-photos" in names and not is_available("skimage-photos"):
        _fetch_skimage_photos()
    require(names)
    return {n: source_path(n) for n in names}


def _run(command: list[str], what: str, timeout: int = 1200) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, check=False, timeout=timeout
        )
    except FileNotFoundError as err:
        raise SourceUnavailable(f"{what}: {command[0]} is not installed") from err
    except subprocess.TimeoutExpired as err:
        raise SourceUnavailable(f"{what}: no answer within {timeout} s") from err
    return result


def _apt_install(packages: list[str]) -> None:
    """``apt-get install`` (refreshing the package lists once if the first try fails:
    a fresh machine may have none)."""
    if shutil.which("apt-get") is None:
        raise SourceUnavailable(f"apt-get not found; install Debian packages {packages} by hand")
    if os.geteuid() != 0:
        raise SourceUnavailable(
            f"Debian packages {' '.join(packages)} are missing and installing them needs "
            f"root: sudo apt-get install -y {' '.join(packages)}"
        )
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    command = ["apt-get", "install", "-y", "--no-install-recommends", *packages]
    log.info("installing Debian packages: %s", " ".join(packages))
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        log.info("apt-get install failed; refreshing package lists and retrying")
        update = subprocess.run(
            ["apt-get", "update"], capture_output=True, text=True, env=env, check=False
        )
        if update.returncode != 0:
            raise SourceUnavailable(f"apt-get update failed: {update.stderr.strip()[-400:]}")
        result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        raise SourceUnavailable(
            f"apt-get install {' '.join(packages)} failed: {result.stderr.strip()[-400:]}"
        )


def _fetch_openmoji() -> None:
    """``npm pack openmoji`` and keep its colour SVGs, metadata and licence."""
    if shutil.which("npm") is None:
        raise SourceUnavailable("npm is not installed (apt-get install npm); needed for openmoji")
    dest = openmoji_dir()
    work = cache_dir() / ".tmp-openmoji"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        spec = f"openmoji@{OPENMOJI_VERSION}"
        result = _run(
            ["npm", "pack", "--silent", spec, "--pack-destination", str(work)], f"npm pack {spec}"
        )
        tarballs = list(work.glob("openmoji-*.tgz"))
        if result.returncode != 0 or not tarballs:
            raise SourceUnavailable(
                f"npm pack {spec} failed: {result.stderr.strip() or result.stdout.strip()}"
            )
        out = work / "out"
        with tarfile.open(tarballs[0]) as tar:
            for member in tar.getmembers():
                name = member.name.removeprefix("package/")
                keep = (name.startswith("color/svg/") and name.endswith(".svg")) or name in (
                    "data/openmoji.json",
                    "LICENSE.txt",
                )
                if keep and member.isfile():
                    target = out / name
                    target.parent.mkdir(parents=True, exist_ok=True)
                    target.write_bytes(tar.extractfile(member).read())
        if not (out / "data" / "openmoji.json").exists():
            raise SourceUnavailable(f"{tarballs[0].name}: no data/openmoji.json inside")
        (out / ".complete").write_text(spec + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        out.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _fetch_skimage_photos() -> None:
    """Download the scikit-image wheel (not installed) and extract its CC0/PD photos."""
    dest = skimage_photo_dir()
    work = cache_dir() / ".tmp-skimage"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        spec = f"scikit-image=={SKIMAGE_VERSION}"
        result = _run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--quiet",
                "--no-deps",
                "--only-binary=:all:",
                "-d",
                str(work),
                spec,
            ],
            f"pip download {spec}",
        )
        wheels = list(work.glob("scikit_image-*.whl"))
        if result.returncode != 0 or not wheels:
            raise SourceUnavailable(f"pip download {spec} failed: {result.stderr.strip()[-400:]}")
        out = work / "out"
        out.mkdir()
        with zipfile.ZipFile(wheels[0]) as wheel:
            for name in SKIMAGE_PHOTOS:
                (out / name).write_bytes(wheel.read(f"skimage/data/{name}"))
        (out / ".complete").write_text(spec + "\n")
        shutil.rmtree(dest, ignore_errors=True)
        out.rename(dest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
