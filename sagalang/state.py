"""A run's state as a fold over its journal: ``fold(events) -> RunState``.

The interpreter never keeps state the journal does not hold: it folds each
event into the run's :class:`RunState` right after appending it, and a resume
folds the stored journal to get back to exactly the same point. The event
data conventions are listed in ``docs/semantics.md``.

Fan-out steps keep one :class:`StepState` per item in ``items``; the step's
own status follows the aggregate events (``item`` None). A sub-saga's steps
are journaled in the caller's run under ``caller/step`` names.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .events import Event
from .status import DONE_STEP_STATUSES, RUN_STATUS_AFTER, TERMINAL_EVENTS, TERMINAL_RUN_STATUSES, RunStatus, StepStatus

__all__ = ["DONE_STATES", "STEP_STATES", "RunState", "StepState", "apply", "fold"]

# The step statuses, and those that satisfy a step's dependents (sagalang.status holds the vocabulary).
STEP_STATES: tuple[StepStatus, ...] = tuple(StepStatus)
DONE_STATES = DONE_STEP_STATUSES

# The state holds plain strings (what the journal and JSON hold): an enum member is slower to
# fetch and to compare, and the fold runs for every event.
_PENDING = StepStatus.PENDING.value
_RUNNING = StepStatus.RUNNING.value
_SUCCEEDED = StepStatus.SUCCEEDED.value
_FAILED = StepStatus.FAILED.value
_SKIPPED = StepStatus.SKIPPED.value
_COMPENSATING = StepStatus.COMPENSATING.value
_COMPENSATED = StepStatus.COMPENSATED.value
_COMPENSATION_FAILED = StepStatus.COMPENSATION_FAILED.value
_RUN_STATUS_AFTER = {kind: status.value for kind, status in RUN_STATUS_AFTER.items()}


@dataclass(slots=True)
class StepState:
    """One step (or one fan-out item) of a run.

    ``uncertain`` is sticky: once an attempt's outcome is unknown (timed out,
    cancelled mid-flight, crashed), the step is compensated even if a later
    attempt failed cleanly.
    """

    name: str
    status: str = _PENDING
    attempts: int = 0
    output: Any = None
    error: dict[str, Any] | None = None  # {"type", "message", "names"}
    uncertain: bool = False
    items: dict[int, StepState] = field(default_factory=dict)
    compensation_attempts: int = 0
    started_at: float | None = None
    ended_at: float | None = None
    # The journal position at which the step finished (succeeded, or failed for good):
    # compensation undoes steps in the reverse of this order.
    finished_seq: int | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON object for ``show --json`` and friends."""
        out: dict[str, Any] = {"name": self.name, "status": self.status, "attempts": self.attempts}
        if self.output is not None:
            out["output"] = self.output
        if self.error is not None:
            out["error"] = self.error
        if self.uncertain:
            out["uncertain"] = True
        if self.compensation_attempts:
            out["compensation_attempts"] = self.compensation_attempts
        if self.started_at is not None:
            out["started_at"] = self.started_at
        if self.ended_at is not None:
            out["ended_at"] = self.ended_at
        if self.items:
            out["items"] = {str(i): s.to_json() for i, s in sorted(self.items.items())}
        return out


@dataclass(slots=True)
class RunState:
    """A run: its status (a :class:`~sagalang.status.RunStatus`) and every step's state."""

    run_id: str
    saga: str = ""
    status: str = RunStatus.RUNNING.value
    steps: dict[str, StepState] = field(default_factory=dict)
    output: Any = None
    error: dict[str, Any] | None = None
    failed_step: str | None = None
    cancel_requested: bool = False
    saga_attempt: int = 1
    started_at: float | None = None
    ended_at: float | None = None
    last_seq: int = 0
    compensation_path: list[str] = field(default_factory=list)  # steps whose undo ran, in order
    input: Any = None
    reason: str | None = None  # why backward recovery began: failure | cancel | timeout

    def step(self, name: str) -> StepState:
        """The state of ``name`` (created pending on first use)."""
        st = self.steps.get(name)
        if st is None:
            st = self.steps[name] = StepState(name)
        return st

    @property
    def terminal(self) -> bool:
        """True once the run reached a final status."""
        return self.status in TERMINAL_RUN_STATUSES

    def to_json(self) -> dict[str, Any]:
        """A JSON object for ``show --json`` and friends."""
        out: dict[str, Any] = {
            "run_id": self.run_id,
            "saga": self.saga,
            "status": self.status,
            "saga_attempt": self.saga_attempt,
            "steps": {n: s.to_json() for n, s in self.steps.items()},
            "compensation_path": list(self.compensation_path),
        }
        if self.output is not None:
            out["output"] = self.output
        if self.error is not None:
            out["error"] = self.error
        if self.failed_step is not None:
            out["failed_step"] = self.failed_step
        if self.reason is not None:
            out["reason"] = self.reason
        if self.cancel_requested:
            out["cancel_requested"] = True
        if self.started_at is not None:
            out["started_at"] = self.started_at
        if self.ended_at is not None:
            out["ended_at"] = self.ended_at
        return out


def _target(state: RunState, ev: Event) -> StepState:
    name = ev.step or ""
    st = state.steps.get(name)
    if st is None:
        st = state.steps[name] = StepState(name)
    if ev.item is None:
        return st
    it = st.items.get(ev.item)
    if it is None:
        it = st.items[ev.item] = StepState(ev.step or "")
    return it


# ---- one function per event kind -----------------------------------------


def _saga_started(state: RunState, ev: Event) -> None:
    d = ev.data
    state.saga = d.get("saga", state.saga)
    state.saga_attempt = int(d.get("attempt", state.saga_attempt) or 1)
    if "input" in d:
        state.input = d["input"]
    state.status = _RUN_STATUS_AFTER[ev.kind]
    for name in d.get("steps", ()):
        state.step(name)
    if state.started_at is None:
        state.started_at = ev.time


def _step_started(state: RunState, ev: Event) -> None:
    st = _target(state, ev)
    st.status = _RUNNING
    if ev.attempt is not None:
        st.attempts = ev.attempt
    if st.started_at is None:
        st.started_at = ev.time


def _step_succeeded(state: RunState, ev: Event) -> None:
    st = _target(state, ev)
    st.status = _SUCCEEDED
    st.output = ev.data.get("output")
    st.error = None
    st.ended_at = ev.time
    if ev.item is None:
        st.finished_seq = ev.seq


def _step_failed(state: RunState, ev: Event) -> None:
    st = _target(state, ev)
    d = ev.data
    st.error = d.get("error")
    if d.get("uncertain"):
        st.uncertain = True
    if d.get("final", True):
        st.status = _FAILED
        st.ended_at = ev.time
        if ev.item is None:
            st.finished_seq = ev.seq


def _step_retrying(state: RunState, ev: Event) -> None:
    st = _target(state, ev)
    st.status = _RUNNING
    if "error" in ev.data:
        st.error = ev.data["error"]


def _step_skipped(state: RunState, ev: Event) -> None:
    st = _target(state, ev)
    st.status = _SKIPPED
    st.ended_at = ev.time


def _comp_started(state: RunState, ev: Event) -> None:
    st = _target(state, ev)
    st.status = _COMPENSATING
    if ev.attempt is not None:
        st.compensation_attempts = ev.attempt


def _comp_succeeded(state: RunState, ev: Event) -> None:
    st = _target(state, ev)
    st.status = _COMPENSATED
    st.ended_at = ev.time
    if ev.item is None and ev.step is not None:
        state.compensation_path.append(ev.step)


def _comp_failed(state: RunState, ev: Event) -> None:
    st = _target(state, ev)
    st.error = ev.data.get("error", st.error)
    if ev.data.get("final", True):
        st.status = _COMPENSATION_FAILED
        st.ended_at = ev.time


def _comp_retrying(state: RunState, ev: Event) -> None:
    st = _target(state, ev)
    st.status = _COMPENSATING


def _saga_compensating(state: RunState, ev: Event) -> None:
    d = ev.data
    state.status = _RUN_STATUS_AFTER[ev.kind]
    state.reason = d.get("reason", state.reason)
    if d.get("step") is not None:
        state.failed_step = d["step"]
    if d.get("error") is not None:
        state.error = d["error"]


def _cancel_requested(state: RunState, ev: Event) -> None:
    state.cancel_requested = True


def _saga_retrying(state: RunState, ev: Event) -> None:
    # A new attempt starts from a clean slate: the previous one was rolled back.
    d = ev.data
    state.saga_attempt = int(d.get("attempt", state.saga_attempt + 1))
    if "input" in d:
        state.input = d["input"]
    state.steps = {}
    state.compensation_path = []
    state.error = None
    state.failed_step = None
    state.reason = None
    state.output = None
    state.status = _RUN_STATUS_AFTER[ev.kind]


def _saga_resumed(state: RunState, ev: Event) -> None:
    return None


def _terminal(state: RunState, ev: Event) -> None:
    state.status = _RUN_STATUS_AFTER[ev.kind]
    state.ended_at = ev.time
    d = ev.data
    if "output" in d:
        state.output = d["output"]
    if d.get("error") is not None:
        state.error = d["error"]
    if d.get("step") is not None and state.failed_step is None:
        state.failed_step = d["step"]


_APPLY: dict[str, Callable[[RunState, Event], None]] = {
    "saga.started": _saga_started,
    "step.started": _step_started,
    "step.succeeded": _step_succeeded,
    "step.failed": _step_failed,
    "step.retrying": _step_retrying,
    "step.skipped": _step_skipped,
    "compensation.started": _comp_started,
    "compensation.succeeded": _comp_succeeded,
    "compensation.failed": _comp_failed,
    "compensation.retrying": _comp_retrying,
    "saga.compensating": _saga_compensating,
    "saga.cancel_requested": _cancel_requested,
    "saga.retrying": _saga_retrying,
    "saga.resumed": _saga_resumed,
    **dict.fromkeys(TERMINAL_EVENTS, _terminal),
}


def apply(state: RunState, event: Event) -> RunState:
    """Fold one event into ``state`` (in place) and return it; unknown kinds are ignored."""
    fn = _APPLY.get(event.kind)
    if fn is not None:
        fn(state, event)
    if event.seq > state.last_seq:
        state.last_seq = event.seq
    return state


def fold(events: Iterable[Event], state: RunState | None = None) -> RunState:
    """The state after ``events``; pass ``state`` to continue an earlier fold."""
    for ev in events:
        if state is None:
            state = RunState(ev.run_id)
        apply(state, ev)
    # An empty journal: a run that was created (submitted) but never started.
    return state if state is not None else RunState("", status=RunStatus.QUEUED.value)
