"""A run's progress as a person watching it wants it, built from its journal events alone.

:class:`RunProgress` folds each event into the run's state with the journal's
own fold (:func:`sagalang.state.apply`) and keeps what a watcher asks on top
of it: attempt n of N (N from the spec, through a :class:`Plan`), the delay
before the next retry, how many fan-out items are done, how long each step
and the run took, and why a run was cancelled and by whom. Its ``apply``
returns the event in words, for a log line. :class:`Board` holds the
progress of every run one listener sees (``resume --all`` drives several).

Nothing here prints, reads a clock or touches the runtime: the caller passes
``now`` where a running step's elapsed time is wanted, so the model is tested
without a terminal. Each event costs a dictionary look-up and a few
assignments, whatever the number of steps or fan-out items.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import semantics
from .state import DONE_STATES, RunState, StepState, apply

if TYPE_CHECKING:
    from . import ir
    from .events import Event
    from .spec import Spec

__all__ = [
    "Board",
    "Cancel",
    "Plan",
    "RowView",
    "RunProgress",
    "duration_text",
    "headline",
    "headline_outcome",
    "plan_of",
    "summary_details",
]


# ---- what the spec says -----------------------------------------------------------------


def _total(policy: ir.RetryPolicy | None) -> int | None:
    """Attempts a policy allows in all (None: forever); one without a policy."""
    return 1 if policy is None else policy.attempts


@dataclass(frozen=True, slots=True)
class Plan:
    """What the spec tells about a run beyond its events: step order, attempts allowed, saga timeout.

    ``attempts`` and ``undo_attempts`` map a step (``caller/step`` inside a
    sub-saga) to the attempts its call and its undo may take in all, None
    meaning forever; a step missing from them is not known (no N is shown).
    """

    steps: tuple[str, ...] = ()
    attempts: Mapping[str, int | None] = field(default_factory=dict)
    undo_attempts: Mapping[str, int | None] = field(default_factory=dict)
    saga_attempts: int | None = None  # whole-saga attempts (``on failure { retry saga N }``)
    timeout_ms: int | None = None  # the saga's own timeout


def plan_of(spec: Spec) -> Plan:
    """The plan of ``spec``'s entry saga, its sub-sagas' steps included under ``caller/step``."""
    attempts: dict[str, int | None] = {}
    undo: dict[str, int | None] = {}

    def walk(saga: ir.Saga, prefix: str, seen: frozenset[str]) -> None:
        comp = semantics.compensation_retry(saga)
        for step in saga.steps():
            name = prefix + step.name
            undo[name] = _total(comp)
            if step.call is None:
                attempts[name] = _total(semantics.effective_retry(saga, step))
                continue
            callee = spec.sagas.get(step.call.saga)
            if callee is not None and callee.name not in seen:
                walk(callee, name + "/", seen | {callee.name})

    main = spec.saga
    walk(main, "", frozenset({main.name}))
    again = main.on_failure.retry if main.on_failure is not None else None
    return Plan(
        steps=tuple(spec.graph.order),
        attempts=attempts,
        undo_attempts=undo,
        saga_attempts=again.attempts if again is not None else None,
        timeout_ms=main.timeout.ms if main.timeout is not None else None,
    )


# ---- words --------------------------------------------------------------------------------


def duration_text(seconds: float) -> str:
    """A duration for people: ``850 ms``, ``1.2 s``, ``2m 05s``, ``1h 02m``."""
    if seconds < 1:
        return f"{max(0, round(seconds * 1000))} ms"
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _literal(ms: int) -> str:
    """A duration as the language writes it (``1s``, ``5m``, ``250ms``)."""
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _error_text(error: Any) -> str:
    if isinstance(error, Mapping):
        kind, message = error.get("type") or "error", error.get("message")
        return f"{kind}: {message}" if message else str(kind)
    return "" if error is None else str(error)


def _of(total: int | None, known: bool) -> str:
    if not known:
        return ""
    return "/∞" if total is None else f"/{total}"


# ---- the model ----------------------------------------------------------------------------


@dataclass(slots=True)
class Cancel:
    """A cancel request as journaled: why (``cancel`` or ``timeout``), by whom, whether it was ignored."""

    reason: str = "cancel"
    by: str | None = None
    ignored: bool = False


@dataclass(slots=True)
class _Extra:
    """What a step's row shows beyond its folded state."""

    first_start: float | None = None
    end: float | None = None
    undo_start: float | None = None
    undo_end: float | None = None
    retry_ms: int | None = None  # waiting this long before the next attempt
    undo_retry_ms: int | None = None
    items: int | None = None  # a fan-out's item count
    done: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class RowView:
    """One step as a display row: every field already in words."""

    name: str
    status: str
    attempt: str
    elapsed: str
    note: str
    items: tuple[int, int] | None = None  # (done, total) of a fan-out


class RunProgress:
    """The progress of one run: its folded state plus timings, attempt limits and the cancel's cause."""

    def __init__(self, run_id: str = "", plan: Plan | None = None) -> None:
        """Start from nothing; ``plan`` supplies the step order and the attempts the spec allows."""
        self.plan = plan or Plan()
        self.state = RunState(run_id)
        for name in self.plan.steps:
            self.state.step(name)
        self.extra: dict[str, _Extra] = {}
        self.cancel: Cancel | None = None
        self.resumed = False
        self.last: str | None = None  # the latest event in words

    @property
    def run_id(self) -> str:
        """The run's id."""
        return self.state.run_id

    def replay(self, events: Iterable[Event]) -> None:
        """Fold events that happened before this process watched (a resume), without words."""
        for ev in events:
            self._fold(ev)

    def apply(self, event: Event) -> str | None:
        """Fold one event; the event in words, or None when it adds nothing to read."""
        self._fold(event)
        words = _WORDS.get(event.kind)
        line = words(self, event) if words is not None else None
        if line is not None:
            self.last = line
        return line

    # ---- the fold ----------------------------------------------------------------------
    def _fold(self, ev: Event) -> None:
        if not self.state.run_id:
            self.state.run_id = ev.run_id
        kind = ev.kind
        if kind == "saga.retrying":
            self.extra.clear()
            apply(self.state, ev)
            for name in self.plan.steps:  # a new attempt starts from a clean slate
                self.state.step(name)
            return
        elif kind == "saga.cancel_requested":
            d = ev.data
            self.cancel = Cancel(str(d.get("reason") or "cancel"), d.get("by"), bool(d.get("ignored")))
        elif kind == "saga.resumed":
            self.resumed = True
        if ev.step is None:
            apply(self.state, ev)
            return
        x = self.extra.get(ev.step)
        if x is None:
            x = self.extra[ev.step] = _Extra()
        if ev.item is None:
            apply(self.state, ev)
            self._times(x, ev)
        else:
            self._item(x, ev, ev.item)

    @staticmethod
    def _times(x: _Extra, ev: Event) -> None:
        kind, t = ev.kind, ev.time
        if kind == "step.started":
            if x.first_start is None:
                x.first_start = t
            x.retry_ms = None
            if "items" in ev.data:
                x.items = int(ev.data["items"])
        elif kind == "step.retrying":
            x.retry_ms = int(ev.data.get("delay_ms", 0))
        elif kind in ("step.succeeded", "step.skipped") or (kind == "step.failed" and ev.data.get("final", True)):
            x.end = t
            x.retry_ms = None
        elif kind == "compensation.started":
            if x.undo_start is None:
                x.undo_start = t
            x.undo_retry_ms = None
        elif kind == "compensation.retrying":
            x.undo_retry_ms = int(ev.data.get("delay_ms", 0))
        elif kind == "compensation.succeeded" or (kind == "compensation.failed" and ev.data.get("final", True)):
            x.undo_end = t
            x.undo_retry_ms = None

    def _item(self, x: _Extra, ev: Event, item: int) -> None:
        # Counted by status change, so an item's retries and undo keep the counts exact.
        parent = self.state.step(ev.step or "")
        before = parent.items.get(item)
        was = before.status if before is not None else "pending"
        apply(self.state, ev)
        now = parent.items[item].status
        if was != now:
            x.done += (now in DONE_STATES) - (was in DONE_STATES)
            x.failed += (now == "failed") - (was == "failed")

    # ---- reading -----------------------------------------------------------------------
    def attempt_text(self, step: str, attempt: int, undo: bool = False) -> str:
        """``attempt 2/5`` (``/∞`` for a step retried forever; no ``/N`` when the plan does not know)."""
        limits = self.plan.undo_attempts if undo else self.plan.attempts
        total = limits.get(step)
        if total is not None and attempt > total:
            # Only a resume calls a step beyond its policy: the call in flight at a crash is made again.
            return f"attempt {attempt} (resumed)"
        return f"attempt {attempt}{_of(total, step in limits)}"

    def elapsed(self, now: float) -> float:
        """Seconds since the run started (until it ended, once it has)."""
        start = self.state.started_at
        if start is None:
            return 0.0
        return max(0.0, (self.state.ended_at or now) - start)

    def items(self, step: str) -> tuple[int, int] | None:
        """(done, total) of a fan-out step, None for other steps."""
        x = self.extra.get(step)
        return (x.done, x.items) if x is not None and x.items is not None else None

    def rows(self, now: float) -> list[RowView]:
        """The entry saga's steps (sub-saga steps under their caller) as display rows."""
        return [self._row(name, st, now) for name, st in self.state.steps.items() if "/" not in name]

    def _row(self, name: str, st: StepState, now: float) -> RowView:
        x = self.extra.get(name) or _Extra()
        attempt = self.attempt_text(name, st.attempts) if st.attempts and x.items is None else ""
        if st.status in ("compensating", "compensated", "compensation_failed") and st.compensation_attempts:
            attempt = "undo " + self.attempt_text(name, st.compensation_attempts, undo=True)
        spent = ""
        if x.first_start is not None:
            spent = duration_text((x.end if x.end is not None else now) - x.first_start)
        return RowView(name, _STATUS_WORDS.get(st.status, st.status), attempt, spent, _note(st, x), self.items(name))


_STATUS_WORDS = {
    "succeeded": "done",
    "compensating": "undoing",
    "compensated": "undone",
    "compensation_failed": "undo failed",
}


def _note(st: StepState, x: _Extra) -> str:
    if x.retry_ms is not None and st.status == "running":
        return f"retrying in {duration_text(x.retry_ms / 1000)}: {_error_text(st.error)}"
    if x.undo_retry_ms is not None and st.status == "compensating":
        return f"undo retrying in {duration_text(x.undo_retry_ms / 1000)}: {_error_text(st.error)}"
    if st.status == "skipped":
        return "its condition is false"
    if st.status in ("failed", "compensation_failed") and st.error is not None:
        return _error_text(st.error)
    if x.items is not None:
        failed = f", {x.failed} failed" if x.failed else ""
        return f"{x.done}/{x.items} items{failed}"
    if st.uncertain and st.status in ("compensating", "compensated"):
        return "interrupted: its outcome was uncertain"
    return ""


# ---- events in words ----------------------------------------------------------------------


def _where(ev: Event) -> str:
    return f"{ev.step}[{ev.item}]" if ev.item is not None else str(ev.step)


def _spent(start: float | None, ev: Event) -> str:
    return f" in {duration_text(ev.time - start)}" if start is not None and ev.time else ""


def _saga_started(p: RunProgress, ev: Event) -> str:
    attempt = int(ev.data.get("attempt") or 1)
    again = f" (whole-saga attempt {attempt}{_of(p.plan.saga_attempts, p.plan.saga_attempts is not None)})"
    name = ev.data.get("saga") or p.state.saga
    return f"run {ev.run_id}: " + (f"saga {name} started" if name else "started") + (again if attempt > 1 else "")


def _saga_resumed(p: RunProgress, ev: Event) -> str:
    return f"run {ev.run_id}: resumed here (it was {ev.data.get('status') or p.state.status})"


def _step_started(p: RunProgress, ev: Event) -> str | None:
    if ev.item is not None:
        return None  # the items' outcomes are told; their starts would drown them
    if "items" in ev.data:
        return f"{ev.step}: started, {ev.data['items']} items"
    attempt = ev.attempt or 1
    return f"{ev.step}: started" if attempt == 1 else f"{ev.step}: {p.attempt_text(ev.step or '', attempt)}"


def _step_succeeded(p: RunProgress, ev: Event) -> str:
    if ev.item is not None:
        counts = p.items(ev.step or "")
        return f"{_where(ev)}: done" + (f" ({counts[0]}/{counts[1]} items)" if counts else "")
    x = p.extra.get(ev.step or "")
    return f"{ev.step}: done" + _spent(x.first_start if x else None, ev)


def _step_failed(p: RunProgress, ev: Event) -> str | None:
    if not ev.data.get("final", True):
        return None  # step.retrying follows and says it all
    error = ev.data.get("error")
    if isinstance(error, Mapping) and error.get("type") == "Cancelled":
        return f"{_where(ev)}: interrupted" + (" (its outcome is uncertain)" if ev.data.get("uncertain") else "")
    tries = f" after {ev.attempt} attempts" if ev.attempt and ev.attempt > 1 else ""
    return f"{_where(ev)}: failed{tries}: {_error_text(error)}"


def _step_retrying(p: RunProgress, ev: Event) -> str:
    nxt = p.attempt_text(ev.step or "", (ev.attempt or 1) + 1)
    delay = duration_text(int(ev.data.get("delay_ms", 0)) / 1000)
    return f"{_where(ev)}: retrying in {delay} ({nxt}): {_error_text(ev.data.get('error'))}"


def _step_skipped(p: RunProgress, ev: Event) -> str:
    return f"{ev.step}: skipped (its condition is false)"


def _cause(p: RunProgress, reason: str | None) -> str:
    """Why a run is being stopped: ``saga timeout after 1s``, ``cancelled by ops@host``, ``cancelled``."""
    if reason == "timeout":
        ms = p.plan.timeout_ms
        return f"saga timeout after {_literal(ms)}" if ms else "saga timeout"
    by = p.cancel.by if p.cancel is not None else None
    return f"cancelled by {by}" if by else "cancelled"


def _cancel_requested(p: RunProgress, ev: Event) -> str:
    reason = str(ev.data.get("reason") or "cancel")
    by = p.cancel.by if p.cancel is not None else None
    head = f"{_cause(p, reason)}: stopping" if reason == "timeout" else "cancel requested" + (f" by {by}" if by else "")
    if ev.data.get("ignored"):
        return f"{head}: too late, the point of no return has passed; the run goes on forward"
    return head


def _saga_compensating(p: RunProgress, ev: Event) -> str:
    reason = ev.data.get("reason")
    if reason in ("cancel", "timeout"):
        return f"rolling back: {_cause(p, str(reason))}"
    return f"rolling back: {ev.data.get('step')} failed" if ev.data.get("step") else "rolling back"


def _undo_started(p: RunProgress, ev: Event) -> str | None:
    if ev.item is not None:
        return None
    attempt = ev.attempt or 1
    if attempt == 1:
        return f"undo {ev.step}: started"
    return f"undo {ev.step}: " + p.attempt_text(ev.step or "", attempt, undo=True)


def _undo_succeeded(p: RunProgress, ev: Event) -> str:
    x = p.extra.get(ev.step or "")
    return f"undo {_where(ev)}: done" + ("" if ev.item is not None else _spent(x.undo_start if x else None, ev))


def _undo_failed(p: RunProgress, ev: Event) -> str | None:
    if not ev.data.get("final", True):
        return None
    return f"undo {_where(ev)}: failed: {_error_text(ev.data.get('error'))}"


def _undo_retrying(p: RunProgress, ev: Event) -> str:
    nxt = p.attempt_text(ev.step or "", (ev.attempt or 1) + 1, undo=True)
    delay = duration_text(int(ev.data.get("delay_ms", 0)) / 1000)
    return f"undo {_where(ev)}: retrying in {delay} ({nxt}): {_error_text(ev.data.get('error'))}"


def _saga_retrying(p: RunProgress, ev: Event) -> str:
    total = p.plan.saga_attempts
    attempt = f"whole-saga attempt {ev.data.get('attempt')}{_of(total, total is not None)}"
    delay = duration_text(int(ev.data.get("delay_ms", 0)) / 1000)
    return f"rolled back cleanly; retrying the whole saga in {delay} ({attempt}): {_error_text(ev.data.get('error'))}"


def _ended(p: RunProgress, ev: Event) -> str:
    return f"run {ev.run_id}: {headline_outcome(p, p.state)} (took {duration_text(p.elapsed(ev.time))})"


_WORDS: dict[str, Callable[[RunProgress, Event], str | None]] = {
    "saga.started": _saga_started,
    "saga.resumed": _saga_resumed,
    "step.started": _step_started,
    "step.succeeded": _step_succeeded,
    "step.failed": _step_failed,
    "step.retrying": _step_retrying,
    "step.skipped": _step_skipped,
    "saga.cancel_requested": _cancel_requested,
    "saga.compensating": _saga_compensating,
    "compensation.started": _undo_started,
    "compensation.succeeded": _undo_succeeded,
    "compensation.failed": _undo_failed,
    "compensation.retrying": _undo_retrying,
    "saga.retrying": _saga_retrying,
    "saga.completed": _ended,
    "saga.compensated": _ended,
    "saga.cancelled": _ended,
    "saga.aborted": _ended,
    "saga.stuck": _ended,
}


# ---- how a run ended ----------------------------------------------------------------------


def headline_outcome(p: RunProgress, state: RunState) -> str:
    """How the run stands, in words: ``completed``, ``cancelled: saga timeout after 1s``, ``cancelled by ops``."""
    reason = state.reason or (p.cancel.reason if p.cancel is not None else None)
    if state.status == "cancelled":
        cause = _cause(p, reason)
        return cause if cause.startswith("cancelled") else f"cancelled: {cause}"
    if state.status == "stuck" and reason in ("cancel", "timeout"):
        return f"stuck ({_cause(p, reason)} after the point of no return)"
    return state.status


def headline(p: RunProgress, state: RunState | None = None) -> str:
    """The summary's first line: ``run ID: OUTCOME``; ``state`` (the run's full fold) wins over the watched one."""
    state = state or p.state
    return f"run {state.run_id or p.run_id}: {headline_outcome(p, state)}"


def summary_details(p: RunProgress, state: RunState | None = None) -> list[str]:
    """The summary's further lines: what failed or was interrupted, with what error, what was undone."""
    state = state or p.state
    lines: list[str] = []
    stopped = state.reason in ("cancel", "timeout") and state.status in ("cancelled", "aborted", "stuck")
    if state.failed_step is not None:
        if stopped:
            lines.append(f"interrupted: {state.failed_step}")
        else:
            lines.append(f"failed step: {state.failed_step}")
    if state.error is not None and state.status != "completed" and not stopped:
        lines.append(f"error: {_error_text(state.error)}")
    if state.compensation_path:
        lines.append("compensated: " + ", ".join(state.compensation_path))
    broken = [n for n, s in state.steps.items() if s.status == "compensation_failed"]
    if broken:
        lines.append("compensation failed: " + ", ".join(broken))
    return lines


class Board:
    """The progress of every run one listener sees, by run id (``resume --all`` drives several in turn)."""

    def __init__(self, plan: Plan | Callable[[str], Plan] | None = None) -> None:
        """``plan``: one plan for every run, or a function giving each run's plan by its id."""
        self._plan = plan
        self.runs: dict[str, RunProgress] = {}

    def watch(self, run_id: str, plan: Plan | None, past: Iterable[Event] = ()) -> RunProgress:
        """Follow ``run_id`` with ``plan``, starting from the events it journaled before (a resume)."""
        p = self.runs[run_id] = RunProgress(run_id, plan)
        p.replay(past)
        return p

    def progress(self, run_id: str) -> RunProgress:
        """The progress of ``run_id`` (created, with its plan, on first use)."""
        found = self.runs.get(run_id)
        if found is None:
            plan = self._plan(run_id) if callable(self._plan) else self._plan
            found = self.runs[run_id] = RunProgress(run_id, plan)
        return found

    def apply(self, event: Event) -> tuple[RunProgress, str | None]:
        """Fold one event into its run's progress; that progress and the event in words."""
        p = self.progress(event.run_id)
        return p, p.apply(event)
