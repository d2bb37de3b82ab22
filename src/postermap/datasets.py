"""The embedded default collection: Google's Noto emoji PNGs from npm ``emoji-datasource-google``.

A real image set (3,786 PNGs at 64 px, Apache-2.0) that any machine with the npm registry can
fetch. :func:`fetch_emoji` unpacks the images into ``DEST/images`` and writes
``DEST/images/metadata.csv`` with each image's name (title), category and subcategory, so the
map can be checked against human labels. Skin-tone variants are included: real near
duplicates of their base emoji.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import shutil
import subprocess
import tarfile
from pathlib import Path

from postermap.errors import DatasetError
from postermap.workspace import atomic_path

log = logging.getLogger(__name__)

EMOJI_PACKAGE = "emoji-datasource-google"
EMOJI_VERSION = "16.0.0"
SKIN_TONES = {
    "1F3FB": "light skin tone",
    "1F3FC": "medium-light skin tone",
    "1F3FD": "medium skin tone",
    "1F3FE": "medium-dark skin tone",
    "1F3FF": "dark skin tone",
}


def fetch_emoji(dest: Path, cache_dir: Path | None = None) -> Path:
    """Fetch (once) and unpack the emoji set; returns the images folder.

    Uses ``npm pack`` so the download goes through the npm registry client and its
    configuration; the tarball is cached in ``cache_dir``.
    """
    images = dest / "images"
    if (images / "metadata.csv").exists():
        log.info("default set already in %s", images)
        return images
    tarball = _npm_pack(cache_dir or Path.home() / ".cache" / "postermap")
    tmp = dest / ".tmp-images"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    rows = []
    with tarfile.open(tarball) as tar:
        emoji = json.load(tar.extractfile("package/emoji.json"))
        for entry in emoji:
            for image, title in _variants(entry):
                member = tar.extractfile(f"package/img/google/64/{image}")
                if member is None:
                    raise DatasetError(f"{tarball}: missing image {image}")
                (tmp / image).write_bytes(member.read())
                rows.append(
                    {
                        "filename": image,
                        "title": title,
                        "category": entry["category"],
                        "subcategory": entry["subcategory"],
                        "short_name": entry["short_name"],
                    }
                )
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    (tmp / "metadata.csv").write_text(buffer.getvalue(), encoding="utf-8")
    if images.exists():
        shutil.rmtree(images)
    tmp.rename(images)
    log.info("default set: %d emoji images in %s", len(rows), images)
    return images


def _variants(entry: dict) -> list[tuple[str, str]]:
    name = entry["name"].title() if entry.get("name") else entry["short_name"]
    out = [(entry["image"], name)]
    for tones, variant in (entry.get("skin_variations") or {}).items():
        words = ", ".join(SKIN_TONES.get(t, t) for t in tones.split("-"))
        out.append((variant["image"], f"{name} ({words})"))
    return out


def _npm_pack(cache_dir: Path) -> Path:
    cache_dir.mkdir(parents=True, exist_ok=True)
    tarball = cache_dir / f"{EMOJI_PACKAGE}-{EMOJI_VERSION}.tgz"
    if tarball.exists():
        return tarball
    if shutil.which("npm") is None:
        raise DatasetError(
            "npm is not installed; it is needed once to fetch the default "
            "image set (apt-get install npm)"
        )
    with atomic_path(tarball) as tmp:
        work = tmp.parent / f".tmp-npm-{EMOJI_VERSION}"
        work.mkdir(exist_ok=True)
        try:
            result = subprocess.run(
                [
                    "npm",
                    "pack",
                    "--silent",
                    f"{EMOJI_PACKAGE}@{EMOJI_VERSION}",
                    "--pack-destination",
                    str(work),
                ],
                capture_output=True,
                text=True,
                check=False,
                timeout=600,
            )
            if result.returncode != 0:
                raise DatasetError(
                    f"npm pack {EMOJI_PACKAGE}@{EMOJI_VERSION} failed: "
                    f"{result.stderr.strip() or result.stdout.strip()}"
                )
            (work / tarball.name).replace(tmp)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return tarball
