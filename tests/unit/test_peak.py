"""The benchmarks' peak-memory launcher: a child's own peak, not the parent's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux's exec keeps max RSS")

SMALL_CHILD = [sys.executable, "-c", "pass"]


def test_a_small_child_of_a_large_process_reports_its_own_peak(tmp_path):
    ballast = np.ones(600 * 2**20, np.uint8)  # this process holds 600 MB
    assert ballast.sum() > 0
    direct = subprocess.Popen(SMALL_CHILD)
    _, status, usage = os.wait4(direct.pid, 0)
    assert status == 0
    # started straight from here, the child's peak is at least this process's
    assert usage.ru_maxrss > 550 * 1024
    out = tmp_path / "peak.json"
    launched = subprocess.run([sys.executable, "-m", "benchmarks.peak", str(out), *SMALL_CHILD])
    assert launched.returncode == 0
    measured = json.loads(out.read_text())
    assert measured["exit"] == 0 and 0 < measured["peak_kb"] < 100 * 1024
    del ballast


def test_the_commands_exit_code_and_memory_come_through(tmp_path):
    out = tmp_path / "peak.json"
    grow = "import numpy as np, sys; a = np.ones(300 * 2**20, np.uint8); sys.exit(3)"
    launched = subprocess.run(
        [sys.executable, "-m", "benchmarks.peak", str(out), sys.executable, "-c", grow]
    )
    assert launched.returncode == 3
    measured = json.loads(out.read_text())
    assert measured["exit"] == 3 and measured["peak_kb"] > 290 * 1024
