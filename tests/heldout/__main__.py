"""``python -m tests.heldout fetch [SET ...]`` / ``build SET OUT [--seed N]`` /
``evaluate SET_DIR WORKSPACE``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

from tests.heldout import SETS, fetch_sources
from tests.heldout.evaluate import evaluate_run


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.heldout", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser("fetch", help="install/download the sources of the sets")
    fetch.add_argument("sets", nargs="*", help=f"any of: {', '.join(SETS)} (default: all)")
    build = commands.add_parser("build", help="build one set into an empty folder")
    build.add_argument("set", choices=list(SETS))
    build.add_argument("out", type=Path)
    build.add_argument("--seed", type=int, default=0)
    evaluate = commands.add_parser("evaluate", help="score a `postermap run` of a built set")
    evaluate.add_argument("set_dir", type=Path)
    evaluate.add_argument("workspace", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("pyvips").setLevel(logging.WARNING)
    if args.command == "fetch":
        for name, path in fetch_sources(args.sets or None).items():
            logging.info("%s: %s", name, path)
    elif args.command == "build":
        SETS[args.set](args.out, args.seed)
    else:
        print(json.dumps(evaluate_run(args.set_dir, args.workspace), indent=2))


if __name__ == "__main__":
    main()
