"""``postermap clusters --gallery``: a contact sheet per cluster and an HTML index."""

from __future__ import annotations

import html
import io
from pathlib import Path

import numpy as np
from PIL import Image

from postermap.catalog import read_table
from postermap.stages.cluster import load_clusters
from postermap.stages.reduce import load_layout
from postermap.workspace import Workspace, atomic_write_bytes, atomic_write_text

THUMB = 112
PER_ROW = 12
MAX_MEMBERS = 96


def write_gallery(ws: Workspace) -> Path:
    """``report/clusters/index.html`` and one ``NNN.png`` per cluster, ranked."""
    out = ws.root / "report" / "clusters"
    clusters = load_clusters(ws)
    table = read_table(ws, "cluster").to_pydict()
    ingest = {
        r["id"]: r
        for r in read_table(ws, "ingest").select(["id", "content_hash", "title"]).to_pylist()
    }
    ids, _ = load_layout(ws)
    order = {image_id: i for i, image_id in enumerate(ids.tolist())}
    members: dict[int, list[str]] = {}
    for image_id, label in zip(table["id"], table["cluster"], strict=True):
        members.setdefault(label, []).append(image_id)
    sections = []
    for rank, info in enumerate(clusters, start=1):
        chosen = sorted(members.get(info["id"], []), key=order.get)[:MAX_MEMBERS]
        name = f"{rank:03d}.png"
        _sheet(ws, out / name, [ingest[i]["content_hash"] for i in chosen])
        sections.append(
            f"<section><h2>{rank}. {html.escape(info['name'])} "
            f"<small>({info['size']} images, score {info['score']:.2f}, cluster "
            f"{info['id']}, named from {html.escape(info['provenance'])})</small></h2>"
            f"<p>CNN cohesion {info['cnn_cohesion']:.2f}, colour cohesion "
            f"{info['colour_cohesion']:.2f}; ImageNet: {html.escape(', '.join(info['imagenet']))}"
            f"</p><img src='{name}' alt=''></section>"
        )
    page = (
        "<!doctype html><meta charset='utf-8'><title>postermap clusters</title>"
        "<style>body{font:14px system-ui;margin:20px}img{max-width:100%}"
        "small{color:#666}</style><h1>Clusters, most interesting first</h1>"
        "<p>Rename, drop or merge clusters in <code>clusters.toml</code>.</p>" + "".join(sections)
    )
    atomic_write_text(out / "index.html", page)
    return out / "index.html"


def _sheet(ws: Workspace, path: Path, hashes: list[str]) -> None:
    rows = max(1, (len(hashes) + PER_ROW - 1) // PER_ROW)
    sheet = Image.new("RGB", (PER_ROW * THUMB, rows * THUMB), (32, 33, 36))
    for i, chash in enumerate(hashes):
        with Image.open(ws.thumb_path(chash)) as thumb:
            thumb = thumb.convert("RGB")
            thumb.thumbnail((THUMB - 4, THUMB - 4))
            x = (i % PER_ROW) * THUMB + (THUMB - thumb.width) // 2
            y = (i // PER_ROW) * THUMB + (THUMB - thumb.height) // 2
            sheet.paste(thumb, (x, y))
    buffer = io.BytesIO()
    sheet.save(buffer, "PNG")
    atomic_write_bytes(path, buffer.getvalue())


def cluster_table_rows(ws: Workspace) -> list[tuple[int, str, int, float, str]]:
    """(rank, name, size, score, provenance) for the CLI table."""
    return [
        (rank, c["name"], c["size"], c["score"], c["provenance"])
        for rank, c in enumerate(load_clusters(ws), start=1)
    ]


def similar_for_id(ws: Workspace, image_id: str, k: int) -> list[tuple[str, float]]:
    """The k most similar images on the map to an image on the map."""
    from postermap.stages.neighbours import load_neighbours

    ids, _ = load_layout(ws)
    id_list = ids.tolist()
    if image_id not in id_list:
        raise KeyError(image_id)
    neighbours, scores = load_neighbours(ws)
    row = id_list.index(image_id)
    return [
        (id_list[j], float(s))
        for j, s in zip(neighbours[row][:k], scores[row][:k], strict=True)
        if j >= 0
    ]


def similar_for_file(
    ws: Workspace, path: Path, model: str, thumb_size: int, k: int
) -> list[tuple[str, float]]:
    """The k most similar images on the map to any image file, embedded now the way the
    pipeline embeds (through the same JPEG thumbnail), so a copy of an image on the map
    finds it with similarity ~1."""
    from postermap.embedders import get_embedder
    from postermap.images import decode_image, load_image, make_thumbnail
    from postermap.stages.neighbours import query

    embedder = get_embedder(model)
    # decoded as ingest decodes it (large JPEGs at reduced DCT scale), then thumbnailed
    image = load_image(make_thumbnail(decode_image(path, at_least=thumb_size)[0], thumb_size))
    features = embedder.embed(np.stack([embedder.preprocess(image)]))
    labels, scores = query(ws, features, k)
    ids, _ = load_layout(ws)
    id_list = ids.tolist()
    return [(id_list[j], float(s)) for j, s in zip(labels[0], scores[0], strict=True)]
