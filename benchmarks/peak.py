"""Run a command and write its own peak resident memory: ``python -m benchmarks.peak OUT CMD...``.

Linux keeps a process's peak RSS across ``exec`` (``ru_maxrss`` starts from the peak of
the image it replaced), and Python starts a child by ``vfork`` + ``exec``, whose image
before the exec is the parent's memory. So a stage started straight from a benchmark
that holds a million feature vectors reports the benchmark's own peak (3.7 GB at 320k,
9 GB at 1M) whenever its real peak is lower. This launcher is small and starts the
command by a real ``fork``, whose memory high-water mark starts from the launcher's few
megabytes; it waits for it and writes ``{"peak_kb": ..., "exit": ...}`` to OUT (the
largest of the command and the children it waited for, as ``wait4`` reports), and exits
with the command's exit code.
"""

from __future__ import annotations

import json
import os
import sys


def main() -> None:
    out, command = sys.argv[1], sys.argv[2:]
    if not command:
        raise SystemExit("usage: python -m benchmarks.peak OUT COMMAND [ARGS...]")
    pid = os.fork()
    if pid == 0:
        try:
            os.execvp(command[0], command)
        finally:
            os._exit(127)  # exec failed; the message is already on stderr
    _, status, usage = os.wait4(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    with open(out, "w", encoding="utf-8") as fh:
        json.dump({"peak_kb": usage.ru_maxrss, "exit": code}, fh)
    sys.exit(code if code >= 0 else 128 - code)


if __name__ == "__main__":
    main()
