"""sagalang.progress: a run's progress and its words, from hand-made events and from real runs' journals."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from sagalang.events import Event
from sagalang.interpreter import run
from sagalang.journal.memory import MemoryStore
from sagalang.plugins import Registry
from sagalang.progress import Board, Plan, RunProgress, duration_text, headline, plan_of, summary_details
from sagalang.spec import load

RUN = "r-1"
T0 = 1_700_000_000.0


def ev(kind: str, t: float = 0.0, step: str | None = None, **kw: Any) -> Event:
    """An event of run RUN, ``t`` seconds after T0."""
    return Event(kind, RUN, time=T0 + t, step=step, data=kw.pop("data", {}), **kw)


PLAN = Plan(
    steps=("reserve", "charge", "lines"),
    attempts={"reserve": 3, "charge": 5, "lines": 2},
    undo_attempts={"reserve": 4, "charge": 4, "lines": 4},
    timeout_ms=1000,
)
TIMEOUT = {"type": "payments.Timeout", "message": "gateway slow", "names": ["payments.Timeout"]}


def test_retries_read_attempt_n_of_n_and_the_next_delay() -> None:
    p = RunProgress(plan=PLAN)
    assert p.apply(ev("saga.started", 0, data={"saga": "order", "steps": ["reserve", "charge"]})) == (
        "run r-1: saga order started"
    )
    assert p.apply(ev("step.started", 0.1, "charge", attempt=1)) == "charge: started"
    assert p.apply(ev("step.failed", 0.2, "charge", attempt=1, data={"error": TIMEOUT, "final": False})) is None
    line = p.apply(ev("step.retrying", 0.2, "charge", attempt=1, data={"delay_ms": 200, "error": TIMEOUT}))
    assert line == "charge: retrying in 200 ms (attempt 2/5): payments.Timeout: gateway slow"
    row = {r.name: r for r in p.rows(T0 + 0.3)}["charge"]
    assert (row.status, row.attempt, row.note) == (
        "running",
        "attempt 1/5",
        "retrying in 200 ms: payments.Timeout: gateway slow",
    )
    assert row.elapsed == "200 ms"  # since its first attempt started
    assert p.apply(ev("step.started", 0.4, "charge", attempt=2)) == "charge: attempt 2/5"
    assert p.apply(ev("step.succeeded", 1.6, "charge", attempt=2)) == "charge: done in 1.5 s"
    row = {r.name: r for r in p.rows(T0 + 9)}["charge"]
    assert (row.status, row.attempt, row.elapsed, row.note) == ("done", "attempt 2/5", "1.5 s", "")
    # Rows keep the plan's order; steps that have not started are pending.
    assert [(r.name, r.status) for r in p.rows(T0 + 9)] == [
        ("reserve", "pending"),
        ("charge", "done"),
        ("lines", "pending"),
    ]
    assert p.elapsed(T0 + 2.5) == pytest.approx(2.5)


def test_without_a_plan_no_total_is_claimed_and_forever_reads_infinity() -> None:
    p = RunProgress()
    p.apply(ev("step.started", 0, "x", attempt=1))
    assert (
        p.apply(ev("step.retrying", 0, "x", attempt=1, data={"delay_ms": 1500})) == "x: retrying in 1.5 s (attempt 2): "
    )
    forever = RunProgress(plan=Plan(attempts={"x": None}))
    forever.apply(ev("step.started", 0, "x", attempt=7))
    assert forever.attempt_text("x", 7) == "attempt 7/∞"
    # The call in flight at a crash is made again on resume, beyond what the policy allows.
    assert RunProgress(plan=Plan(attempts={"x": 1})).attempt_text("x", 2) == "attempt 2 (resumed)"


def test_fan_out_items_done_out_of_total() -> None:
    p = RunProgress(plan=PLAN)
    p.apply(ev("saga.started", 0, data={"saga": "bulk"}))
    assert p.apply(ev("step.started", 0, "lines", attempt=1, data={"items": 3})) == "lines: started, 3 items"
    for i in range(3):
        assert p.apply(ev("step.started", 0.1, "lines", item=i, attempt=1)) is None  # starts are not told
    assert p.apply(ev("step.succeeded", 0.2, "lines", item=0, attempt=1)) == "lines[0]: done (1/3 items)"
    p.apply(ev("step.failed", 0.2, "lines", item=1, attempt=1, data={"error": TIMEOUT, "final": False}))
    line = p.apply(ev("step.retrying", 0.2, "lines", item=1, attempt=1, data={"delay_ms": 10, "error": TIMEOUT}))
    assert line == "lines[1]: retrying in 10 ms (attempt 2/2): payments.Timeout: gateway slow"
    p.apply(ev("step.started", 0.3, "lines", item=1, attempt=2))
    assert p.apply(ev("step.succeeded", 0.4, "lines", item=1, attempt=2)) == "lines[1]: done (2/3 items)"
    assert p.items("lines") == (2, 3)
    row = {r.name: r for r in p.rows(T0 + 1)}["lines"]
    assert row.items == (2, 3) and row.note == "2/3 items" and row.attempt == ""
    line = p.apply(ev("step.failed", 0.5, "lines", item=2, attempt=2, data={"error": TIMEOUT}))
    assert line == "lines[2]: failed after 2 attempts: payments.Timeout: gateway slow"
    assert {r.name: r for r in p.rows(T0 + 1)}["lines"].note == "2/3 items, 1 failed"
    # Undoing an item takes it out of the done count.
    p.apply(ev("compensation.started", 0.6, "lines", item=0, attempt=1))
    assert p.apply(ev("compensation.succeeded", 0.7, "lines", item=0, attempt=1)) == "undo lines[0]: done"
    assert p.items("lines") == (1, 3)


def test_a_saga_timeout_says_so_instead_of_a_cancelled_error() -> None:
    cancelled = {"type": "Cancelled", "message": "cancelled while running", "names": ["Cancelled"]}
    p = RunProgress(plan=PLAN)
    lines = [
        p.apply(e)
        for e in [
            ev("saga.started", 0, data={"saga": "order"}),
            ev("step.started", 0, "reserve", attempt=1),
            ev("step.succeeded", 0.1, "reserve", attempt=1),
            ev("step.started", 0.1, "charge", attempt=1),
            ev("step.failed", 1.0, "charge", attempt=1, data={"error": cancelled, "uncertain": True, "final": True}),
            ev("saga.cancel_requested", 1.0, data={"reason": "timeout"}),
            ev("saga.compensating", 1.0, data={"reason": "timeout", "step": "charge", "error": cancelled}),
            ev("compensation.started", 1.0, "charge", attempt=1),
            ev("compensation.succeeded", 1.1, "charge", attempt=1),
            ev("compensation.started", 1.1, "reserve", attempt=1),
            ev("compensation.succeeded", 1.2, "reserve", attempt=1),
            ev("saga.cancelled", 1.2, data={"reason": "timeout", "step": "charge", "error": cancelled}),
        ]
    ]
    assert [line for line in lines if line][4:] == [
        "charge: interrupted (its outcome is uncertain)",
        "saga timeout after 1s: stopping",
        "rolling back: saga timeout after 1s",
        "undo charge: started",
        "undo charge: done in 100 ms",
        "undo reserve: started",
        "undo reserve: done in 100 ms",
        "run r-1: cancelled: saga timeout after 1s (took 1.2 s)",
    ]
    assert headline(p) == "run r-1: cancelled: saga timeout after 1s"
    assert summary_details(p) == ["interrupted: charge", "compensated: charge, reserve"]
    assert {r.name: r for r in p.rows(T0 + 2)}["charge"].attempt == "undo attempt 1/4"


def test_a_users_cancel_names_who_asked() -> None:
    p = RunProgress(plan=PLAN)
    p.apply(ev("saga.started", 0, data={"saga": "order"}))
    assert p.apply(ev("saga.cancel_requested", 1, data={"reason": "cancel", "by": "ada@ops-1"})) == (
        "cancel requested by ada@ops-1"
    )
    assert p.apply(ev("saga.compensating", 1, data={"reason": "cancel"})) == "rolling back: cancelled by ada@ops-1"
    p.apply(ev("saga.cancelled", 2, data={"reason": "cancel"}))
    assert headline(p) == "run r-1: cancelled by ada@ops-1"
    assert summary_details(p) == []
    # Without the field (older journals) the words stay true.
    anonymous = RunProgress()
    anonymous.replay([ev("saga.cancel_requested", 1, data={"reason": "cancel"}), ev("saga.cancelled", 2)])
    assert headline(anonymous) == "run r-1: cancelled"


@pytest.mark.parametrize("ignored", [True, "the pivot had completed"])
def test_a_cancel_after_the_pivot_says_the_run_goes_forward(ignored: object) -> None:
    p = RunProgress()
    line = p.apply(ev("saga.cancel_requested", 1, data={"reason": "cancel", "by": "ada@ops-1", "ignored": ignored}))
    assert line == "cancel requested by ada@ops-1: too late, the point of no return has passed; the run goes on forward"
    p.apply(ev("saga.completed", 2, data={"output": {}}))
    assert headline(p) == "run r-1: completed"


def test_a_failure_summary_names_the_step_and_its_error() -> None:
    declined = {"type": "payments.Declined", "message": "card declined"}
    p = RunProgress(plan=PLAN)
    p.replay(
        [
            ev("saga.started", 0, data={"saga": "order"}),
            ev("step.started", 0, "reserve", attempt=1),
            ev("step.succeeded", 0, "reserve", attempt=1),
            ev("step.started", 0, "charge", attempt=1),
            ev("step.failed", 0, "charge", attempt=1, data={"error": declined}),
            ev("saga.compensating", 0, data={"reason": "failure", "step": "charge", "error": declined}),
            ev("compensation.started", 0, "reserve", attempt=1),
            ev("compensation.failed", 0, "reserve", attempt=1, data={"error": declined, "final": False}),
        ]
    )
    line = p.apply(ev("compensation.retrying", 0, "reserve", attempt=1, data={"delay_ms": 100, "error": declined}))
    assert line == "undo reserve: retrying in 100 ms (attempt 2/4): payments.Declined: card declined"
    assert p.apply(ev("saga.compensated", 3, data={"step": "charge", "error": declined})) == (
        "run r-1: compensated (took 3.0 s)"
    )
    assert summary_details(p) == ["failed step: charge", "error: payments.Declined: card declined"]


def test_a_resumed_run_continues_from_its_past() -> None:
    board = Board()
    past = [
        ev("saga.started", 0, data={"saga": "bulk"}),
        ev("step.started", 0, "lines", attempt=1, data={"items": 4}),
        ev("step.started", 0, "lines", item=0, attempt=1),
        ev("step.succeeded", 1, "lines", item=0, attempt=1),
    ]
    board.watch(RUN, PLAN, past)
    p, line = board.apply(ev("saga.resumed", 50, data={"status": "running"}))
    assert line == "run r-1: resumed here (it was running)"
    _, line = board.apply(ev("step.succeeded", 51, "lines", item=1, attempt=1))
    assert line == "lines[1]: done (2/4 items)"
    assert p.elapsed(T0 + 60) == pytest.approx(60)  # since the run started, before the crash
    other, _ = board.apply(Event("saga.resumed", "r-2", time=T0, data={"status": "compensating"}))
    assert other is not p and set(board.runs) == {RUN, "r-2"}


def test_a_whole_saga_retry_starts_the_rows_afresh() -> None:
    p = RunProgress(plan=Plan(steps=("a",), attempts={"a": 1}, saga_attempts=3))
    p.replay([ev("saga.started", 0), ev("step.started", 0, "a", attempt=1), ev("step.failed", 1, "a", attempt=1)])
    line = p.apply(ev("saga.retrying", 2, data={"attempt": 2, "delay_ms": 1000, "error": TIMEOUT}))
    assert line == (
        "rolled back cleanly; retrying the whole saga in 1.0 s (whole-saga attempt 2/3): payments.Timeout: gateway slow"
    )
    assert [(r.name, r.status, r.elapsed) for r in p.rows(T0 + 3)] == [("a", "pending", "")]
    assert p.apply(ev("saga.started", 3, data={"saga": "s", "attempt": 2})) == (
        "run r-1: saga s started (whole-saga attempt 2/3)"
    )


def test_durations_read_as_people_write_them() -> None:
    assert [duration_text(s) for s in (0.0004, 0.25, 1.25, 42, 125, 3 * 3600 + 120)] == [
        "0 ms",
        "250 ms",
        "1.2 s",
        "42 s",
        "2m 05s",
        "3h 02m",
    ]


SPEC = """\
saga outer version "1" {
    timeout 5m
    defaults { retry attempts 3 backoff 10ms }
    compensation { retry attempts 6 backoff 10ms }
    on failure { retry saga attempts 2 }
    step first { do t.act() undo t.undo() }
    step pay { call inner() }
    step last { do t.act() retry forever backoff 10ms }
}

saga inner version "1" {
    step charge { do t.act() undo t.undo() retry attempts 4 backoff 10ms }
    step note { do t.act() undo t.undo() }
}
"""


def _registry(calls: list[str]) -> Registry:
    registry = Registry()

    async def act() -> dict[str, int]:
        calls.append("act")
        return {"n": len(calls)}

    async def undo() -> None:
        return None

    registry.add("t.act", act)
    registry.add("t.undo", undo)
    return registry


def test_the_plan_comes_from_the_spec(tmp_path: Path) -> None:
    (tmp_path / "outer.saga").write_text(SPEC)
    spec = load(tmp_path / "outer.saga", _registry([]))
    plan = plan_of(spec)
    assert plan.steps == ("first", "pay", "last")
    assert dict(plan.attempts) == {"first": 3, "pay/charge": 4, "pay/note": 1, "last": None}
    assert plan.undo_attempts["first"] == 6 and plan.undo_attempts["pay/charge"] == 1
    assert (plan.saga_attempts, plan.timeout_ms) == (2, 300_000)


def test_a_real_run_journal_reads_as_words(tmp_path: Path) -> None:
    (tmp_path / "outer.saga").write_text(SPEC)
    calls: list[str] = []
    registry = _registry(calls)
    spec = load(tmp_path / "outer.saga", registry)
    board = Board(plan_of(spec))
    lines: list[str] = []

    def listen(event: Event) -> None:
        _, line = board.apply(event)
        if line is not None:
            lines.append(line)

    result = asyncio.run(run(spec, {}, store=MemoryStore(), registry=registry, run_id="w-1", listeners=[listen]))
    assert result.status == "completed"
    timeless = [re.sub(r" (in|\(took) [0-9.]+ m?s\)?$", "", line) for line in lines]
    assert timeless == [
        "run w-1: saga outer started",
        "first: started",
        "first: done",
        "pay: started",
        "pay/charge: started",
        "pay/charge: done",
        "pay/note: started",
        "pay/note: done",
        "pay: done",
        "last: started",
        "last: done",
        "run w-1: completed",
    ]
    # Sub-saga steps are told, but the table shows the entry saga's steps.
    assert [r.name for r in board.progress("w-1").rows(0)] == ["first", "pay", "last"]
    assert headline(board.progress("w-1"), result.state) == "run w-1: completed"
