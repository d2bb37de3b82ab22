"""A real run of the whole pipeline on ~300 default images, shared by the integration tests."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from postermap.cli import main
from tests.conftest import emoji_subset

PER_CATEGORY = 33


@pytest.fixture(scope="session")
def emoji_run(emoji_images: Path, tmp_path_factory) -> dict:
    """Run `postermap run` on a stratified sample with planted exact duplicates."""
    base = tmp_path_factory.mktemp("emoji")
    source = emoji_subset(emoji_images, base / "images", PER_CATEGORY)
    originals = sorted(p for p in source.glob("*.png"))
    byte_copy = source / "zz-copy-of-first.png"
    shutil.copy(originals[0], byte_copy)
    pixel_copy = source / "zz-same-pixels.webp"
    Image.open(originals[1]).save(pixel_copy, lossless=True)
    workspace = base / "ws"
    args = ["run", str(source), "-o", str(workspace), "--cell-size", "32", "--seed", "3"]
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return {
        "source": source,
        "workspace": workspace,
        "args": args,
        "output": result.output,
        "planted": {byte_copy.name: originals[0].name, pixel_copy.name: originals[1].name},
    }
