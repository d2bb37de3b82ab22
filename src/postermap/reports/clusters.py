"""``postermap clusters --gallery``: a contact sheet per cluster and an HTML index."""

from __future__ import annotations

import html
from pathlib import Path

from postermap.reports.sheets import DARK, contact_sheet
from postermap.workspace import Workspace, atomic_write_bytes, atomic_write_text

THUMB = 112
PER_ROW = 12
MAX_MEMBERS = 96


def write_gallery(ws: Workspace) -> Path:
    """``report/clusters/index.html`` and one ``NNN.png`` per cluster, ranked."""
    out = ws.report_dir / "clusters"
    clusters = ws.read_clusters()
    table = ws.read_table("cluster", ["id", "cluster"]).to_pydict()
    ingest = ws.read_table("ingest", ["id", "content_hash"]).to_pydict()
    hash_of = dict(zip(ingest["id"], ingest["content_hash"], strict=True))
    order = {image_id: i for i, image_id in enumerate(ws.read_layout().ids.tolist())}
    members: dict[int, list[str]] = {}
    for image_id, label in zip(table["id"], table["cluster"], strict=True):
        members.setdefault(label, []).append(image_id)
    sections = []
    for rank, info in enumerate(clusters, start=1):
        chosen = sorted(members.get(info["id"], []), key=order.__getitem__)[:MAX_MEMBERS]
        name = f"{rank:03d}.png"
        sheet = contact_sheet(
            [ws.thumb_path(hash_of[i]) for i in chosen],
            thumb=THUMB,
            per_row=PER_ROW,
            background=DARK,
        )
        atomic_write_bytes(out / name, sheet)
        sections.append(
            f"<section><h2>{rank}. {html.escape(info['name'])} "
            f"<small>({info['size']} images, score {info['score']:.2f}, cluster "
            f"{info['id']}, named from {html.escape(info['provenance'])})</small></h2>"
            f"<p>CNN cohesion {info['cnn_cohesion']:.2f}, colour cohesion "
            f"{info['colour_cohesion']:.2f}; ImageNet: "
            f"{html.escape(', '.join(info['imagenet']))}</p><img src='{name}' alt=''></section>"
        )
    page = (
        "<!doctype html><meta charset='utf-8'><title>postermap clusters</title>"
        "<style>body{font:14px system-ui;margin:20px}img{max-width:100%}"
        "small{color:#666}</style><h1>Clusters, most interesting first</h1>"
        "<p>Rename, drop or merge clusters in <code>clusters.toml</code>.</p>" + "".join(sections)
    )
    atomic_write_text(out / "index.html", page)
    return out / "index.html"


def cluster_table_rows(ws: Workspace) -> list[tuple[int, str, int, float, str]]:
    """(rank, name, size, score, provenance) for the CLI table."""
    return [
        (rank, c["name"], c["size"], c["score"], c["provenance"])
        for rank, c in enumerate(ws.read_clusters(), start=1)
    ]
