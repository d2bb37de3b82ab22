"""The local runner: results in input order, and an error stops the work queued behind it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from postermap.runner import LocalRunner


def _square(x: int) -> int:
    return x * x


def _slow_touch(folder: str, i: int) -> int:
    time.sleep(0.05)
    Path(folder, str(i)).touch()
    return i


def test_results_come_in_input_order():
    with LocalRunner(2) as runner:
        assert list(runner.map(_square, range(20), chunksize=3)) == [i * i for i in range(20)]
    assert list(LocalRunner(1).map(_square, [3, 4])) == [9, 16]


def test_an_error_in_the_consumer_drops_the_queued_work(tmp_path):
    n = 200
    with pytest.raises(RuntimeError, match="consumer failed"), LocalRunner(2) as runner:
        for i in runner.map(_slow_touch, [str(tmp_path)] * n, range(n)):
            if i == 3:
                raise RuntimeError("consumer failed")
    # the two workers had a few items in hand; the rest of the 200 (5 s of work) never ran:
    # the map cancels what it has not started when its consumer stops
    assert len(list(tmp_path.iterdir())) < n // 4
