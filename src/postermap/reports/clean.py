"""``postermap clean --report``: what the clean stage decided, in a form checked in a minute.

Writes ``WORKSPACE/report/clean.csv`` (every row that is not plainly ok: id, path, status,
reason, duplicate_of, similarity) and ``WORKSPACE/report/clean.html`` with counts per
status and reason and contact sheets: each duplicate group as one strip, its
representative first (green frame), and one sheet per boring reason. Ids are printed under
each thumbnail so they can be pasted into ``overrides.toml``.
"""

from __future__ import annotations

import csv
import html
import io
from collections import defaultdict
from pathlib import Path

from postermap.reports.sheets import contact_sheet
from postermap.workspace import Workspace, atomic_write_bytes, atomic_write_text

MAX_GROUPS = 200
MAX_LISTED = 500
MAX_PER_SHEET = 120


def write_clean_report(ws: Workspace) -> Path:
    """Write the CSV, the contact sheets and the HTML page; returns the HTML path."""
    rows = ws.read_table("ingest").to_pylist()
    clean = {r["id"]: r for r in ws.read_table("clean").to_pylist()}
    for row in rows:
        row.update(clean[row["id"]])
    out = ws.report_dir
    flagged = [r for r in rows if r["status"] != "ok" or r["reason"]]
    _write_csv(out / "clean.csv", flagged)
    by_id = {r["id"]: r for r in rows}
    groups: dict[str, list[dict]] = defaultdict(list)
    boring: dict[str, list[dict]] = defaultdict(list)
    for row in flagged:
        if row["duplicate_of"]:
            groups[row["duplicate_of"]].append(row)
        elif row["status"] == "boring":
            boring[row["reason"].split(":")[0]].append(row)
    counts: dict[tuple[str, str], int] = defaultdict(int)
    for row in rows:
        counts[(row["status"], (row["reason"] or "").split(":")[0])] += 1
    sections = []
    for n, (rep_id, members) in enumerate(
        sorted(groups.items(), key=lambda kv: -len(kv[1]))[:MAX_GROUPS]
    ):
        name = f"group-{n:03d}.png"
        _write_sheet(ws, out / name, [by_id[rep_id]] + members, highlight_first=True)
        kinds = ", ".join(sorted({m["status"] for m in members}))
        sections.append(
            f"<h3>{html.escape(kinds)}: {len(members)} of "
            f"{html.escape(by_id[rep_id]['path'])}</h3><img src='{name}'>"
        )
    for status, title in (
        ("error", "internal errors (bugs of ours: please report them)"),
        ("corrupt", "files that do not decode"),
    ):
        listed = [r for r in rows if r["status"] == status][:MAX_LISTED]
        if listed:
            items = "".join(
                f"<tr><td>{html.escape(r['path'])}</td>"
                f"<td>{html.escape(r['reason'] or '')}</td></tr>"
                for r in listed
            )
            sections.append(f"<h3>{status}: {html.escape(title)}</h3><table>{items}</table>")
    for reason, members in sorted(boring.items()):
        name = f"boring-{reason}.png"
        _write_sheet(ws, out / name, members[:MAX_PER_SHEET])
        sections.append(
            f"<h3>boring: {html.escape(reason)} ({len(members)})</h3><img src='{name}'>"
        )
    table = "".join(
        f"<tr><td>{html.escape(s)}</td><td>{html.escape(r) or '&mdash;'}</td><td>{c:,}</td></tr>"
        for (s, r), c in sorted(counts.items())
    )
    page = (
        f"<!doctype html><meta charset='utf-8'><title>postermap clean report</title>"
        f"<style>body{{font:14px system-ui;margin:20px}}img{{max-width:100%}}"
        f"td{{padding:2px 10px}}</style><h1>Clean report</h1>"
        f"<p>{len(rows):,} images. Every flagged row is in <a href='clean.csv'>clean.csv"
        f"</a>; to overrule a verdict, list its id under <code>keep</code> or "
        f"<code>drop</code> in <code>overrides.toml</code> and re-run.</p>"
        f"<table><tr><th>status</th><th>reason</th><th>images</th></tr>{table}</table>"
        + "".join(sections)
    )
    atomic_write_text(out / "clean.html", page)
    return out / "clean.html"


def _write_csv(path: Path, rows: list[dict]) -> None:
    buffer = io.StringIO()
    fields = ["id", "path", "status", "reason", "duplicate_of", "similarity"]
    writer = csv.DictWriter(buffer, fieldnames=fields, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buffer.getvalue())


def _write_sheet(
    ws: Workspace, path: Path, rows: list[dict], highlight_first: bool = False
) -> None:
    sheet = contact_sheet(
        [ws.thumb_path(row["content_hash"]) for row in rows],
        labels=[row["id"] for row in rows],
        highlight_first=highlight_first,
    )
    atomic_write_bytes(path, sheet)
