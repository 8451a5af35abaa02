"""OpenTelemetry listener: spans per saga, step attempt and compensation, checked with the in-memory exporter."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from sagalang.events import Event
from sagalang.otel import OtelListener

RUN = "r-42"


@pytest.fixture
def exporter() -> Iterator[InMemorySpanExporter]:
    """An in-memory exporter behind its own tracer provider (the global one is left alone)."""
    exp = InMemorySpanExporter()
    yield exp
    exp.clear()


def make_listener(exporter: InMemorySpanExporter) -> OtelListener:
    """A listener whose spans land in ``exporter``."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return OtelListener(tracer_provider=provider)


def ev(kind: str, t: float, step: str | None = None, **kw: Any) -> Event:
    """An event of run RUN at time ``t``."""
    data = kw.pop("data", {})
    return Event(kind, RUN, time=1_700_000_000 + t, step=step, data=data, **kw)


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    """Spans called ``name``, in end order."""
    return [s for s in spans if s.name == name]


def test_a_failed_saga_with_retry_and_compensation(exporter: InMemorySpanExporter) -> None:
    listener = make_listener(exporter)
    key_a, key_b = f"{RUN}/reserve", f"{RUN}/charge"
    for e in [
        ev("saga.started", 0, data={"saga": "order", "version": "1.0"}),
        ev("step.started", 1, "reserve", attempt=1, data={"idempotency_key": key_a}),
        ev("step.succeeded", 2, "reserve", attempt=1, data={"output": {"id": 7}}),
        ev("step.started", 3, "charge", attempt=1, data={"idempotency_key": key_b}),
        ev(
            "step.failed",
            4,
            "charge",
            attempt=1,
            data={"error": {"type": "Timeout", "message": "slow"}, "final": False},
        ),
        ev("step.retrying", 4, "charge", attempt=1, data={"delay": 0.1}),
        ev("step.started", 5, "charge", attempt=2, data={"idempotency_key": key_b}),
        ev("step.failed", 6, "charge", attempt=2, data={"error": {"type": "Declined", "message": "no"}}),
        ev("saga.compensating", 6, data={"reason": "failure", "step": "charge"}),
        ev("compensation.started", 7, "reserve", attempt=1),
        ev(
            "compensation.failed",
            8,
            "reserve",
            attempt=1,
            data={"error": {"type": "Busy", "message": "x"}, "final": False},
        ),
        ev("compensation.retrying", 8, "reserve", attempt=1),
        ev("compensation.started", 9, "reserve", attempt=2),
        ev("compensation.succeeded", 10, "reserve", attempt=2),
        ev("saga.compensated", 11, data={"step": "charge", "error": {"type": "Declined", "message": "no"}}),
    ]:
        listener(e)
    spans = exporter.get_finished_spans()
    saga = by_name(spans, "saga order")
    assert len(saga) == 1
    root = saga[0]
    assert root.attributes is not None
    assert root.attributes["saga.id"] == RUN
    assert root.attributes["saga.status"] == "compensated"
    assert root.attributes["saga.failed_step"] == "charge"
    assert root.attributes["saga.reason"] == "failure"
    assert root.status.status_code == StatusCode.ERROR
    assert root.start_time == 1_700_000_000 * 10**9
    assert root.end_time == 1_700_000_011 * 10**9
    assert [e.name for e in root.events] == ["step.retrying", "saga.compensating", "compensation.retrying"]

    reserve = by_name(spans, "step reserve")
    charge = by_name(spans, "step charge")
    assert len(reserve) == 1
    assert len(charge) == 2  # one span per attempt
    assert reserve[0].status.status_code == StatusCode.OK
    assert [s.attributes["saga.attempt"] for s in charge if s.attributes] == [1, 2]
    assert all(s.attributes and s.attributes["saga.idempotency_key"] == key_b for s in charge)
    assert reserve[0].attributes and reserve[0].attributes["saga.idempotency_key"] == key_a
    assert charge[0].attributes and charge[0].attributes["saga.final"] is False
    assert charge[1].status.status_code == StatusCode.ERROR
    assert charge[1].status.description == "Declined: no"
    assert [e.name for e in charge[1].events] == ["exception"]

    undo = by_name(spans, "compensate reserve")
    assert [s.status.status_code for s in undo] == [StatusCode.ERROR, StatusCode.OK]
    assert all(s.attributes and s.attributes["saga.compensation"] is True for s in undo)
    assert all(s.attributes and s.attributes["saga.idempotency_key"] == key_a for s in undo)

    # Every step and compensation span is a child of the saga span, in the same trace.
    for s in reserve + charge + undo:
        assert s.parent is not None
        assert s.parent.span_id == root.context.span_id
        assert s.context.trace_id == root.context.trace_id


def test_fan_out_items_nest_under_their_step_and_skips_are_marked(exporter: InMemorySpanExporter) -> None:
    listener = make_listener(exporter)
    listener(ev("saga.started", 0, data={"saga": "bulk"}))
    listener(ev("step.skipped", 1, "quote"))
    listener(ev("step.started", 1, "lines", attempt=1))
    for i in range(3):
        listener(ev("step.started", 2, "lines", item=i, attempt=1))
        listener(ev("step.succeeded", 3, "lines", item=i, attempt=1))
    listener(ev("step.succeeded", 4, "lines", attempt=1))
    listener(ev("saga.completed", 5, data={"output": {}}))
    spans = exporter.get_finished_spans()
    agg = [s for s in by_name(spans, "step lines") if s.attributes and "saga.item" not in s.attributes]
    items = [s for s in by_name(spans, "step lines") if s.attributes and "saga.item" in s.attributes]
    assert len(agg) == 1 and len(items) == 3
    assert {s.parent.span_id for s in items if s.parent} == {agg[0].context.span_id}
    assert sorted(s.attributes["saga.idempotency_key"] for s in items if s.attributes) == [
        f"{RUN}/lines/0",
        f"{RUN}/lines/1",
        f"{RUN}/lines/2",
    ]
    (skipped,) = by_name(spans, "step quote")
    assert skipped.attributes and skipped.attributes["saga.skipped"] is True
    (root,) = by_name(spans, "saga bulk")
    assert root.status.status_code == StatusCode.OK


def test_sub_saga_steps_nest_under_the_calling_step(exporter: InMemorySpanExporter) -> None:
    listener = make_listener(exporter)
    listener(ev("saga.started", 0, data={"saga": "bulk"}))
    listener(ev("step.started", 1, "pay", attempt=1, data={"saga": "payment"}))
    listener(ev("step.started", 2, "pay/charge", attempt=1))
    listener(ev("step.succeeded", 3, "pay/charge", attempt=1))
    listener(ev("step.succeeded", 4, "pay", attempt=1))
    listener(ev("saga.completed", 5))
    spans = exporter.get_finished_spans()
    (pay,) = by_name(spans, "step pay")
    (charge,) = by_name(spans, "step pay/charge")
    assert charge.parent is not None and charge.parent.span_id == pay.context.span_id
    assert charge.attributes and charge.attributes["saga.idempotency_key"] == f"{RUN}/pay/charge"


def test_resume_in_a_new_process_and_interrupted_runs(exporter: InMemorySpanExporter) -> None:
    # A fresh listener sees a run mid-way (the process that started it crashed).
    listener = make_listener(exporter)
    listener(ev("saga.resumed", 10, data={"saga": "order"}))
    listener(ev("step.started", 11, "ship", attempt=2))
    listener.close()
    spans = exporter.get_finished_spans()
    (root,) = by_name(spans, "saga order")
    assert root.attributes and root.attributes["saga.resumed"] is True
    assert root.attributes["saga.interrupted"] is True
    (ship,) = by_name(spans, "step ship")
    assert ship.attributes and ship.attributes["saga.interrupted"] is True
    assert ship.parent and ship.parent.span_id == root.context.span_id

    # Events of a run whose start this listener never saw still form one trace.
    exporter.clear()
    other = make_listener(exporter)
    other(ev("step.started", 1, "a", attempt=1))
    other(ev("saga.cancelled", 2))
    spans = exporter.get_finished_spans()
    (a,) = by_name(spans, "step a")
    assert a.attributes and a.attributes["saga.uncertain"] is True
    (root,) = by_name(spans, f"saga {RUN}")
    assert root.attributes and root.attributes["saga.status"] == "cancelled"
    assert root.status.status_code == StatusCode.ERROR


def load_tutorial_tracer() -> ModuleType:
    """docs/tutorial/trace_trip.py, the tracing example the docs show."""
    path = Path(__file__).resolve().parent.parent / "docs" / "tutorial" / "trace_trip.py"
    spec = importlib.util.spec_from_file_location("trace_trip_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_real_run_of_the_tutorial_saga(
    exporter: InMemorySpanExporter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIP_STATE", str(tmp_path / "bookings.json"))
    tracer = load_tutorial_tracer()
    result = tracer.trace(exporter)
    assert result.status == "completed"
    spans = exporter.get_finished_spans()
    (root,) = by_name(spans, "saga trip")
    assert root.attributes and root.attributes["saga.id"] == result.run_id
    assert root.attributes["saga.status"] == "completed"
    steps = sorted(s.name for s in spans if s.name.startswith("step "))
    assert steps == ["step charge", "step flight", "step itinerary", "step room"]
    for s in spans:
        if s is root:
            continue
        assert s.parent is not None and s.parent.span_id == root.context.span_id
        assert s.attributes and s.attributes["saga.id"] == result.run_id
        assert s.attributes["saga.idempotency_key"] == f"{result.run_id}/{s.name.split()[1]}"
        assert s.start_time is not None and root.start_time is not None and s.start_time >= root.start_time

    exporter.clear()
    failed = tracer.trace(exporter, destination="Atlantis")
    assert failed.status == "compensated"
    spans = exporter.get_finished_spans()
    (root,) = by_name(spans, "saga trip")
    assert root.status.status_code == StatusCode.ERROR
    assert root.attributes and root.attributes["saga.failed_step"] == "room"
    (room,) = by_name(spans, "step room")
    assert room.status.status_code == StatusCode.ERROR
    assert room.status.description == "rooms.SoldOut: no rooms left in Atlantis"
    (undo,) = by_name(spans, "compensate flight")
    assert undo.status.status_code == StatusCode.OK
    assert undo.attributes and undo.attributes["saga.idempotency_key"] == f"{failed.run_id}/flight"
    assert by_name(spans, "compensate room") == []  # a step that failed cleanly has nothing to undo
