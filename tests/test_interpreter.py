"""Execution semantics (DESIGN §5) through the public API: run, events, compensation."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from interp_kit import Kit, go, kinds, spec_of, step

from sagalang.context import Failure
from sagalang.errors import SagaInputError
from sagalang.events import Event
from sagalang.interpreter import error_names, run
from sagalang.journal.memory import MemoryStore
from sagalang.state import fold

pytestmark = pytest.mark.filterwarnings("error")


def arun(coro: Any) -> Any:
    return asyncio.run(coro)


def saga(*body: str, head: str = "", name: str = "s") -> str:
    inner = "\n    ".join(body)
    return f"saga {name} {{\n    {head}\n    {inner}\n}}\n"


# ---- forward ------------------------------------------------------------------------


def test_linear_saga_completes_with_output_and_journal_first(tmp_path: Path) -> None:
    kit = Kit()
    spec = spec_of(
        tmp_path,
        saga(step("a"), step("b"), 'output { first: a.id, both: "${a.id}+${b.id}" }'),
        kit.registry,
    )
    store = MemoryStore()
    seen_before_call: list[list[str]] = []
    original = kit.registry.handlers["t.act"].func
    assert original is not None

    async def spy(ctx: Any, tag: str, value: Any = None) -> Any:
        # Journal first: the step's start is stored before its handler is called.
        seen_before_call.append(kinds(await store.events(ctx.saga_id)))
        return await original(ctx, tag, value)

    kit.registry.add("t.act", spy)
    result, events = arun(go(spec, kit, store=store))
    assert result.status == "completed"
    assert result.output == {"first": "a-id", "both": "a-id+b-id"}
    assert kinds(events) == [
        "saga.started",
        "step.started:a",
        "step.succeeded:a",
        "step.started:b",
        "step.succeeded:b",
        "saga.completed",
    ]
    assert seen_before_call[0][-1] == "step.started:a"
    assert seen_before_call[1][-1] == "step.started:b"
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    # The run state is the fold of the journal.
    assert fold(events).to_json() == result.state.to_json()


def test_independent_steps_run_concurrently_and_join(tmp_path: Path) -> None:
    kit = Kit()
    for t in ("b", "c", "d"):
        kit.sleep[t] = 0.05
    spec = spec_of(
        tmp_path, saga(step("a"), "parallel {", step("b"), step("c"), step("d"), "}", step("e")), kit.registry
    )
    result, _ = arun(go(spec, kit))
    assert result.status == "completed"
    assert kit.max_running == 3
    assert kit.did("do")[-1] == "e"
    assert set(kit.did("done")[1:4]) == {"b", "c", "d"}


def test_explicit_after_edges_form_a_dag(tmp_path: Path) -> None:
    kit = Kit()
    kit.sleep["slow"] = 0.05
    spec = spec_of(
        tmp_path,
        saga(
            step("root"),
            step("slow"),
            step("fast", extra="").replace("step fast", "step fast after root"),
            step("join").replace("step join", "step join after slow, fast"),
        ),
        kit.registry,
    )
    result, _ = arun(go(spec, kit))
    assert result.status == "completed"
    done = kit.did("done")
    assert done.index("fast") < done.index("slow") < done.index("join")


def test_sync_handlers_run_in_the_thread_pool(tmp_path: Path) -> None:
    kit = Kit()
    spec = spec_of(tmp_path, saga('readonly step a { do t.sync(tag: "a") }'), kit.registry)
    result, _ = arun(go(spec, kit))
    assert result.status == "completed"
    assert result.output == {"a": {"id": "a"}}
    assert kit.threads and kit.threads[0] != "MainThread"


def test_when_false_skips_and_dependents_see_null(tmp_path: Path) -> None:
    kit = Kit()
    spec = spec_of(
        tmp_path,
        saga(
            step("a"),
            step("b").replace("step b", "step b when input.go"),
            'step c { do t.act(tag: "c", value: default(b, "none")) undo t.undo(tag: "c") }',
            "output { b: b, c: c.value }",
            head="input { go: boolean = false }",
        ),
        kit.registry,
    )
    result, events = arun(go(spec, kit, fail_at=[]))
    assert result.status == "completed"
    assert result.output == {"b": None, "c": "none"}
    skipped = [e for e in events if e.kind == "step.skipped"]
    assert [(e.step, e.data["reason"]) for e in skipped] == [("b", "when")]
    assert result.state.steps["b"].status == "skipped"


# ---- failure and compensation -----------------------------------------------------------


def test_failure_compensates_completed_steps_in_reverse(tmp_path: Path) -> None:
    kit = Kit()
    spec = spec_of(tmp_path, saga(step("a"), step("b"), step("c"), step("d")), kit.registry)
    result, events = arun(go(spec, kit, fail_at=["c"]))
    assert result.status == "compensated"
    assert kit.did("undo") == ["b", "a"]  # c failed (nothing to undo), d never started
    assert result.state.failed_step == "c"
    assert result.error is not None and result.error["type"] == "sagalang.InjectedFailure"
    assert result.state.compensation_path == ["b", "a"]
    assert "step.started:d" not in kinds(events)
    assert kinds(events)[-1] == "saga.compensated"
    assert result.state.steps["d"].status == "pending"


def test_in_flight_siblings_finish_before_undo_starts(tmp_path: Path) -> None:
    kit = Kit()
    kit.sleep["slow"] = 0.1
    spec = spec_of(tmp_path, saga(step("a"), "parallel {", step("slow"), step("boom"), "}", step("z")), kit.registry)
    result, events = arun(go(spec, kit, fail_at=["boom"]))
    assert result.status == "compensated"
    ks = kinds(events)
    assert ks.index("step.succeeded:slow") < ks.index("saga.compensating")
    assert kit.did("undo") == ["slow", "a"]
    assert "z" not in kit.did("do")


def test_siblings_cancel_interrupts_and_compensates_uncertain(tmp_path: Path) -> None:
    kit = Kit()
    kit.sleep["slow"] = 5
    spec = spec_of(
        tmp_path,
        saga(step("a"), "parallel {", step("slow"), step("boom"), "}", head="on failure { siblings cancel }"),
        kit.registry,
    )
    result, events = arun(asyncio.wait_for(go(spec, kit, fail_at=["boom"]), 3))
    assert result.status == "compensated"
    slow = result.state.steps["slow"]
    assert slow.uncertain
    failed = next(e for e in events if e.kind == "step.failed" and e.step == "slow")
    assert failed.data["uncertain"] is True and failed.data["error"]["type"] == "Cancelled"
    assert kit.did("undo") == ["slow", "a"]
    undo_ctx = next(c for c in kit.contexts if c.compensating and c.step == "slow")
    assert undo_ctx.result is None  # outcome unknown: the undo finds what to do by key


def test_parallel_compensation_order_respects_dependencies(tmp_path: Path) -> None:
    kit = Kit()
    kit.undo_sleep["b"] = kit.undo_sleep["c"] = 0.02
    spec = spec_of(
        tmp_path,
        saga(
            step("a"),
            "parallel {",
            step("b"),
            step("c"),
            "}",
            step("d"),
            step("e"),
            head="compensation { order parallel }",
        ),
        kit.registry,
    )
    result, events = arun(go(spec, kit, fail_at=["e"]))
    assert result.status == "compensated"
    ks = kinds(events)
    done = {s: ks.index(f"compensation.succeeded:{s}") for s in "abcd"}
    start = {s: ks.index(f"compensation.started:{s}") for s in "abcd"}
    assert done["d"] < start["b"] and done["d"] < start["c"]
    assert done["b"] < start["a"] and done["c"] < start["a"]
    # b and c are independent: both started before either finished.
    assert max(start["b"], start["c"]) < min(done["b"], done["c"])


def test_compensation_that_keeps_failing_aborts(tmp_path: Path) -> None:
    kit = Kit()
    kit.undo_fail["a"] = 99
    spec = spec_of(
        tmp_path,
        saga(step("a"), step("b"), step("c"), head="compensation { retry attempts 3 backoff 1ms }"),
        kit.registry,
    )
    result, events = arun(go(spec, kit, fail_at=["c"]))
    assert result.status == "aborted"
    assert kit.did("undo") == ["b", "a", "a", "a"]
    assert result.state.steps["a"].status == "compensation_failed"
    assert kinds(events).count("compensation.retrying:a") == 2
    assert kinds(events)[-1] == "saga.aborted"


def test_compensation_retry_recovers(tmp_path: Path) -> None:
    kit = Kit()
    kit.undo_fail["a"] = 1
    spec = spec_of(tmp_path, saga(step("a"), step("b"), head="compensation { retry attempts 2 }"), kit.registry)
    result, _ = arun(go(spec, kit, fail_at=["b"]))
    assert result.status == "compensated"
    assert kit.did("undo") == ["a", "a"]


def test_failure_after_pivot_is_stuck_without_compensation(tmp_path: Path) -> None:
    kit = Kit()
    spec = spec_of(
        tmp_path,
        saga(
            step("a"),
            step("p", undo=False, head="pivot step"),
            step("after", undo=False, extra="retry attempts 2", head="retriable step"),
        ),
        kit.registry,
    )
    kit.fail["after"] = 5
    result, events = arun(go(spec, kit))
    assert result.status == "stuck"
    assert kit.did("undo") == []
    assert kit.did("do").count("after") == 2
    assert kinds(events)[-1] == "saga.stuck"
    assert result.state.failed_step == "after"


def test_failure_before_pivot_compensates(tmp_path: Path) -> None:
    kit = Kit()
    spec = spec_of(tmp_path, saga(step("a"), step("b"), step("p", undo=False, head="pivot step")), kit.registry)
    result, _ = arun(go(spec, kit, fail_at=["p"]))
    assert result.status == "compensated"
    assert kit.did("undo") == ["b", "a"]


def test_non_json_result_fails_without_retry_and_compensates(tmp_path: Path) -> None:
    kit = Kit()
    spec = spec_of(
        tmp_path,
        saga(step("a"), 'pivot step b { do t.bad(tag: "b") retry attempts 5 }'),
        kit.registry,
    )
    result, _ = arun(go(spec, kit))
    assert result.status == "compensated"
    assert kit.did("do").count("b") == 1
    assert result.error is not None and result.error["type"] == "sagalang.NotJSON"
    assert "object" in result.error["message"]
    assert kit.did("undo") == ["a"]


def test_non_retryable_failure_is_not_retried(tmp_path: Path) -> None:
    kit = Kit()
    kit.fail["b"] = 5
    kit.fail_with["b"] = Failure("t.Declined", "no", retryable=False)
    spec = spec_of(tmp_path, saga(step("a"), step("b", extra="retry attempts 5")), kit.registry)
    result, _ = arun(go(spec, kit))
    assert result.status == "compensated"
    assert kit.did("do").count("b") == 1


def test_output_schema_mismatch_is_a_permanent_failure(tmp_path: Path) -> None:
    kit = Kit()
    (tmp_path / "out.json").write_text(json.dumps({"type": "object", "required": ["missing"]}))
    spec = spec_of(
        tmp_path, saga(step("a"), step("b", extra='output schema "out.json" retry attempts 3')), kit.registry
    )
    result, _ = arun(go(spec, kit))
    assert result.status == "compensated"
    assert result.error is not None and result.error["type"] == "sagalang.OutputSchemaError"
    assert "missing" in result.error["message"]
    assert kit.did("do").count("b") == 1
    assert kit.did("undo") == ["a"]  # b's output was rejected: b counts as failed, not undone


# ---- retries ---------------------------------------------------------------------------


class FakeClock:
    """Records sleeps instead of sleeping; jitter draws 0.5."""

    def __init__(self) -> None:
        self.sleeps: list[float] = []
        self.now = 1000.0

    def time(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds

    def random(self) -> float:
        return 0.5


def test_backoff_timing_with_injected_clock(tmp_path: Path) -> None:
    kit = Kit()
    kit.fail["a"] = 5
    spec = spec_of(tmp_path, saga(step("a", extra="retry attempts 6 backoff 100ms x2 max 1s")), kit.registry)
    clock = FakeClock()
    result, events = arun(go(spec, kit, clock=clock))
    assert result.status == "completed"
    assert clock.sleeps == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0])
    retrying = [e.data["delay_ms"] for e in events if e.kind == "step.retrying"]
    assert retrying == [100, 200, 400, 800, 1000]
    assert result.state.steps["a"].attempts == 6


def test_full_jitter_uses_the_clock(tmp_path: Path) -> None:
    kit = Kit()
    kit.fail["a"] = 2
    spec = spec_of(tmp_path, saga(step("a", extra="retry attempts 3 backoff 100ms x3 jitter")), kit.registry)
    clock = FakeClock()
    result, _ = arun(go(spec, kit, clock=clock))
    assert result.status == "completed"
    assert clock.sleeps == pytest.approx([0.05, 0.15])


def test_retry_keeps_the_idempotency_key_and_counts_attempts(tmp_path: Path) -> None:
    kit = Kit()
    kit.fail["a"] = 2
    spec = spec_of(tmp_path, saga(step("a", extra="retry attempts 3")), kit.registry)
    result, _ = arun(go(spec, kit))
    ctxs = [c for c in kit.contexts if c.step == "a"]
    assert [c.attempt for c in ctxs] == [1, 2, 3]
    assert {c.idempotency_key for c in ctxs} == {f"{result.run_id}/a"}


class Timeout(Exception):
    pass


def test_retry_on_matches_namespaced_class_names(tmp_path: Path) -> None:
    kit = Kit()
    kit.fail["a"] = 2
    kit.fail_with["a"] = Timeout("slow")
    spec = spec_of(tmp_path, saga(step("a", extra="retry attempts 3 on t.Timeout")), kit.registry)
    result, _ = arun(go(spec, kit))
    assert result.status == "completed"
    assert kit.did("do").count("a") == 3


def test_retry_on_does_not_retry_other_errors(tmp_path: Path) -> None:
    kit = Kit()
    kit.fail["a"] = 2
    kit.fail_with["a"] = ValueError("bad")
    spec = spec_of(tmp_path, saga(step("a", extra="retry attempts 3 on t.Timeout"), step("b")), kit.registry)
    result, _ = arun(go(spec, kit))
    assert result.status == "compensated"
    assert kit.did("do").count("a") == 1
    assert result.error is not None and "t.ValueError" in result.error["names"]


def test_retry_except_never_retries_those(tmp_path: Path) -> None:
    kit = Kit()
    kit.fail["a"] = 2
    kit.fail_with["a"] = KeyError("k")
    spec = spec_of(tmp_path, saga(step("a", extra="retry attempts 3 except LookupError"), step("b")), kit.registry)
    result, _ = arun(go(spec, kit))
    assert result.status == "compensated"
    assert kit.did("do").count("a") == 1


def test_error_names() -> None:
    assert error_names(Timeout("x"), "payments") == ["Timeout", "payments.Timeout", "Exception"]
    assert error_names(KeyError("x")) == ["KeyError", "LookupError", "Exception"]
    assert error_names(Failure("payments.Declined")) == ["payments.Declined", "Declined"]


def test_defaults_apply_to_steps_without_their_own_policy(tmp_path: Path) -> None:
    kit = Kit()
    kit.fail["a"] = 2
    kit.fail["b"] = 2
    spec = spec_of(
        tmp_path,
        saga(step("a"), step("b", extra="retry attempts 1"), head="defaults { retry attempts 3 }"),
        kit.registry,
    )
    result, _ = arun(go(spec, kit))
    assert result.status == "compensated"
    assert kit.did("do").count("a") == 3
    assert kit.did("do").count("b") == 1


# ---- timeouts and cancellation -------------------------------------------------------------


def test_step_timeout_is_uncertain_and_compensated(tmp_path: Path) -> None:
    kit = Kit()
    kit.sleep["b"] = 5
    spec = spec_of(tmp_path, saga(step("a"), step("b", extra="timeout 50ms")), kit.registry)
    result, _events = arun(asyncio.wait_for(go(spec, kit), 3))
    assert result.status == "compensated"
    assert result.error is not None and result.error["type"] == "Timeout"
    assert result.state.steps["b"].uncertain
    assert kit.did("undo") == ["b", "a"]
    ctx = next(c for c in kit.contexts if c.step == "b" and not c.compensating)
    assert ctx.deadline is not None


def test_step_timeout_retried_when_policy_allows(tmp_path: Path) -> None:
    kit = Kit()
    kit.sleep["a"] = 0.2
    spec = spec_of(tmp_path, saga(step("a", extra="timeout 30ms retry attempts 2 on Timeout")), kit.registry)
    result, _ = arun(asyncio.wait_for(go(spec, kit), 3))
    assert result.status == "compensated"
    assert kit.did("do").count("a") == 2


def test_saga_timeout_cancels_and_compensates(tmp_path: Path) -> None:
    kit = Kit()
    kit.sleep["b"] = 5
    spec = spec_of(tmp_path, saga(step("a"), step("b"), step("c"), head="timeout 100ms"), kit.registry)
    result, events = arun(asyncio.wait_for(go(spec, kit), 3))
    assert result.status == "cancelled"
    assert kit.did("undo") == ["b", "a"]
    ks = kinds(events)
    assert "saga.cancel_requested" in ks
    comp = next(e for e in events if e.kind == "saga.compensating")
    assert comp.data["reason"] == "timeout"


def test_cancelling_the_task_cancels_the_saga(tmp_path: Path) -> None:
    kit = Kit()
    kit.sleep["b"] = 5

    async def main() -> Any:
        spec = spec_of(tmp_path, saga(step("a"), step("b"), step("c")), kit.registry)
        store = MemoryStore()
        task = asyncio.ensure_future(run(spec, {}, store=store, registry=kit.registry))
        while "b" not in kit.did("do"):
            await asyncio.sleep(0.01)
        task.cancel()
        return await task

    result = arun(asyncio.wait_for(main(), 3))
    assert result.status == "cancelled"
    assert kit.did("undo") == ["b", "a"]


# ---- fan-out and sub-sagas --------------------------------------------------------------------


def test_fan_out_respects_limit_and_collects_outputs(tmp_path: Path) -> None:
    kit = Kit()
    for i in range(6):
        kit.sleep[f"x{i}"] = 0.02
    spec = spec_of(
        tmp_path,
        saga(
            "step each for x in input.items limit 2 { do t.act(tag: x) undo t.undo(tag: x, ref: result.id) }",
            "output { ids: each }",
            head="input { items: list[string] }",
        ),
        kit.registry,
    )
    items = [f"x{i}" for i in range(6)]
    result, events = arun(go(spec, kit, {"items": items}))
    assert result.status == "completed"
    assert kit.max_running == 2
    assert [o["id"] for o in result.output["ids"]] == [f"{t}-id" for t in items]
    keys = {c.idempotency_key for c in kit.contexts}
    assert keys == {f"{result.run_id}/each/{i}" for i in range(6)}
    per_item = [e for e in events if e.kind == "step.succeeded" and e.item is not None]
    assert sorted(e.item for e in per_item) == list(range(6))


def test_fan_out_partial_failure_undoes_only_completed_items(tmp_path: Path) -> None:
    kit = Kit()
    kit.fail["x2"] = 1
    kit.sleep["x2"] = 0.03
    spec = spec_of(
        tmp_path,
        saga(
            step("first"),
            "step each for x in input.items limit 2 { do t.act(tag: x) undo t.undo(tag: x, ref: result.id) }",
            head="input { items: list[string] }",
        ),
        kit.registry,
    )
    result, _ = arun(go(spec, kit, {"items": ["x0", "x1", "x2", "x3", "x4"]}))
    assert result.status == "compensated"
    undone = kit.did("undo")
    assert undone[-1] == "first"
    assert set(undone[:-1]) == set(kit.did("done")) - {"first"}
    assert "x2" not in undone
    refs = {c.step: c.result for c in kit.contexts if c.compensating and c.item is not None}
    assert all(r is not None and r["id"].endswith("-id") for r in refs.values())


def test_sub_saga_steps_are_compensated_by_the_caller(tmp_path: Path) -> None:
    kit = Kit()
    text = saga(
        step("charge"),
        step("capture"),
        "output { charged: charge.id }",
        head="input { amount: number }",
        name="payment",
    ) + saga(
        step("reserve"),
        "step pay { call payment(amount: 5) }",
        step("ship"),
        "output { paid: pay.charged }",
        name="order",
    )
    path = tmp_path / "two.saga"
    path.write_text(text)
    from sagalang.spec import load

    spec = load(path, kit.registry, saga="order")
    result, events = arun(go(spec, kit, fail_at=["ship"]))
    assert result.status == "compensated"
    assert kit.did("undo") == ["capture", "charge", "reserve"]
    assert result.state.compensation_path == ["pay/capture", "pay/charge", "pay", "reserve"]
    assert "step.succeeded:pay/charge" in kinds(events)
    ok, _ = arun(go(spec, kit))
    assert ok.status == "completed" and ok.output == {"paid": "charge-id"}


def test_failure_inside_a_sub_saga_rolls_back_both(tmp_path: Path) -> None:
    kit = Kit()
    text = saga(step("charge"), step("capture"), name="payment") + saga(
        step("reserve"), "step pay { call payment() }", step("ship"), name="order"
    )
    (tmp_path / "two.saga").write_text(text)
    from sagalang.spec import load

    spec = load(tmp_path / "two.saga", kit.registry, saga="order")
    result, _ = arun(go(spec, kit, fail_at=["pay/capture"]))
    assert result.status == "compensated"
    assert kit.did("undo") == ["charge", "reserve"]
    assert result.state.failed_step == "pay"


# ---- input, secrets, whole-saga retry ------------------------------------------------------------


def test_input_is_validated_before_anything_is_journaled(tmp_path: Path) -> None:
    kit = Kit()
    spec = spec_of(tmp_path, saga(step("a"), head="input { qty: integer  sku: string }"), kit.registry)
    store = MemoryStore()
    with pytest.raises(SagaInputError) as info:
        arun(run(spec, {"qty": "many"}, store=store, registry=kit.registry))
    text = str(info.value)
    assert "input.qty" in text and "input: 'sku' is a required property" in text
    assert arun(store.list_runs()) == []


def test_defaults_applied_and_secrets_redacted_everywhere(tmp_path: Path) -> None:
    kit = Kit()
    kit.fail["b"] = 1
    kit.fail_with["b"] = Failure("t.Declined", "card 4111111111111111 declined")
    spec = spec_of(
        tmp_path,
        saga(
            'step a { do t.act(tag: "a", value: input.card) undo t.undo(tag: "a") }',
            step("b"),
            head='input { card: string secret  country: string = "NL" }',
        ),
        kit.registry,
    )
    result, events = arun(go(spec, kit, {"card": "4111111111111111"}))
    assert result.status == "compensated"
    blob = json.dumps([e.to_json() for e in events]) + json.dumps(result.state.to_json())
    assert "4111111111111111" not in blob
    assert "***" in blob
    started = events[0]
    assert started.data["input"] == {"card": "***", "country": "NL"}
    assert result.error is not None and result.error["message"] == "card *** declined"
    # The handler itself got the real value.
    assert ("do", "a") in kit.log


def test_whole_saga_retry_with_analyzer(tmp_path: Path) -> None:
    kit = Kit()
    seen: list[dict[str, Any]] = []

    def diagnose(error: dict[str, Any], input: dict[str, Any], attempt: int) -> dict[str, Any] | None:
        seen.append({"error": error["type"], "input": dict(input), "attempt": attempt})
        return {"size": "small"} if input["size"] == "huge" else None

    kit.registry.add("ops.diagnose", diagnose)
    spec = spec_of(
        tmp_path,
        saga(
            'step a { do t.act(tag: "a", value: input.size) undo t.undo(tag: "a") }',
            step("b").replace("step b", 'step b when input.size == "huge"'),
            step("c"),
            head="input { size: string }\n on failure { retry saga attempts 3 analyze ops.diagnose }",
        ),
        kit.registry,
    )
    result, events = arun(go(spec, kit, {"size": "huge"}, fail_at=["b"]))
    assert result.status == "completed"
    assert seen == [{"error": "sagalang.InjectedFailure", "input": {"size": "huge"}, "attempt": 1}]
    ks = kinds(events)
    assert ks.count("saga.started") == 2 and ks.count("saga.retrying") == 1
    assert ks.index("compensation.succeeded:a") < ks.index("saga.retrying")
    assert result.state.saga_attempt == 2
    assert kit.did("undo") == ["a"]


def test_whole_saga_retry_gives_up_when_analyzer_says_so(tmp_path: Path) -> None:
    kit = Kit()
    kit.registry.add("ops.never", lambda error: None)
    spec = spec_of(
        tmp_path,
        saga(step("a"), step("b"), head="on failure { retry saga attempts 3 analyze ops.never }"),
        kit.registry,
    )
    result, events = arun(go(spec, kit, fail_at=["b"]))
    assert result.status == "compensated"
    assert "saga.retrying" not in kinds(events)


# ---- listeners, middleware, step objects ---------------------------------------------------------


def test_listeners_and_middleware(tmp_path: Path) -> None:
    kit = Kit()
    spec = spec_of(tmp_path, saga(step("a"), step("b")), kit.registry)
    got: list[str] = []
    trace: list[str] = []

    async def alisten(ev: Event) -> None:
        got.append(ev.kind)

    def broken(ev: Event) -> None:
        raise RuntimeError("listener bug")

    async def saga_mw(call_next: Any, ctx: Any) -> Any:
        trace.append(f"saga>{ctx.saga}")
        result = await call_next(ctx)
        trace.append(f"saga<{result.status}")
        return result

    async def step_mw(call_next: Any, ctx: Any) -> Any:
        trace.append(f"step>{ctx.step}")
        out = await call_next(ctx)
        trace.append(f"step<{ctx.step}")
        return out

    result, events = arun(go(spec, kit, listeners=[alisten, broken], middleware=[saga_mw], step_middleware=[step_mw]))
    assert result.status == "completed"
    assert got == [e.kind for e in events]
    assert trace == ["saga>s", "step>a", "step<a", "step>b", "step<b", "saga<completed"]


def test_step_objects_provide_do_and_undo(tmp_path: Path) -> None:
    kit = Kit()
    calls: list[str] = []

    class Reserve:
        """A seed-style SagaStep."""

        async def execute(self, ctx: Any, sku: str) -> dict[str, str]:
            calls.append(f"execute {sku} {ctx.idempotency_key.rsplit('/', 1)[1]}")
            return {"rid": "r-" + sku}

        def compensate(self, ctx: Any, sku: str) -> None:
            calls.append(f"compensate {sku} {ctx.result['rid']}")

        def can_compensate(self) -> bool:
            return True

    kit.registry.add("inv.reserve", Reserve)
    spec = spec_of(tmp_path, saga('step r { use inv.reserve(sku: "A") }', step("b")), kit.registry)
    result, _ = arun(go(spec, kit, fail_at=["b"]))
    assert result.status == "compensated"
    assert calls == ["execute A r", "compensate A r-A"]


def test_fail_at_injects_a_permanent_failure(tmp_path: Path) -> None:
    kit = Kit()
    spec = spec_of(tmp_path, saga(step("a", extra="retry attempts 5"), step("b")), kit.registry)
    result, _ = arun(go(spec, kit, fail_at=["a"]))
    assert result.status == "compensated"
    assert kit.did("do") == []
    assert kit.did("undo") == []
