"""The run state as a fold over the journal."""

from __future__ import annotations

from sagalang.events import Event
from sagalang.state import STEP_STATES, RunState, StepState, apply, fold


def ev(
    seq: int,
    kind: str,
    step: str | None = None,
    item: int | None = None,
    attempt: int | None = None,
    data: dict[str, object] | None = None,
    **more: object,
) -> Event:
    """An event; saga events carry their ``step``/``attempt`` in ``data``."""
    return Event(kind, "r", seq, float(seq), step, item, attempt, {**(data or {}), **more})


def test_fold_follows_a_failed_and_compensated_run() -> None:
    events = [
        ev(1, "saga.started", saga="s", version="1", input={"a": 1}, attempt=1, steps=["a", "b", "c"]),
        ev(2, "step.started", "a", attempt=1, idempotency_key="r/a"),
        ev(3, "step.succeeded", "a", attempt=1, output={"id": 1}),
        ev(4, "step.started", "b", attempt=1, idempotency_key="r/b"),
        ev(
            5,
            "step.failed",
            "b",
            attempt=1,
            error={"type": "X", "message": "m", "names": ["X"]},
            uncertain=True,
            final=False,
        ),
        ev(6, "step.retrying", "b", attempt=1, delay_ms=10, error={"type": "X"}),
        ev(7, "step.started", "b", attempt=2, idempotency_key="r/b"),
        ev(
            8,
            "step.failed",
            "b",
            attempt=2,
            error={"type": "Y", "message": "m", "names": ["Y"]},
            uncertain=False,
            final=True,
        ),
        ev(9, "saga.compensating", data={"reason": "failure", "step": "b", "error": {"type": "Y"}}),
        ev(10, "compensation.started", "b", attempt=1),
        ev(11, "compensation.succeeded", "b", attempt=1),
        ev(12, "compensation.started", "a", attempt=1),
        ev(13, "compensation.succeeded", "a", attempt=1),
        ev(14, "saga.compensated", data={"step": "b", "error": {"type": "Y"}}),
    ]
    state = fold(events)
    assert state.status == "compensated"
    assert state.saga == "s" and state.input == {"a": 1}
    assert state.failed_step == "b" and state.reason == "failure"
    assert state.error == {"type": "Y"}
    assert state.steps["a"].status == "compensated" and state.steps["a"].output == {"id": 1}
    b = state.steps["b"]
    assert b.status == "compensated" and b.attempts == 2 and b.uncertain  # uncertain is sticky
    assert state.steps["c"].status == "pending"
    assert state.compensation_path == ["b", "a"]
    assert state.last_seq == 14 and state.terminal
    assert all(s.status in STEP_STATES for s in state.steps.values())


def test_incremental_fold_equals_whole_fold() -> None:
    events = [
        ev(1, "saga.started", saga="s", attempt=1),
        ev(2, "step.started", "f", attempt=1),
        ev(3, "step.started", "f", 0, 1),
        ev(4, "step.succeeded", "f", 0, 1, output=10),
        ev(5, "step.started", "f", 1, 1),
        ev(6, "step.succeeded", "f", 1, 1, output=11),
        ev(7, "step.succeeded", "f", output=[10, 11]),
        ev(8, "step.skipped", "g", reason="when"),
        ev(9, "saga.completed", output={"x": 1}),
    ]
    whole = fold(events)
    part = fold(events[:4])
    fold(events[4:], part)
    assert part.to_json() == whole.to_json()
    f = whole.steps["f"]
    assert f.output == [10, 11] and sorted(f.items) == [0, 1] and f.items[1].output == 11
    assert whole.steps["g"].status == "skipped"
    assert whole.status == "completed" and whole.output == {"x": 1}


def test_saga_retry_starts_a_clean_attempt_and_cancel_is_recorded() -> None:
    state = RunState("r")
    for e in [
        ev(1, "saga.started", saga="s", attempt=1),
        ev(2, "step.started", "a", attempt=1),
        ev(3, "step.failed", "a", attempt=1, error={"type": "X"}, final=True),
        ev(4, "saga.compensating", data={"reason": "failure", "step": "a"}),
        ev(5, "saga.retrying", attempt=2, input={"n": 2}),
        ev(6, "saga.started", saga="s", attempt=2),
        ev(7, "saga.cancel_requested", reason="cancel"),
    ]:
        apply(state, e)
    assert state.saga_attempt == 2 and state.input == {"n": 2}
    assert state.steps == {} and state.failed_step is None and state.status == "running"
    assert state.cancel_requested


def test_compensation_failure_and_unknown_events() -> None:
    state = fold(
        [
            ev(1, "saga.started", saga="s"),
            ev(2, "step.succeeded", "a", output=1),
            ev(3, "compensation.started", "a", attempt=1),
            ev(4, "compensation.failed", "a", attempt=1, error={"type": "E"}, final=False),
            ev(5, "compensation.retrying", "a", attempt=1, delay_ms=5),
            ev(6, "compensation.failed", "a", attempt=2, error={"type": "E2"}, final=True),
            ev(7, "some.future.event"),
            ev(8, "saga.aborted", data={"step": "b", "error": {"type": "F"}}),
        ]
    )
    assert state.steps["a"].status == "compensation_failed"
    assert state.steps["a"].error == {"type": "E2"}
    assert state.status == "aborted" and state.last_seq == 8


def test_empty_journal_is_a_queued_run() -> None:
    assert fold([]).status == "queued"
    assert StepState("x").to_json() == {"name": "x", "status": "pending", "attempts": 0}
