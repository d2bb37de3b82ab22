"""Fuzz the per-image inspection with a corpus of generated, broken and odd image files.

    python -m benchmarks.fuzz [--n 10000] [--seed 0] [--corpus DIR] [--end-to-end]

Writes a corpus (tests/fuzzing.py: generated valid files over formats x modes x sizes x
EXIF orientations, seeded mutants of them, hand-made edge cases; each with expectations
decided independently of postermap), then runs ingest's per-file function
``inspect_file`` on every file in this process and counts the outcomes: ``ok``,
``corrupt`` by reason, and any other exception (a bug: type and message are listed),
whether it escapes ``inspect_file`` or is recorded by it as status ``error``.

Checks, each listed with the offending files:

* every file Pillow fully decodes (every frame, with every plugin; libvips for SVG) in a
  format postermap supports, within ``max_pixels``, is not ``corrupt``;
* every file with a known verdict (generated files, most edge cases) gets it, at the
  upright size it was made at; full-contrast pictures (16-bit included) are not measured
  low-contrast, and the nearly-black 16-bit card is.

Prints files per second of the inspection alone, the peak RSS of the inspecting process
(``resource.getrusage``; the corpus is written by a child process so its memory is not
counted) and writes benchmarks/results/fuzz.json. ``--end-to-end`` also runs
``postermap run CORPUS -o WS --cell-size 32`` and checks that the catalog has one row per
file and that the run's peak RSS (``wait4``) stays under 2 GB.
"""

from __future__ import annotations

import argparse
import collections
import json
import multiprocessing
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks.common import CACHE, peak_rss_mb, write_result
from tests.fuzzing import (
    MAX_PIXELS,
    SUPPORTED_PILLOW_FORMATS,
    THUMB_SIZE,
    save_expectations,
    write_corpus,
)

REPO = Path(__file__).resolve().parents[1]
#: gray_std at most this is "low contrast" (clean's solid threshold is lower still)
LOW_CONTRAST = 3.0
#: a full-contrast picture measures at least this much gray_std
HIGH_CONTRAST = 10.0
END_TO_END_BUDGET_MB = 2048


def _write(out_dir: str, n: int, seed: int, expectations: str) -> None:
    records = write_corpus(Path(out_dir), n, seed)
    save_expectations(records, Path(expectations))


def corpus(out_dir: Path, n: int, seed: int) -> tuple[list[dict], float]:
    """The corpus in ``out_dir`` (written by a child process unless already there)."""
    expectations = out_dir / "expectations.jsonl"
    started = time.perf_counter()
    if not expectations.exists():
        child = multiprocessing.get_context("fork").Process(
            target=_write, args=(str(out_dir), n, seed, str(expectations))
        )
        child.start()
        child.join()
        if child.exitcode != 0:
            sys.exit(f"writing the corpus failed (exit {child.exitcode})")
    records = [json.loads(line) for line in expectations.read_text().splitlines()]
    return records, time.perf_counter() - started


def inspect_all(root: Path, records: list[dict], thumbs: Path) -> tuple[list[dict], float]:
    """``inspect_file`` on every corpus file, in this process; exceptions are caught here
    (and only here) so that one bug does not hide the next."""
    from postermap.stages.ingest import inspect_file

    results = []
    started = time.perf_counter()
    for record in records:
        path = root / record["name"]
        t0 = time.perf_counter()
        try:
            row = inspect_file(path, record["name"], thumbs, MAX_PIXELS, THUMB_SIZE)
            outcome = {"status": row["status"], "reason": row["reason"], "row": row}
        except Exception as err:  # noqa: BLE001 - a bug to report, with the next ones
            outcome = {
                "status": "bug",
                "reason": f"{type(err).__name__}: {err}",
                "where": traceback.format_exc(limit=-3),
            }
        outcome["seconds"] = time.perf_counter() - t0
        results.append(outcome)
    return results, time.perf_counter() - started


def reason_code(reason: str | None) -> str:
    return (reason or "").split(":", 1)[0]


def check(records: list[dict], results: list[dict]) -> dict[str, list[dict]]:
    """The wrong verdicts, by check."""
    found: dict[str, list[dict]] = collections.defaultdict(list)
    for record, result in zip(records, results, strict=True):
        status, row = result["status"], result.get("row") or {}
        brief = {
            "file": record["name"],
            "origin": record["origin"],
            "case": record.get("case") or record.get("mutation"),
            "spec": record.get("spec"),
            "status": status,
            "reason": result["reason"],
        }
        if status == "bug":  # raised out of inspect_file
            found["exceptions"].append({**brief, "where": result["where"]})
            continue
        if status == "error":  # caught by inspect_file's isolation: a bug all the same
            found["errors"].append(brief)
            continue
        decodable = record["reference_decodes"] is True and (
            record["reference_format"] in SUPPORTED_PILLOW_FORMATS
            or record["reference_format"] == "SVG"
        )
        if decodable and status != "ok":
            found["pillow_decodes_but_corrupt"].append(brief)
        expect = record.get("expect")
        if expect is not None and status != expect:
            found["wrong_status"].append({**brief, "expected": expect})
        if record.get("reason") and status == "corrupt":
            if reason_code(result["reason"]) != record["reason"]:
                found["wrong_reason"].append({**brief, "expected": record["reason"]})
        if status != "ok":
            continue
        if record.get("size") and [row["width"], row["height"]] != record["size"]:
            found["wrong_size"].append(
                {**brief, "expected": record["size"], "got": [row["width"], row["height"]]}
            )
        if record.get("high_contrast") and row["gray_std"] < HIGH_CONTRAST:
            found["full_contrast_measured_low"].append({**brief, "gray_std": row["gray_std"]})
        if record.get("low_contrast") and row["gray_std"] > LOW_CONTRAST:
            found["low_contrast_measured_high"].append({**brief, "gray_std": row["gray_std"]})
    return dict(found)


def summarise(records: list[dict], results: list[dict]) -> dict:
    statuses = collections.Counter()
    by_origin: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    by_format: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    ok_not_fully_decodable = collections.Counter()
    for record, result in zip(records, results, strict=True):
        key = result["status"]
        if key == "corrupt":
            key = f"corrupt:{reason_code(result['reason'])}"
        statuses[key] += 1
        by_origin[record["origin"]][key] += 1
        fmt = (record.get("spec") or {}).get("fmt") or Path(record["name"]).suffix.lower()
        by_format[fmt][key] += 1
        if result["status"] == "ok" and record["reference_decodes"] is not True:
            ok_not_fully_decodable[record["origin"]] += 1
    slowest = sorted(
        zip(records, results, strict=True), key=lambda pair: pair[1]["seconds"], reverse=True
    )[:5]
    return {
        "statuses": dict(sorted(statuses.items())),
        "by_origin": {k: dict(sorted(v.items())) for k, v in sorted(by_origin.items())},
        "by_format": {k: dict(sorted(v.items())) for k, v in sorted(by_format.items())},
        # first frame fine, a later one broken; or beyond what the reference would try
        "ok_where_pillow_does_not_fully_decode": dict(ok_not_fully_decodable),
        "slowest": [
            {"file": r["name"], "seconds": round(res["seconds"], 3), "status": res["status"]}
            for r, res in slowest
        ],
    }


def end_to_end(root: Path, records: list[dict], workspace: Path) -> dict:
    """``postermap run`` on the corpus: exit code, seconds, peak RSS, catalog rows."""
    import pyarrow.parquet as pq

    command = [
        str(REPO / ".venv" / "bin" / "postermap"),
        "run",
        str(root),
        "-o",
        str(workspace),
        "--cell-size",
        "32",
    ]
    started = time.perf_counter()
    log_path = workspace.parent / "end-to-end.log"
    with open(log_path, "wb") as log:
        child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    log_lines = log_path.read_text(errors="replace").splitlines()
    result = {
        "command": "postermap run CORPUS -o WS --cell-size 32",
        "exit_code": code,
        "seconds": round(seconds, 1),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
        # the last lines of its output, without this machine's folders
        "log_tail": [
            line.replace(str(workspace), "WS").replace(str(root), "CORPUS")
            for line in log_lines[-3:]
        ],
    }
    result["peak_rss_within_budget"] = result["peak_rss_mb"] < END_TO_END_BUDGET_MB
    catalog = workspace / "catalog.parquet"
    if catalog.exists():
        table = pq.read_table(catalog, columns=["path", "status"])
        paths = table["path"].to_pylist()
        wanted = {r["name"] for r in records}
        result.update(
            catalog_rows=len(paths),
            files=len(wanted),
            one_row_per_file=sorted(paths) == sorted(wanted),
            missing=sorted(wanted - set(paths))[:20],
            statuses=dict(collections.Counter(table["status"].to_pylist())),
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10_000, help="files in the corpus")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", type=Path, help="corpus folder (default: a cache folder)")
    parser.add_argument("--end-to-end", action="store_true", help="also run postermap run")
    args = parser.parse_args()
    root = args.corpus or CACHE / f"fuzz-corpus-{args.n}-{args.seed}"
    root.mkdir(parents=True, exist_ok=True)
    records, write_seconds = corpus(root, args.n, args.seed)
    writer_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    files = [r for r in records if (root / r["name"]).exists()]
    shown = root.relative_to(REPO) if root.is_relative_to(REPO) else root
    print(f"corpus: {len(files):,} files in {shown} ({write_seconds:.1f} s)")
    with tempfile.TemporaryDirectory(prefix="postermap-fuzz-") as tmp:
        results, seconds = inspect_all(root, files, Path(tmp) / "thumbs")
        peak = peak_rss_mb()
        summary = summarise(files, results)
        problems = check(files, results)
        e2e = end_to_end(root, files, Path(tmp) / "ws") if args.end_to_end else None
    rate = len(files) / seconds
    print(f"inspect_file: {len(files):,} files in {seconds:.1f} s = {rate:,.0f} files/s")
    print(f"peak RSS of the inspecting process: {peak:,.0f} MB")
    print("statuses: " + ", ".join(f"{k} {v:,}" for k, v in summary["statuses"].items()))
    for origin, counts in summary["by_origin"].items():
        print(f"  {origin}: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()))
    print(
        "ok although Pillow does not fully decode:",
        summary["ok_where_pillow_does_not_fully_decode"],
    )
    if not problems:
        print("checks: all passed (no exception, no wrong verdict)")
    for name, items in problems.items():
        print(f"CHECK FAILED {name}: {len(items)}")
        for item in items[:10]:
            print("   ", json.dumps({k: v for k, v in item.items() if k != "where"}, default=str))
            if "where" in item:
                print("   ", item["where"].strip().replace("\n", "\n    "))
    if e2e is not None:
        print(f"end to end: {json.dumps(e2e, indent=1)}")
    path = write_result(
        "fuzz.json",
        {
            "command": "python -m benchmarks.fuzz " + " ".join(sys.argv[1:]),
            "files": len(files),
            "seed": args.seed,
            "corpus_write_seconds": round(write_seconds, 1),
            "inspect_seconds": round(seconds, 2),
            "files_per_second": round(rate, 1),
            "peak_rss_mb": round(peak, 1),
            "corpus_writer_peak_rss_mb": round(writer_peak, 1),
            **summary,
            "problems": {name: len(items) for name, items in problems.items()},
            "problem_examples": {name: items[:20] for name, items in problems.items()},
            "end_to_end": e2e,
        },
    )
    print(f"wrote {path}")
    if problems or (e2e and not (e2e.get("one_row_per_file") and e2e["peak_rss_within_budget"])):
        sys.exit(1)


if __name__ == "__main__":
    main()
