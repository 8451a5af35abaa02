"""A run's timeline: one bar per attempt of each step's action and of its undo, laid out in time.

Built from the journal alone. A bar opens at ``step.started`` (or
``compensation.started``) and closes at the event that ends that attempt; one
still open is drawn up to the run's last event. Fan-out items are folded into
their step's row (the aggregate events), so the timeline has a row per step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from ..events import Event
from .text import duration

__all__ = ["Bar", "Box", "Timeline", "timeline"]

# The event that ends an attempt -> how the bar reads.
_END = {
    "step.succeeded": "succeeded",
    "step.failed": "failed",
    "step.retrying": "failed",
    "compensation.succeeded": "compensated",
    "compensation.failed": "compensation_failed",
    "compensation.retrying": "compensation_failed",
}
_START = {"step.started": "do", "compensation.started": "undo"}


@dataclass(frozen=True, slots=True)
class Bar:
    """One attempt: its step, phase (``do``/``undo``), attempt number, span and outcome."""

    step: str
    phase: str
    attempt: int | None
    start: float
    end: float
    outcome: str  # succeeded, failed, compensated, compensation_failed, running, compensating


@dataclass(frozen=True, slots=True)
class Box:
    """Where a bar is drawn (SVG user units) and what its tooltip says."""

    step: str
    css: str
    x: float
    y: float
    w: float
    h: float
    title: str


@dataclass(frozen=True, slots=True)
class Timeline:
    """The bars of a run, the rows (steps in order of first start) and the time span they cover."""

    bars: tuple[Bar, ...]
    rows: tuple[str, ...]
    start: float
    end: float
    index: Mapping[str, int] = field(default_factory=dict)  # row of each step

    @property
    def span(self) -> float:
        """Seconds from the first bar's start to the last one's end (at least a millisecond)."""
        return max(self.end - self.start, 1e-3)

    def ticks(self, n: int = 4) -> list[tuple[float, float]]:
        """``n + 1`` evenly spaced marks: (fraction of the axis, seconds from the start)."""
        return [(i / n, self.span * i / n) for i in range(n + 1)]

    def x(self, t: float, width: float) -> float:
        """Where time ``t`` falls on an axis ``width`` wide."""
        return round((t - self.start) / self.span * width, 2)

    def w(self, bar: Bar, width: float) -> float:
        """How wide ``bar`` is drawn on an axis ``width`` wide (never thinner than a line)."""
        return max(round((bar.end - bar.start) / self.span * width, 2), 1.5)

    def boxes(self, left: float, width: float, top: float, row: float) -> list[Box]:
        """Every bar laid out: the axis starts at ``left`` and is ``width`` wide; rows are ``row`` high from ``top``.

        An action fills the upper part of its step's row, an undo the lower part.
        """
        out = []
        for b in self.bars:
            undo = b.phase == "undo"
            what = "undo" if undo else "action"
            attempt = f", attempt {b.attempt}" if b.attempt else ""
            took = duration(b.end - b.start) or "0 ms"
            out.append(
                Box(
                    b.step,
                    f"{b.phase} {b.outcome}",
                    round(left + self.x(b.start, width), 2),
                    top + row * self.index[b.step] + (row * 0.45 if undo else row * 0.05),
                    self.w(b, width),
                    row * (0.35 if undo else 0.45),
                    f"{b.step}: {what}{attempt}, {b.outcome}, {took}",
                )
            )
        return out


def timeline(events: Iterable[Event]) -> Timeline:
    """The timeline of a journal (the aggregate events of each step; items are left out)."""
    open_: dict[tuple[str, str], tuple[float, int | None]] = {}
    bars: list[Bar] = []
    rows: dict[str, None] = {}
    first = last = None
    for ev in events:
        first = ev.time if first is None else first
        last = ev.time
        if ev.step is None or ev.item is not None:
            continue
        phase = _START.get(ev.kind)
        if phase is not None:
            rows.setdefault(ev.step, None)
            open_[(ev.step, phase)] = (ev.time, ev.attempt)
            continue
        outcome = _END.get(ev.kind)
        if outcome is None:
            continue
        key = (ev.step, "undo" if ev.kind.startswith("compensation.") else "do")
        started = open_.pop(key, None)
        if started is not None:
            bars.append(Bar(ev.step, key[1], started[1], started[0], ev.time, outcome))
    end = last or 0.0
    for (step, phase), (start, attempt) in open_.items():
        bars.append(Bar(step, phase, attempt, start, end, "running" if phase == "do" else "compensating"))
    start = min((b.start for b in bars), default=first or 0.0)
    order = tuple(rows)
    index = {name: i for i, name in enumerate(order)}
    return Timeline(tuple(bars), order, start, max([end, *(b.end for b in bars)]), index)
