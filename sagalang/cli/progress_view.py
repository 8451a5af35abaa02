"""Runs' progress on stderr: a live table on a terminal (rich), one line per event in words otherwise.

The model is :mod:`sagalang.progress`; this module only draws it. A view is a
run listener (it feeds the model whatever it shows, so the summary can be
told from it) and wraps the run's coroutine in :meth:`ProgressView.during`,
which keeps the live table's clocks ticking between events.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Callable
from typing import IO, TYPE_CHECKING, Literal, TypeVar

from ..progress import duration_text

if TYPE_CHECKING:
    from rich.console import RenderableType
    from rich.live import Live

    from ..events import Event
    from ..progress import Board, RunProgress
    from ..state import RunState

__all__ = ["Mode", "ProgressView", "frame", "mode_for", "print_summary"]

T = TypeVar("T")
Mode = Literal["live", "lines", "off"]

# A step's words (progress.RowView.status) -> its mark and colour in the live table.
_LOOK = {
    "pending": ("·", "bright_black"),
    "running": ("▶", "cyan"),
    "done": ("✓", "green"),
    "skipped": ("-", "bright_black"),
    "failed": ("✗", "red"),
    "undoing": ("↶", "yellow"),
    "undone": ("↶", "yellow"),
    "undo failed": ("!", "red"),
}
_REDRAW_EVERY = 0.1  # seconds: at most this often on events
_TICK = 0.5  # seconds: the running clocks move this often between events


def mode_for(progress: bool | None, stream: IO[str]) -> Mode:
    """``live`` on a colour terminal unless ``--no-progress``; ``lines`` with ``--progress`` elsewhere."""
    if progress is False:
        return "off"
    terminal = bool(getattr(stream, "isatty", lambda: False)())
    plain = bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb"
    if terminal and not plain:
        return "live"
    return "lines" if progress or terminal else "off"


class ProgressView:
    """A run listener that feeds a :class:`~sagalang.progress.Board` and shows it as ``mode`` says."""

    def __init__(self, board: Board, stream: IO[str], mode: Mode, clock: Callable[[], float] = time.time) -> None:
        """Show ``board`` on ``stream``; ``clock`` gives the wall time running steps are measured against."""
        self.board = board
        self.stream = stream
        self.mode: Mode = mode
        self.clock = clock
        self.current: RunProgress | None = None
        self._live: Live | None = None
        self._drawn = 0.0

    def __call__(self, event: Event) -> None:
        """Listener: fold the event, then print its line or redraw the table."""
        self.current, line = self.board.apply(event)
        if self.mode == "lines":
            if line is not None:
                self.stream.write(line + "\n")
                self.stream.flush()
        elif self._live is not None:
            now = time.monotonic()
            if now - self._drawn >= _REDRAW_EVERY or event.kind in _ENDINGS:
                self._draw(now)

    async def during(self, work: Awaitable[T]) -> T:
        """Await ``work`` (the run) with the live table on screen, if this view is live."""
        if self.mode != "live":
            return await work
        from rich.console import Console
        from rich.live import Live

        console = Console(file=self.stream, highlight=False, soft_wrap=False)
        self._live = Live(console=console, auto_refresh=False, transient=False, vertical_overflow="ellipsis")
        self._live.start()
        ticker = asyncio.get_running_loop().create_task(self._tick())
        try:
            return await work
        finally:
            ticker.cancel()
            self._draw(time.monotonic())
            self._live.stop()
            self._live = None

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(_TICK)
            self._draw(time.monotonic())

    def _draw(self, at: float) -> None:
        if self._live is not None and self.current is not None:
            self._drawn = at
            self._live.update(frame(self.current, self.clock()), refresh=True)


_ENDINGS = frozenset({"saga.completed", "saga.compensated", "saga.cancelled", "saga.aborted", "saga.stuck"})


def frame(p: RunProgress, now: float) -> RenderableType:
    """One picture of a run: a heading, a row per step, and its latest event in words."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    head = Text.assemble(
        ("run ", "bold"),
        (p.run_id, "bold cyan"),
        f"  saga {p.state.saga or '?'}  ",
        (p.state.status, "bold"),
        f"  {duration_text(p.elapsed(now))}",
    )
    table = Table.grid(padding=(0, 1))
    for _ in range(7):
        table.add_column(no_wrap=True)
    for row in p.rows(now):
        mark, colour = _LOOK.get(row.status, ("?", "white"))
        bar = ProgressBar(total=row.items[1], completed=row.items[0], width=20) if row.items and row.items[1] else ""
        table.add_row(
            Text(" " + mark, colour), row.name, Text(row.status, colour), row.attempt, row.elapsed, bar, row.note
        )
    return Group(head, table, Text(p.last or "", "italic"))


def print_summary(progress: RunProgress, state: RunState) -> None:
    """How a run ended, on stdout: its outcome, its output (completed), what failed and what was undone."""
    import json

    import click

    from ..progress import headline, summary_details

    click.echo(headline(progress, state))
    if state.output is not None and state.status == "completed":
        click.echo(json.dumps(state.output, indent=2, sort_keys=True))
    for line in summary_details(progress, state):
        click.echo(line)
