"""Planted tropes whose motif is an ImageNet concept get that concept in their name."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from postermap.cli import main
from tests.tropes import group_of, make_trope_set

pytestmark = pytest.mark.integration

#: Noto emoji file -> the ImageNet concept its trope's name must contain. Emoji are
#: cartoons: these are ones the network recognises on their own (umbrella 0.91,
#: basketball 0.96, soccer ball 0.76; the lion emoji reads as a safety pin, and the
#: penguin, 0.37 alone, is lost on a busy poster), so the test is about naming, not
#: recognition.
MOTIFS = {"2602-fe0f.png": "umbrella", "1f3c0.png": "basketball", "26bd.png": "soccer ball"}


@pytest.fixture(scope="module")
def named_run(emoji_images: Path, tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("names")
    source = make_trope_set(
        emoji_images,
        base / "images",
        palettes=2,
        per_group=15,
        others=60,
        seed=5,
        motifs=list(MOTIFS),
    )
    # neutral titles: the file names ("trope-0-003") would name the clusters themselves
    with open(source / "metadata.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["filename", "title"])
        for i, path in enumerate(sorted(source.glob("*.png"))):
            writer.writerow([path.name, f"Poster {i}"])
    ws = base / "ws"
    result = CliRunner().invoke(
        main, ["run", str(source), "-o", str(ws), "--until", "cluster"], catch_exceptions=False
    )
    assert result.exit_code == 0, result.output
    return ws


def test_trope_names_carry_their_concept(named_run: Path):
    catalog = [r for r in pq.read_table(named_run / "catalog.parquet").to_pylist()]
    clusters = {c["id"]: c for c in json.loads((named_run / "clusters.json").read_text())}
    for t, concept in enumerate(MOTIFS.values()):
        members = [r for r in catalog if group_of(r["path"]) == f"trope-{t}"]
        found = Counter(r["cluster"] for r in members if r["cluster"] is not None)
        found.pop(-1, None)
        assert found, f"trope {t} ({concept}) is in no cluster"
        best, n = found.most_common(1)[0]
        assert n >= 0.6 * len(members), (concept, n, len(members))
        info = clusters[best]
        assert concept in info["name"], (concept, info["name"], info["provenance"])
        assert info["provenance"] == "ImageNet classes"


def test_no_class_names_every_cluster(named_run: Path):
    """A class that every poster scores high on (the backgrounds are all gradients with
    noise) is in no more than a third of the names."""
    clusters = json.loads((named_run / "clusters.json").read_text())
    counts = Counter(w for c in clusters for w in c["imagenet"])
    assert clusters and counts.most_common(1)[0][1] <= max(1, len(clusters) // 3), counts
