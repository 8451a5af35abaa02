"""One run as its page shows it: the folded state, the step table, the journal and the timeline.

Everything shown passes through the project's redaction first: the journal
holds secrets masked already, and every value is masked again here with the
secret input fields of the run's spec, as ``show`` and ``history`` do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..events import Event
from ..journal.base import TERMINAL_STATES, RunRecord
from ..redact import redact, secret_values
from ..state import RunState, StepState, fold
from .listing import RunRow, run_row
from .specs import LoadedSpec
from .text import compact, error_text
from .timeline import Timeline, timeline

__all__ = [
    "FAILURE_KINDS",
    "EventRow",
    "JournalFilter",
    "RunView",
    "StepRow",
    "build_run_view",
    "folded",
    "redacted_events",
]

# "Failed only" in the journal: the events that report a failure.
FAILURE_KINDS = frozenset(
    {"step.failed", "step.retrying", "compensation.failed", "compensation.retrying", "saga.aborted", "saga.stuck"}
)
JOURNAL_ROWS = 2000  # at most this many events on the page; the JSON API has them all


def redacted_events(rec: RunRecord, events: Sequence[Event], loaded: LoadedSpec) -> list[Event]:
    """``events`` with every secret of ``rec``'s input masked (already masked ones stay so)."""
    secrets = secret_values(rec.input, loaded.secret_fields())
    if not secrets:
        return list(events)
    out = []
    for ev in events:
        data = redact(ev.data, secrets)
        out.append(ev if data is ev.data else dataclasses.replace(ev, data=data))
    return out


def folded(rec: RunRecord, events: Sequence[Event], order: Iterable[str]) -> RunState:
    """The run's state, with the steps that never started shown pending, in the spec's order."""
    state = fold(events)
    state.run_id = rec.run_id
    state.saga = state.saga or rec.saga
    if not events:
        state.status = rec.status
    order = list(order)
    for name in order:
        state.step(name)
    known = [n for n in order if n in state.steps] + [n for n in state.steps if n not in order]
    state.steps = {n: state.steps[n] for n in known}
    return state


@dataclass(frozen=True, slots=True)
class StepRow:
    """One line of the step table."""

    name: str
    status: str
    attempts: int
    undo_attempts: int
    started_at: float | None
    ended_at: float | None
    error: str
    output: str
    items: str
    uncertain: bool

    @property
    def seconds(self) -> float | None:
        """How long the step took (or has taken, up to its last event)."""
        if self.started_at is None or self.ended_at is None:
            return None
        return self.ended_at - self.started_at


def _items_text(st: StepState) -> str:
    if not st.items:
        return ""
    tally: dict[str, int] = {}
    for it in st.items.values():
        tally[it.status] = tally.get(it.status, 0) + 1
    return f"{len(st.items)} items: " + ", ".join(f"{n} {s}" for s, n in sorted(tally.items()))


def step_row(st: StepState) -> StepRow:
    """The table line of one step."""
    return StepRow(
        st.name,
        st.status,
        st.attempts,
        st.compensation_attempts,
        st.started_at,
        st.ended_at,
        error_text(st.error),
        compact(st.output) if st.output is not None else "",
        _items_text(st),
        st.uncertain,
    )


@dataclass(frozen=True, slots=True)
class EventRow:
    """One journal line."""

    seq: int
    time: float
    kind: str
    step: str | None
    item: int | None
    attempt: int | None
    data: str
    failed: bool


@dataclass(frozen=True, slots=True)
class JournalFilter:
    """Which journal lines to show: some kinds, and/or only failures."""

    kinds: tuple[str, ...] = ()
    failed_only: bool = False

    def keep(self, ev: Event) -> bool:
        """Whether ``ev`` passes."""
        if self.kinds and ev.kind not in self.kinds:
            return False
        return not self.failed_only or ev.kind in FAILURE_KINDS


@dataclass(frozen=True, slots=True)
class RunView:
    """Everything the run page shows."""

    row: RunRow
    state: RunState
    steps: tuple[StepRow, ...]
    journal: tuple[EventRow, ...]
    journal_total: int
    journal_kinds: tuple[str, ...]
    journal_filter: JournalFilter
    timeline: Timeline
    spec_error: str | None
    events: tuple[Event, ...]

    @property
    def live(self) -> bool:
        """The run has not ended: its page keeps refreshing."""
        return self.row.status not in TERMINAL_STATES

    def to_json(self) -> dict[str, Any]:
        """The run as the JSON API returns it (redacted like the page)."""
        state = self.state.to_json()
        if self.state.input is not None:
            state["input"] = self.state.input
        return {
            "run": self.row.to_json(),
            "state": state,
            "steps": [dataclasses.asdict(s) for s in self.steps],
            "timeline": [dataclasses.asdict(b) for b in self.timeline.bars],
            "events": [ev.to_json() for ev in self.events],
            "spec_error": self.spec_error,
        }


def _event_row(ev: Event) -> EventRow:
    return EventRow(
        ev.seq, ev.time, ev.kind, ev.step, ev.item, ev.attempt, compact(dict(ev.data), 400), ev.kind in FAILURE_KINDS
    )


def build_run_view(rec: RunRecord, events: Sequence[Event], loaded: LoadedSpec, journal: JournalFilter) -> RunView:
    """The page of ``rec`` from its journal (``events``) and its rebuilt spec."""
    clean = redacted_events(rec, events, loaded)
    state = folded(rec, clean, loaded.step_order)
    shown = [ev for ev in clean if journal.keep(ev)]
    return RunView(
        row=run_row(rec),
        state=state,
        steps=tuple(step_row(st) for st in state.steps.values()),
        journal=tuple(_event_row(ev) for ev in shown[:JOURNAL_ROWS]),
        journal_total=len(shown),
        journal_kinds=tuple(sorted({ev.kind for ev in clean})),
        journal_filter=journal,
        timeline=timeline(clean),
        spec_error=loaded.error,
        events=tuple(clean),
    )
