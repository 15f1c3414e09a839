"""Where results are printed: the terminal at its own width, or a log at a width that keeps tables whole."""

from __future__ import annotations

import os

from rich.console import Console

# Rich lays a table out for 80 columns when its output is not a terminal (a log file, a pipe, CI), cutting cells
# such as a recipe's name to "3240…"; a log is read later, whole, so it gets room for every cell.
LOG_WIDTH = 160


def output_console(stderr: bool = False) -> Console:
    """A rich Console for tables and messages: a terminal's own width (or $COLUMNS), else LOG_WIDTH. A message is
    never broken into lines (soft wrap): one that names a path longer than the width would otherwise print it cut
    in two, in a log and in a terminal alike (rich breaks lines itself), and a copied path or command would fail."""
    console = Console(stderr=stderr, soft_wrap=True)
    if console.is_terminal or "COLUMNS" in os.environ:
        return console
    return Console(stderr=stderr, width=LOG_WIDTH, soft_wrap=True)
