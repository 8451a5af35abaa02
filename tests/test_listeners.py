"""Listeners are passive: a run with listeners attached is indistinguishable from one without.

Every scenario runs the same spec twice, once quiet and once with a listener
that records what it is told, and compares the results, the journals, the
folded states and the handler calls; the listener must have seen every event,
in journal order. The scenarios: plain async handlers (no ``ctx``), retries,
failures and compensation, expression errors, parallel steps under a
Coordinator, cancellation inline, in tasks and during a backoff, and resume
from a journal cut at a crash point.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from interp_kit import spec_of

from sagalang.context import Failure
from sagalang.coordinator import Coordinator
from sagalang.events import Event
from sagalang.interpreter import RunResult, resume, run
from sagalang.journal.memory import MemoryStore
from sagalang.plugins import Registry
from sagalang.state import fold

pytestmark = pytest.mark.filterwarnings("error")

RID = "r1"
CANCELLED = {"type": "Cancelled", "message": "cancelled while running", "names": ["Cancelled"]}


def noop(ev: Event) -> None:
    """A listener that does nothing."""


def listeners_for(quiet: bool) -> tuple[Callable[[Event], None], ...]:
    return () if quiet else (noop,)


class Handlers:
    """Plain async handlers (no ``ctx``) that log every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.undos: list[tuple[str, Any]] = []
        self.fail_left: dict[str, int] = {}
        self.fail_kind: dict[str, str] = {}
        self.entered: set[str] = set()
        self.succeeded: dict[str, asyncio.Event] = {}  # flaky steps that have succeeded, by tag
        self.registry = Registry()
        h = self

        def success_of(tag: str) -> asyncio.Event:
            return h.succeeded.setdefault(tag, asyncio.Event())

        async def add(x: Any, y: Any = 0) -> dict[str, Any]:
            h.calls.append(("add", x, y))
            await asyncio.sleep(0)
            return {"value": x + y}

        async def pair(left: Any, right: Any) -> dict[str, Any]:
            h.calls.append(("pair", left, right))
            # A tuple inside: both paths must turn it into a list.
            return {"items": (left, right), "sum": left + right}

        async def wrap(obj: Any, items: list[Any], tag: str) -> dict[str, Any]:
            h.calls.append(("wrap", tag))
            return {"obj": obj, "items": items, "tag": tag, "nested": {"k": [1, {"z": None}]}}

        async def listing(n: int) -> list[Any]:
            h.calls.append(("listing", n))
            return [n, str(n), [n], {"n": n}]

        async def flaky(tag: str, x: Any = 0) -> dict[str, Any]:
            h.calls.append(("flaky", tag))
            await asyncio.sleep(0)
            if h.fail_left.get(tag, 0) > 0:
                h.fail_left[tag] -= 1
                kind = h.fail_kind.get(tag, "conn")
                if kind == "conn":
                    raise ConnectionError(f"{tag}: link down")
                if kind == "busy":
                    raise Failure("q.Busy", f"{tag} busy", retryable=True)
                if kind == "declined":
                    raise Failure("q.Declined", f"{tag} declined", retryable=False)
                if kind == "value":
                    raise ValueError(f"{tag}: bad value")
                raise AssertionError(kind)
            success_of(tag).set()
            return {"value": x, "tag": tag}

        async def after(tag: str, x: Any, other: str) -> dict[str, Any]:
            # Finishes only once the flaky step ``other`` has succeeded: the order the test needs.
            h.calls.append(("after", tag))
            await success_of(other).wait()
            return {"value": x, "tag": tag}

        async def slow(tag: str, x: Any, delay: float) -> dict[str, Any]:
            h.calls.append(("slow", tag))
            h.entered.add(tag)
            await asyncio.sleep(delay)
            return {"value": x, "tag": tag}

        async def block(tag: str) -> dict[str, Any]:
            h.calls.append(("block", tag))
            h.entered.add(tag)
            await asyncio.sleep(30)
            return {"tag": tag}

        async def bad(kind: str) -> Any:
            h.calls.append(("bad", kind))
            return object() if kind == "object" else float("nan")

        async def undo(tag: str, ref: Any = None) -> None:
            h.undos.append((tag, ref))

        for name, fn in {
            "q.add": add,
            "q.pair": pair,
            "q.wrap": wrap,
            "q.listing": listing,
            "q.flaky": flaky,
            "q.slow": slow,
            "q.after": after,
            "q.block": block,
            "q.bad": bad,
            "q.undo": undo,
        }.items():
            self.registry.add(name, fn)


@dataclasses.dataclass
class Outcome:
    result: RunResult
    events: list[Event]
    h: Handlers
    heard: list[Event] | None = None  # what the listener was told (None: no listener)


# ---- comparison helpers ---------------------------------------------------------------


ANY_OF = "<one of the steps failed at the same moment>"


def ev_view(events: list[Event], either: frozenset[str] = frozenset()) -> list[tuple[Any, ...]]:
    """What must match between the two paths: everything but the time (and run id, checked apart).

    ``either``: steps that failed in the same loop iteration; which of them a saga-level
    event names depends on the iteration order of ``asyncio.wait``'s done set, on both paths.
    """
    out = []
    for e in events:
        data = dict(e.data)
        if e.step is None and data.get("step") in either:
            data["step"] = ANY_OF
        out.append((e.kind, e.seq, e.step, e.item, e.attempt, data, e.epoch))
    return out


def strip_times(obj: Any, either: frozenset[str] = frozenset()) -> Any:
    if isinstance(obj, dict):
        return {
            k: ANY_OF if k == "failed_step" and v in either else strip_times(v, either)
            for k, v in obj.items()
            if not k.endswith("_at")
        }
    if isinstance(obj, list):
        return [strip_times(v, either) for v in obj]
    return obj


def kinds(events: list[Event], step: str | None = None) -> list[str]:
    return [f"{e.kind}:{e.step}" if e.step else e.kind for e in events if step is None or e.step == step]


def assert_consistent(o: Outcome, rid: str = RID) -> None:
    """One run on its own: seqs contiguous, run ids right, and the state is the journal's fold."""
    assert [e.seq for e in o.events] == list(range(1, len(o.events) + 1))
    assert {e.run_id for e in o.events} == {rid}
    assert all(isinstance(e.time, float) and e.time > 0 for e in o.events)
    assert fold(o.events).to_json() == o.result.state.to_json()


def assert_same(q: Outcome, n: Outcome, *, rid: str = RID, either: frozenset[str] = frozenset()) -> None:
    """The quiet run ``q`` and the run ``n`` with a listener are indistinguishable."""
    assert_consistent(q, rid)
    assert_consistent(n, rid)
    if n.heard is not None:
        assert [e.seq for e in n.heard if e.run_id == rid] == [e.seq for e in n.events]
    assert (q.result.run_id, q.result.status) == (n.result.run_id, n.result.status)
    assert q.result.output == n.result.output
    assert q.result.error == n.result.error
    assert ev_view(q.events, either) == ev_view(n.events, either)
    assert strip_times(q.result.state.to_json(), either) == strip_times(n.result.state.to_json(), either)
    assert q.h.calls == n.h.calls
    assert q.h.undos == n.h.undos


async def run_one(
    tmp_path: Path,
    text: str,
    *,
    quiet: bool,
    data: dict[str, Any] | None = None,
    setup: Callable[[Handlers], None] | None = None,
) -> Outcome:
    h = Handlers()
    if setup is not None:
        setup(h)
    spec = spec_of(tmp_path, text, h.registry, name=f"{'quiet' if quiet else 'heard'}.saga")
    store = MemoryStore()
    heard: list[Event] = []
    listeners = () if quiet else (heard.append,)
    result = await run(spec, data or {}, store=store, registry=h.registry, run_id=RID, listeners=listeners)
    return Outcome(result, await store.events(RID), h, None if quiet else heard)


def run_both(
    tmp_path: Path,
    text: str,
    *,
    data: dict[str, Any] | None = None,
    setup: Callable[[Handlers], None] | None = None,
) -> tuple[Outcome, Outcome]:
    async def main() -> tuple[Outcome, Outcome]:
        q = await run_one(tmp_path, text, quiet=True, data=data, setup=setup)
        n = await run_one(tmp_path, text, quiet=False, data=data, setup=setup)
        return q, n

    return asyncio.run(main())


def step_events(o: Outcome, step: str) -> list[tuple[Any, ...]]:
    return [(e.kind, e.attempt, dict(e.data)) for e in o.events if e.step == step]


# ---- specs ----------------------------------------------------------------------------

LINEAR = """
saga lin {
    input { n: integer = 2 }
    step a { do q.add(x: input.n, y: 1) undo q.undo(tag: "a", ref: result) }
    step b { do q.pair(left: a.value, right: a.value * 2) undo q.undo(tag: "b", ref: result) }
    step c { do q.add(x: b.sum, y: b.items[1]) undo q.undo(tag: "c", ref: result) }
    step d { do q.wrap(obj: c, items: b.items, tag: "d-${c.value}") undo q.undo(tag: "d", ref: result) }
    step e { do q.listing(n: d.obj.value + len(d.items)) undo q.undo(tag: "e", ref: result) }
    output { total: e[0], wrapped: d, pair: b.items }
}
"""

RETRY_STEP = """
saga rt {
    step a { do q.add(x: 1) undo q.undo(tag: "a", ref: result) }
    step b {
        do q.flaky(tag: "b", x: a.value)
        undo q.undo(tag: "b", ref: result)
        retry attempts 3 backoff 1ms
    }
    step c { do q.add(x: b.value, y: 1) undo q.undo(tag: "c", ref: result) }
    output { c: c.value }
}
"""

RETRY_DEFAULTS = """
saga rt {
    defaults { retry attempts 3 backoff 1ms x2 max 2ms }
    step a { do q.add(x: 1) undo q.undo(tag: "a", ref: result) }
    step b { do q.flaky(tag: "b", x: a.value) undo q.undo(tag: "b", ref: result) }
    step c { do q.add(x: b.value, y: 1) undo q.undo(tag: "c", ref: result) }
    output { c: c.value }
}
"""

FAIL = """
saga fl {
    step a { do q.add(x: 1) undo q.undo(tag: "a", ref: result) }
    step b { do q.pair(left: a.value, right: 5) undo q.undo(tag: "b", ref: result) }
    readonly step r { do q.add(x: b.sum) }
    step c { do q.add(x: r.value, y: 1) undo q.undo(tag: "c", ref: result) }
    step d { do q.flaky(tag: "d", x: c.value) undo q.undo(tag: "d", ref: result) RETRY }
    step e { do q.add(x: d.value) undo q.undo(tag: "e", ref: result) }
}
"""

EXPR_FAIL = """
saga ex {
    step a { do q.pair(left: 1, right: 2) undo q.undo(tag: "a", ref: result) }
    step b { do q.add(x: EXPR) undo q.undo(tag: "b", ref: result) retry attempts 3 backoff 1ms }
    step c { do q.add(x: 1) undo q.undo(tag: "c", ref: result) }
}
"""

NOT_JSON = """
saga nj {
    step a { do q.add(x: 1) undo q.undo(tag: "a", ref: result) }
    step b { do q.bad(kind: "KIND") undo q.undo(tag: "b", ref: result) retry attempts 3 backoff 1ms }
}
"""

PARALLEL = """
saga par {
    input { n: integer = 0 }
    step a { do q.add(x: input.n, y: 1) undo q.undo(tag: "a", ref: result) }
    parallel {
        step b { do q.slow(tag: "b", x: a.value, delay: 0.01) undo q.undo(tag: "b", ref: result) }
        step c { do q.slow(tag: "c", x: a.value * 10, delay: 0) undo q.undo(tag: "c", ref: result) }
    }
    step d { do q.add(x: b.value, y: c.value) undo q.undo(tag: "d", ref: result) }
    output { total: d.value }
}
"""

PARALLEL_FAIL = """
saga pf {
    step a { do q.add(x: 1) undo q.undo(tag: "a", ref: result) }
    parallel {
        step b { do q.slow(tag: "b", x: a.value, delay: 0.01) undo q.undo(tag: "b", ref: result) }
        step c { do q.flaky(tag: "c", x: a.value) undo q.undo(tag: "c", ref: result) }
    }
    step d { do q.add(x: b.value, y: c.value) undo q.undo(tag: "d", ref: result) }
}
"""

SUBSAGA = """
saga outer {
    step a { do q.add(x: 1) undo q.undo(tag: "a", ref: result) }
    step pay { call inner(v: a.value) }
    step z { do q.add(x: pay.total, y: 1) undo q.undo(tag: "z", ref: result) }
    output { z: z.value }
}

saga inner {
    input { v: integer }
    step i1 { do q.add(x: input.v, y: 10) undo q.undo(tag: "i1", ref: result) }
    step i2 { do q.flaky(tag: "i2", x: i1.value) undo q.undo(tag: "i2", ref: result) }
    output { total: i2.value }
}
"""

CANCEL_LINEAR = """
saga cx {
    step a { do q.add(x: 1) undo q.undo(tag: "a", ref: result) }
    step b { do q.block(tag: "b") undo q.undo(tag: "b", ref: result) }
    step c { do q.add(x: 2) undo q.undo(tag: "c", ref: result) }
}
"""

CANCEL_PARALLEL = """
saga cp {
    step a { do q.add(x: 1) undo q.undo(tag: "a", ref: result) }
    parallel {
        step b { do q.block(tag: "b") undo q.undo(tag: "b", ref: result) }
        step c { do q.block(tag: "c") undo q.undo(tag: "c", ref: result) }
        step f { do q.add(x: a.value) undo q.undo(tag: "f", ref: result) }
    }
    step d { do q.add(x: 2) undo q.undo(tag: "d", ref: result) }
}
"""

CANCEL_BACKOFF = """
saga cb {
    step a { do q.add(x: 1) undo q.undo(tag: "a", ref: result) }
    step b { do q.flaky(tag: "b") undo q.undo(tag: "b", ref: result) retry attempts 3 backoff 10s }
    step c { do q.add(x: 2) undo q.undo(tag: "c", ref: result) }
}
"""


# ---- what the listener sees -------------------------------------------------------------


def test_a_listener_hears_every_event_in_journal_order(tmp_path: Path) -> None:
    q, n = run_both(tmp_path, LINEAR)
    assert_same(q, n)
    assert n.heard is not None
    assert [(e.kind, e.seq, e.step) for e in n.heard] == [(e.kind, e.seq, e.step) for e in n.events]
    assert kinds(n.heard) == [
        "saga.started",
        *(f"{kind}:{s}" for s in ("a", "b", "c", "d", "e") for kind in ("step.started", "step.succeeded")),
        "saga.completed",
    ]


def test_generated_run_id_used_in_idempotency_keys(tmp_path: Path) -> None:
    h = Handlers()
    spec = spec_of(tmp_path, LINEAR, h.registry)

    async def main() -> None:
        store = MemoryStore()
        result = await run(spec, {}, store=store, registry=h.registry)
        rid = result.run_id
        assert rid != RID and rid.startswith("lin-")
        started = [e for e in await store.events(rid) if e.kind == "step.started"]
        assert [e.data["idempotency_key"] for e in started] == [f"{rid}/{s}" for s in "abcde"]

    asyncio.run(main())


# ---- 1. a linear saga ------------------------------------------------------------------


def test_linear_saga_same_journal_and_state(tmp_path: Path) -> None:
    q, n = run_both(tmp_path, LINEAR, data={"n": 4})
    assert_same(q, n)
    assert q.result.status == "completed"
    # a = 5, b = {items: [5, 10], sum: 15}, c = 25, d wraps c, e lists 25 + 2
    assert q.result.output == {
        "total": 27,
        "wrapped": {"obj": {"value": 25}, "items": [5, 10], "tag": "d-25", "nested": {"k": [1, {"z": None}]}},
        "pair": [5, 10],
    }
    assert kinds(q.events) == [
        "saga.started",
        *[f"step.{k}:{s}" for s in "abcde" for k in ("started", "succeeded")],
        "saga.completed",
    ]
    started = [e for e in q.events if e.kind == "step.started"]
    assert [dict(e.data) for e in started] == [{"idempotency_key": f"{RID}/{s}"} for s in "abcde"]
    assert {e.attempt for e in q.events if e.step} == {1}
    assert [e.data["output"] for e in q.events if e.kind == "step.succeeded"][1] == {"items": [5, 10], "sum": 15}
    # The tuple in b's output became a list in the state too, on both paths.
    assert q.result.state.steps["b"].output == {"items": [5, 10], "sum": 15}
    assert n.result.state.steps["b"].output == {"items": [5, 10], "sum": 15}


def test_linear_saga_with_default_input(tmp_path: Path) -> None:
    q, n = run_both(tmp_path, LINEAR)
    assert_same(q, n)
    assert q.result.output["total"] == 17  # a = 3, b = [3, 6], c = 15, e = 15 + 2


# ---- 2. retries ----------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [RETRY_STEP, RETRY_DEFAULTS], ids=["step-retry", "defaults-retry"])
@pytest.mark.parametrize("kind", ["conn", "busy"])
def test_retryable_failure_twice_then_success(tmp_path: Path, spec: str, kind: str) -> None:
    def setup(h: Handlers) -> None:
        h.fail_left["b"] = 2
        h.fail_kind["b"] = kind

    q, n = run_both(tmp_path, spec, setup=setup)
    assert_same(q, n)
    assert q.result.status == "completed"
    assert q.result.output == {"c": 2}
    evs = step_events(q, "b")
    assert [(k, a) for k, a, _ in evs] == [
        ("step.started", 1),
        ("step.failed", 1),
        ("step.retrying", 1),
        ("step.started", 2),
        ("step.failed", 2),
        ("step.retrying", 2),
        ("step.started", 3),
        ("step.succeeded", 3),
    ]
    failed = [d for k, _, d in evs if k == "step.failed"]
    assert all(d["final"] is False and d["uncertain"] is False for d in failed)
    assert all(d["idempotency_key"] == f"{RID}/b" for k, _, d in evs if k == "step.started")
    assert q.result.state.steps["b"].attempts == 3


def test_step_retried_last_is_in_the_saga_output(tmp_path: Path) -> None:
    """Without an ``output`` block the saga's output is every step's: a step that succeeded on a retry too."""
    text = """
    saga ro {
        step a { do q.add(x: 1) undo q.undo(tag: "a", ref: result) }
        step b { do q.flaky(tag: "b", x: 7) undo q.undo(tag: "b", ref: result) retry attempts 2 backoff 1ms }
    }
    """

    def setup(h: Handlers) -> None:
        h.fail_left["b"] = 1

    q, n = run_both(tmp_path, text, setup=setup)
    assert n.result.output == {"a": {"value": 1}, "b": {"value": 7, "tag": "b"}}
    assert_same(q, n)


def test_retry_in_a_parallel_task(tmp_path: Path) -> None:
    """A step retried in a task of its own: the join step reads the retried step's output."""
    text = """
    saga pr {
        step a { do q.add(x: 1) undo q.undo(tag: "a", ref: result) }
        parallel {
            step b { do q.flaky(tag: "b", x: a.value) undo q.undo(tag: "b", ref: result) retry attempts 3 backoff 1ms }
            step c { do q.after(tag: "c", x: 5, other: "b") undo q.undo(tag: "c", ref: result) }
        }
        step d { do q.add(x: b.value, y: c.value) undo q.undo(tag: "d", ref: result) }
        output { d: d.value }
    }
    """

    def setup(h: Handlers) -> None:
        h.fail_left["b"] = 1
        h.fail_kind["b"] = "busy"

    q, n = run_both(tmp_path, text, setup=setup)
    assert n.result.status == "completed" and n.result.output == {"d": 6}
    assert_same(q, n)


@pytest.mark.parametrize("spec", [RETRY_STEP, RETRY_DEFAULTS], ids=["step-retry", "defaults-retry"])
def test_retries_exhausted_then_compensated(tmp_path: Path, spec: str) -> None:
    def setup(h: Handlers) -> None:
        h.fail_left["b"] = 5

    q, n = run_both(tmp_path, spec, setup=setup)
    assert_same(q, n)
    assert q.result.status == "compensated"
    evs = step_events(q, "b")
    assert [(k, a) for k, a, _ in evs] == [
        ("step.started", 1),
        ("step.failed", 1),
        ("step.retrying", 1),
        ("step.started", 2),
        ("step.failed", 2),
        ("step.retrying", 2),
        ("step.started", 3),
        ("step.failed", 3),
    ]
    assert evs[-1][2]["final"] is True
    assert q.h.undos == [("a", {"value": 1})]


# ---- 3. failure and compensation -------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "retry", "type_"),
    [
        ("declined", "", "q.Declined"),
        ("declined", "retry attempts 3 backoff 1ms", "q.Declined"),  # non-retryable: not retried
        ("value", "", None),
    ],
    ids=["failure", "failure-with-retry-policy", "plain-exception"],
)
def test_permanent_failure_compensates_in_reverse(tmp_path: Path, kind: str, retry: str, type_: str | None) -> None:
    def setup(h: Handlers) -> None:
        h.fail_left["d"] = 1
        h.fail_kind["d"] = kind

    q, n = run_both(tmp_path, FAIL.replace("RETRY", retry), setup=setup)
    assert_same(q, n)
    assert q.result.status == "compensated"
    assert q.events[-1].kind == "saga.compensated"
    failed = [e for e in q.events if e.kind == "step.failed"]
    assert [(e.step, e.attempt, e.data["final"], e.data["uncertain"]) for e in failed] == [("d", 1, True, False)]
    if type_ is not None:
        assert failed[0].data["error"]["type"] == type_
    assert q.result.error == failed[0].data["error"]
    # c, b, a undone in reverse completion order; the readonly step r has nothing to undo; e never ran.
    assert [t for t, _ in q.h.undos] == ["c", "b", "a"]
    assert q.h.undos[1] == ("b", {"items": [1, 5], "sum": 6})
    assert kinds(q.events)[-8:] == [
        "saga.compensating",
        "compensation.started:c",
        "compensation.succeeded:c",
        "compensation.started:b",
        "compensation.succeeded:b",
        "compensation.started:a",
        "compensation.succeeded:a",
        "saga.compensated",
    ]
    assert not [e for e in q.events if e.step == "e"]


def test_first_step_fails_nothing_to_compensate(tmp_path: Path) -> None:
    text = """
    saga one {
        step a { do q.flaky(tag: "a") undo q.undo(tag: "a", ref: result) }
        step b { do q.add(x: 1) undo q.undo(tag: "b", ref: result) }
    }
    """

    def setup(h: Handlers) -> None:
        h.fail_left["a"] = 1
        h.fail_kind["a"] = "declined"

    q, n = run_both(tmp_path, text, setup=setup)
    assert_same(q, n)
    assert q.result.status == "compensated"
    assert q.h.undos == []


def test_sub_saga_failure(tmp_path: Path) -> None:
    def setup(h: Handlers) -> None:
        h.fail_left["i2"] = 1
        h.fail_kind["i2"] = "declined"

    q, n = run_both(tmp_path, SUBSAGA, setup=setup)
    assert_same(q, n)
    assert q.result.status == "compensated"
    assert [t for t, _ in q.h.undos] == ["i1", "a"]


def test_sub_saga_success(tmp_path: Path) -> None:
    q, n = run_both(tmp_path, SUBSAGA)
    assert_same(q, n)
    assert q.result.status == "completed"
    assert q.result.output == {"z": 12}


# ---- 4. run-time failures outside the handler ---------------------------------------------


@pytest.mark.parametrize("expr", ["a.missing", "a.sum / 0", "a.items[5]", "a.sum.deeper"])
def test_argument_expression_failure(tmp_path: Path, expr: str) -> None:
    q, n = run_both(tmp_path, EXPR_FAIL.replace("EXPR", expr))
    assert_same(q, n)
    assert q.result.status == "compensated"
    assert q.result.error is not None
    assert q.result.error["type"] == "sagalang.ExpressionError"
    assert "step 'b': argument" in q.result.error["message"]
    assert [(k, a) for k, a, _ in step_events(q, "b")] == [("step.started", 1), ("step.failed", 1)]
    assert step_events(q, "b")[-1][2]["final"] is True
    # The handler was never called; a was undone.
    assert [c[0] for c in q.h.calls] == ["pair"]
    assert q.h.undos == [("a", {"items": [1, 2], "sum": 3})]


@pytest.mark.parametrize("kind", ["object", "nan"])
def test_output_that_is_not_json(tmp_path: Path, kind: str) -> None:
    q, n = run_both(tmp_path, NOT_JSON.replace("KIND", kind))
    assert_same(q, n)
    assert q.result.status == "compensated"
    assert q.result.error is not None and q.result.error["type"] == "sagalang.NotJSON"
    assert [(k, a) for k, a, _ in step_events(q, "b")] == [("step.started", 1), ("step.failed", 1)]


# ---- 5. parallel steps (in tasks), many runs at once ---------------------------


def test_parallel_runs_under_a_coordinator(tmp_path: Path) -> None:
    async def many(quiet: bool) -> tuple[dict[str, Outcome], Handlers]:
        h = Handlers()
        spec = spec_of(tmp_path, PARALLEL, h.registry, name=f"par-{quiet}.saga")
        store = MemoryStore()
        coord = Coordinator(store, h.registry, listeners=listeners_for(quiet))
        ids = [await coord.start(spec, {"n": i}, run_id=f"r{i}") for i in range(6)]
        results = await asyncio.wait_for(coord.wait_all(), 5)
        assert list(results) == ids
        # The handler log is shared by the six runs: compared as a whole below, not per run.
        blank = Handlers()
        out = {}
        for rid, res in results.items():
            out[rid] = Outcome(res, await store.events(rid), blank)
        return out, h

    async def main() -> tuple[tuple[dict[str, Outcome], Handlers], tuple[dict[str, Outcome], Handlers]]:
        return await many(True), await many(False)

    (quiet, hq), (heard, hn) = asyncio.run(main())
    for i in range(6):
        rid = f"r{i}"
        q, n = quiet[rid], heard[rid]
        assert q.result.status == "completed"
        assert q.result.output == {"total": (i + 1) * 11}
        assert_same(q, n, rid=rid)
        ks = kinds(q.events)
        # c (no delay) finishes before b; d starts only after both.
        assert ks.index("step.succeeded:c") < ks.index("step.succeeded:b") < ks.index("step.started:d")
    assert len(hq.calls) == 6 * 4
    assert sorted(hq.calls, key=repr) == sorted(hn.calls, key=repr)
    assert hq.undos == hn.undos == []


def test_parallel_failure_waits_for_siblings_then_compensates(tmp_path: Path) -> None:
    def setup(h: Handlers) -> None:
        h.fail_left["c"] = 1
        h.fail_kind["c"] = "declined"

    q, n = run_both(tmp_path, PARALLEL_FAIL, setup=setup)
    assert_same(q, n)
    assert q.result.status == "compensated"
    assert [t for t, _ in q.h.undos] == ["b", "a"]


# ---- 6. cancellation ------------------------------------------------------------------------


async def cancel_run(
    tmp_path: Path,
    text: str,
    quiet: bool,
    ready: Callable[[Handlers, MemoryStore], Awaitable[bool]],
    setup: Callable[[Handlers], None] | None = None,
) -> Outcome:
    h = Handlers()
    if setup is not None:
        setup(h)
    spec = spec_of(tmp_path, text, h.registry, name=f"cancel-{quiet}.saga")
    store = MemoryStore()
    coord = Coordinator(store, h.registry, listeners=listeners_for(quiet))
    rid = await coord.start(spec, {}, run_id=RID)
    for _ in range(1000):
        if await ready(h, store):
            break
        await asyncio.sleep(0.001)
    else:
        pytest.fail("the run never got to the point of cancelling")
    assert await coord.cancel(rid)
    result = await asyncio.wait_for(coord.wait(rid), 3)
    return Outcome(result, await store.events(rid), h)


def cancel_both(
    tmp_path: Path,
    text: str,
    ready: Callable[[Handlers, MemoryStore], Awaitable[bool]],
    setup: Callable[[Handlers], None] | None = None,
) -> tuple[Outcome, Outcome]:
    async def main() -> tuple[Outcome, Outcome]:
        return (
            await cancel_run(tmp_path, text, True, ready, setup),
            await cancel_run(tmp_path, text, False, ready, setup),
        )

    return asyncio.run(main())


def test_cancel_mid_step_inline(tmp_path: Path) -> None:
    async def ready(h: Handlers, store: MemoryStore) -> bool:
        return "b" in h.entered

    q, n = cancel_both(tmp_path, CANCEL_LINEAR, ready)
    assert_same(q, n)
    assert q.result.status == "cancelled"
    failed = [e for e in q.events if e.kind == "step.failed"]
    assert [(e.step, e.attempt, dict(e.data)) for e in failed] == [
        ("b", 1, {"error": CANCELLED, "uncertain": True, "final": True})
    ]
    assert q.result.state.steps["b"].uncertain
    # The uncertain step is undone too (its output unknown: None), then a.
    assert q.h.undos == [("b", None), ("a", {"value": 1})]
    assert "saga.cancel_requested" in kinds(q.events)
    assert q.events[-1].kind == "saga.cancelled"


def test_cancel_mid_step_in_tasks(tmp_path: Path) -> None:
    async def ready(h: Handlers, store: MemoryStore) -> bool:
        if not {"b", "c"} <= h.entered:
            return False
        # f (no wait) has finished as well, so the journal is settled before the cancel.
        return "step.succeeded:f" in kinds(await store.events(RID))

    q, n = cancel_both(tmp_path, CANCEL_PARALLEL, ready)
    # b and c end in the same loop iteration: which one the saga names as failed varies
    # from run to run on the normal path as well (set order), so either is accepted.
    assert_same(q, n, either=frozenset({"b", "c"}))
    assert q.result.state.failed_step in ("b", "c")
    assert q.result.status == "cancelled"
    failed = [e for e in q.events if e.kind == "step.failed"]
    assert sorted((e.step, e.attempt, e.data["uncertain"], e.data["final"]) for e in failed) == [
        ("b", 1, True, True),
        ("c", 1, True, True),
    ]
    assert all(e.data["error"] == CANCELLED for e in failed)
    assert sorted(t for t, _ in q.h.undos) == ["a", "b", "c", "f"]
    assert q.h.undos[-1] == ("a", {"value": 1})
    assert not [e for e in q.events if e.step == "d"]


def test_cancel_during_retry_backoff_after_a_failure(tmp_path: Path) -> None:
    def setup(h: Handlers) -> None:
        h.fail_left["b"] = 5

    async def ready(h: Handlers, store: MemoryStore) -> bool:
        return "step.retrying:b" in kinds(await store.events(RID))

    q, n = cancel_both(tmp_path, CANCEL_BACKOFF, ready, setup)
    assert_same(q, n)
    assert q.result.status == "cancelled"
    evs = step_events(q, "b")
    assert [(k, a) for k, a, _ in evs] == [
        ("step.started", 1),
        ("step.failed", 1),
        ("step.retrying", 1),
        ("step.failed", 1),
    ]
    assert evs[1][2]["final"] is False and evs[1][2]["uncertain"] is False
    assert evs[3][2]["final"] is True and evs[3][2]["uncertain"] is False
    assert evs[3][2]["error"]["type"] == "ConnectionError" or "ConnectionError" in evs[3][2]["error"]["names"]
    # b failed cleanly: only a is undone.
    assert q.h.undos == [("a", {"value": 1})]


def test_external_task_cancel_mid_step(tmp_path: Path) -> None:
    async def one(quiet: bool) -> Outcome:
        h = Handlers()
        spec = spec_of(tmp_path, CANCEL_LINEAR, h.registry, name=f"ext-{quiet}.saga")
        store = MemoryStore()
        task = asyncio.ensure_future(
            run(spec, {}, store=store, registry=h.registry, run_id=RID, listeners=listeners_for(quiet))
        )
        for _ in range(1000):
            if "b" in h.entered:
                break
            await asyncio.sleep(0.001)
        task.cancel()
        result = await asyncio.wait_for(task, 3)
        return Outcome(result, await store.events(RID), h)

    async def main() -> tuple[Outcome, Outcome]:
        return await one(True), await one(False)

    q, n = asyncio.run(main())
    assert_same(q, n)
    assert q.result.status == "cancelled"
    failed = [e for e in q.events if e.kind == "step.failed"]
    assert [(e.step, dict(e.data)) for e in failed] == [("b", {"error": CANCELLED, "uncertain": True, "final": True})]


# ---- 7. the journal read back, and resume --------------------------------------------------------


def test_the_journal_reads_back(tmp_path: Path) -> None:
    h = Handlers()
    spec = spec_of(tmp_path, LINEAR, h.registry)

    async def main() -> None:
        store = MemoryStore()
        result = await run(spec, {}, store=store, registry=h.registry, run_id=RID)
        events = await store.events(RID)
        assert len(events) == 12
        assert [e.seq for e in events] == list(range(1, 13))
        for ev in events:
            if ev.kind == "step.started":
                assert dict(ev.data) == {"idempotency_key": f"{RID}/{ev.step}"}
            elif ev.kind == "step.succeeded":
                assert ev.step is not None
                assert dict(ev.data) == {"output": result.state.steps[ev.step].output}
        # Reading from a seq on.
        assert await store.events(RID, after_seq=5) == events[5:]
        assert [e.seq for e in await store.events(RID, after_seq=5)] == list(range(6, 13))
        # Times never go backwards.
        times = [e.time for e in events]
        assert times == sorted(times)
        assert fold(events).to_json() == result.state.to_json()

    asyncio.run(main())


def test_resume_of_a_finished_run_is_its_fold(tmp_path: Path) -> None:
    h = Handlers()
    spec = spec_of(tmp_path, LINEAR, h.registry)

    async def main() -> None:
        store = MemoryStore()
        first = await run(spec, {"n": 1}, store=store, registry=h.registry, run_id=RID)
        before = len(await store.events(RID))
        again = await resume(RID, store=store, registry=h.registry)
        assert again.status == first.status == "completed"
        assert again.output == first.output
        assert again.state.to_json() == first.state.to_json()
        assert len(await store.events(RID)) == before  # nothing appended

    asyncio.run(main())


CRASH_POINTS = ["saga.started", "step.started:c", "step.succeeded:c", "step.started:e"]


async def crashed_copy(tmp_path: Path, quiet: bool, crash_after: str) -> tuple[MemoryStore, list[Event]]:
    """A store holding a run's journal cut right after ``crash_after`` (as if the process died there)."""
    h = Handlers()
    spec = spec_of(tmp_path, LINEAR, h.registry, name=f"crash-{quiet}.saga")
    full = MemoryStore()
    await run(spec, {"n": 3}, store=full, registry=h.registry, run_id=RID, listeners=listeners_for(quiet))
    k = kinds(await full.events(RID)).index(crash_after) + 1
    prefix = (await full.events(RID))[:k]
    rec = await full.get_run(RID)
    assert rec is not None
    store = MemoryStore()
    await store.create_run(dataclasses.replace(rec, status="running"))
    await store.append(RID, prefix)
    return store, prefix


@pytest.mark.parametrize("crash_after", CRASH_POINTS)
def test_coordinator_resume_from_a_crash_point(tmp_path: Path, crash_after: str) -> None:
    """Resumed without a lease, by a Coordinator, from a journal cut at a crash point."""

    async def one(quiet: bool) -> Outcome:
        store, _ = await crashed_copy(tmp_path, quiet, crash_after)
        h = Handlers()
        coord = Coordinator(store, h.registry, listeners=listeners_for(quiet))
        await coord.resume(RID)
        result = await asyncio.wait_for(coord.wait(RID), 3)
        return Outcome(result, await store.events(RID), h)

    async def main() -> tuple[Outcome, Outcome]:
        return await one(True), await one(False)

    q, n = asyncio.run(main())
    assert_same(q, n)
    assert q.result.status == "completed"
    assert q.result.output is not None and q.result.output["total"] == 22  # a 4, b [4, 8], c 20, e 20 + 2
    ks = kinds(q.events)
    assert ks[ks.index(crash_after) + 1] == "saga.resumed"
    if crash_after.startswith("step.started:"):
        # The step in flight at the crash is tried again: attempt 2, same key.
        s = crash_after.split(":")[1]
        assert [(k, a, d.get("idempotency_key")) for k, a, d in step_events(q, s)][-2:] == [
            ("step.started", 2, f"{RID}/{s}"),
            ("step.succeeded", 2, None),
        ]


@pytest.mark.parametrize("crash_after", CRASH_POINTS)
def test_resume_with_lease_from_a_crash_point(tmp_path: Path, crash_after: str) -> None:
    """``resume()`` (with a lease) from a journal cut at a crash point."""

    async def one(quiet: bool) -> Outcome:
        store, _ = await crashed_copy(tmp_path, quiet, crash_after)
        h = Handlers()
        result = await resume(RID, store=store, registry=h.registry)
        return Outcome(result, await store.events(RID), h)

    async def main() -> tuple[Outcome, Outcome]:
        return await one(True), await one(False)

    q, n = asyncio.run(main())
    # The resumed part runs under a lease (epoch 1).
    assert_same(q, n)
    assert q.result.status == "completed"
    resumed = kinds(q.events).index("saga.resumed")
    assert {e.epoch for e in q.events[resumed:]} == {1}
