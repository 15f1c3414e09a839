"""One look for every long job's progress bar."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.text import Text

from .console import output_console


class RateColumn(ProgressColumn):
    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        unit = task.fields.get("unit", self.unit)  # a task of other units than the bar's (a run's steps)
        return Text(f"{task.speed:,.0f} {unit}/s" if task.speed else f"- {unit}/s", style="cyan")


def progress_bar(unit: str = "img", enabled: bool = True, console: Console | None = None) -> Progress:
    """A rich progress bar showing done/total, rate and ETA; `enabled=False` for non-main processes."""
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(), RateColumn(unit),
        TimeRemainingColumn(), console=console or output_console(stderr=True), disable=not enabled, transient=False,
    )
