"""Progress bars and stage summaries, on stderr via rich, so stdout stays for results."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

T = TypeVar("T")

console = Console(stderr=True)


class RateColumn(ProgressColumn):
    """Items per second over rich's recent-speed window."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.1f}/s", style="progress.data.speed")


def progress_bar() -> Progress:
    """A bar with count, rate, ETA and elapsed time; used by every long loop."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(),
        TimeRemainingColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )


def track(items: Iterable[T], total: int, description: str) -> Iterator[T]:
    """Iterate ``items`` with a progress bar of ``total`` steps."""
    with progress_bar() as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


def print_summary(stage: str, record: dict) -> None:
    """One table per stage: count in, count out, per-status counts, seconds, images/s."""
    table = Table(title=f"{stage}", title_justify="left", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    counts = record.get("counts", {})
    for key, value in counts.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    seconds = record.get("seconds", 0.0)
    table.add_row("seconds", f"{seconds:.2f}")
    if record.get("images_per_second") is not None:
        table.add_row("images/s", f"{record['images_per_second']:.1f}")
    console.print(table)
