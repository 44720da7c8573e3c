"""What the command line shows a person: tables on stdout, errors on stderr."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from rich.console import Console
from rich.table import Table


def _console(stderr: bool = False) -> Console:
    """A console; when output is not a terminal (CI, a pipe), wide enough not to wrap URLs."""
    probe = Console(stderr=stderr)
    return Console(stderr=stderr, highlight=False, width=None if probe.is_terminal else 160)


console = _console()
errors = _console(stderr=True)


def fail(message: str) -> None:
    errors.print(f"[bold red]error:[/] {message}")


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    grid = Table(title=title, title_justify="left")
    for column in columns:
        grid.add_column(column)
    for row in rows:
        grid.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(grid)
