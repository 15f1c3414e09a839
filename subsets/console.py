"""Where results are printed: the terminal at its own width, or a log at a width that keeps tables whole."""

from __future__ import annotations

import os

from rich.console import Console

# Rich lays a table out for 80 columns when its output is not a terminal (a log file, a pipe, CI), cutting cells
# such as a recipe's name to "3240…"; a log is read later, whole, so it gets room for every cell.
LOG_WIDTH = 160


def output_console(stderr: bool = False) -> Console:
    """A rich Console for tables and messages: a terminal's own width (or $COLUMNS), else LOG_WIDTH."""
    console = Console(stderr=stderr)
    if console.is_terminal or "COLUMNS" in os.environ:
        return console
    return Console(stderr=stderr, width=LOG_WIDTH)
