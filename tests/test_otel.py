"""OpenTelemetry: spans per saga, step attempt and compensation (in-memory exporter); tracing from the CLI."""

from __future__ import annotations

import asyncio
import http.server
import importlib.util
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, ClassVar

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from sagalang.cli.tracing import exporters_wanted
from sagalang.context import Failure
from sagalang.events import Event
from sagalang.interpreter import run
from sagalang.journal.memory import MemoryStore
from sagalang.otel import OtelListener, TracingSetupError, from_environment
from sagalang.plugins import Registry
from sagalang.spec import load

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


# ---- handlers' spans nest under their step ------------------------------------------------------

NESTED = """\
saga nested version "1" {
    step pay {
        do t.pay()
        undo t.refund()
    }
    step fail { do t.fail() }
}
"""


def _nested_run(exporter: InMemorySpanExporter, tmp_path: Path, sync: bool) -> ReadableSpan:
    """Run NESTED (pay succeeds, fail fails: pay is undone); handlers start their own spans; the root span."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("shop")
    listener = OtelListener(tracer_provider=provider)

    def work(name: str) -> dict[str, str]:
        with tracer.start_as_current_span(name):
            return {"ok": name}

    async def pay() -> dict[str, str]:
        return work("card charged")

    async def refund() -> dict[str, str]:
        return work("card refunded")

    async def fail() -> None:
        raise Failure("t.Down", "down", retryable=False)

    registry = Registry()
    if sync:
        registry.add("t.pay", lambda: work("card charged"))
        registry.add("t.refund", lambda: work("card refunded"))
    else:
        registry.add("t.pay", pay)
        registry.add("t.refund", refund)
    registry.add("t.fail", fail)
    (tmp_path / "nested.saga").write_text(NESTED)
    spec = load(tmp_path / "nested.saga", registry)
    result = asyncio.run(
        run(
            spec,
            {},
            store=MemoryStore(),
            registry=registry,
            listeners=[listener],
            step_middleware=[listener.step_middleware],
        )
    )
    assert result.status == "compensated"
    (root,) = by_name(exporter.get_finished_spans(), "saga nested")
    return root


def _parent_of(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    (child,) = by_name(spans, name)
    assert child.parent is not None, f"{name} has no parent"
    (parent,) = [s for s in spans if s.context.span_id == child.parent.span_id]
    assert parent.context.trace_id == child.context.trace_id
    return parent


def test_an_async_handlers_spans_nest_under_its_step_and_undo(exporter: InMemorySpanExporter, tmp_path: Path) -> None:
    _nested_run(exporter, tmp_path, sync=False)
    spans = exporter.get_finished_spans()
    assert _parent_of(spans, "card charged").name == "step pay"
    assert _parent_of(spans, "card refunded").name == "compensate pay"


@pytest.mark.xfail(
    strict=True,
    reason="the runtime calls sync handlers with run_in_executor, which does not copy contextvars into the pool",
)
def test_a_sync_handlers_spans_nest_under_its_step(exporter: InMemorySpanExporter, tmp_path: Path) -> None:
    _nested_run(exporter, tmp_path, sync=True)
    spans = exporter.get_finished_spans()
    assert _parent_of(spans, "card charged").name == "step pay"
    assert _parent_of(spans, "card refunded").name == "compensate pay"


# ---- tracing from the OTEL_* environment ---------------------------------------------------------


def test_exporters_wanted_by_the_flag_and_the_environment() -> None:
    assert exporters_wanted(None, {}) is None
    assert exporters_wanted(None, {"OTEL_TRACES_EXPORTER": "none"}) is None
    assert exporters_wanted(None, {"OTEL_TRACES_EXPORTER": "otlp"}) == "otlp"
    assert exporters_wanted(True, {}) == "console"
    assert exporters_wanted(True, {"OTEL_TRACES_EXPORTER": "otlp,console"}) == "otlp,console"
    assert exporters_wanted(False, {"OTEL_TRACES_EXPORTER": "otlp"}) is None
    assert exporters_wanted(True, {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "true"}) is None


def test_from_environment_console_and_service_name(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES"):
        monkeypatch.delenv(name, raising=False)
    out = io.StringIO()
    tracing = from_environment("console", console=out, install=False)
    tracing.listener(ev("saga.started", 0, data={"saga": "order"}))
    tracing.listener(ev("saga.completed", 1))
    tracing.close()
    (span,) = _json_spans(out.getvalue())
    assert span["name"] == "saga order" and span["resource"]["attributes"]["service.name"] == "sagalang"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "shop")
    assert from_environment("none", install=False).provider.resource.attributes["service.name"] == "shop"
    with pytest.raises(TracingSetupError, match="unknown exporter 'zipkin'"):
        from_environment("console,zipkin", install=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon")
    with pytest.raises(TracingSetupError, match="is not grpc or http/protobuf"):
        from_environment("otlp", install=False)


def _json_spans(text: str) -> list[dict[str, Any]]:
    """The spans ConsoleSpanExporter wrote into ``text`` (JSON objects, one after another)."""
    decoder = json.JSONDecoder()
    spans, at = [], 0
    while True:
        at = text.find("{", at)
        if at < 0:
            return spans
        obj, at = decoder.raw_decode(text, at)
        spans.append(obj)


TRACED_SPEC = """\
saga traced version "1" {
    step reserve { do shop.reserve() undo shop.release() }
    step charge { do shop.charge() undo shop.refund() }
}
"""

TRACED_HANDLERS = """\
from opentelemetry import trace
from sagalang.plugins import handler

tracer = trace.get_tracer("shop")

@handler("shop.reserve")
async def reserve() -> dict:
    return {"id": 1}

@handler("shop.release")
async def release() -> None:
    return None

@handler("shop.charge")
async def charge() -> dict:
    with tracer.start_as_current_span("gateway call"):
        return {"charged": True}

@handler("shop.refund")
async def refund() -> None:
    return None
"""


def _cli(tmp_path: Path, *args: str, crash_after: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
    """``sagalang ARGS`` in a fresh process, in ``tmp_path``, with only the given OTEL_* variables.

    ``crash_after``: the process is killed after that many journal appends (``sagalang.testing.crash``).
    """
    (tmp_path / "shop.py").write_text(TRACED_HANDLERS)
    (tmp_path / "traced.saga").write_text(TRACED_SPEC)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "SAGALANG_"))}
    base.update(NO_COLOR="1", **env)
    command = ["sagalang"] if not crash_after else ["sagalang.testing.crash", str(crash_after)]
    return subprocess.run(
        [sys.executable, "-m", *command, *args],
        cwd=tmp_path,
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_run_traces_to_the_console_end_to_end(tmp_path: Path) -> None:
    args = ("run", "traced.saga", "--plugin", "shop.py", "--store", "memory:", "--id", "tr-1")
    proc = _cli(tmp_path, *args, OTEL_TRACES_EXPORTER="console", OTEL_SERVICE_NAME="checkout")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("run tr-1: completed\n")  # spans go to stderr, the result stays alone on stdout
    spans = {s["name"]: s for s in _json_spans(proc.stderr)}
    assert set(spans) == {"saga traced", "step reserve", "step charge", "gateway call"}
    root = spans["saga traced"]
    assert root["attributes"]["saga.id"] == "tr-1" and root["attributes"]["saga.status"] == "completed"
    assert root["resource"]["attributes"]["service.name"] == "checkout"
    for name in ("step reserve", "step charge"):
        assert spans[name]["parent_id"] == root["context"]["span_id"]
    # The handler's own span: a child of its step's span, in the run's trace.
    assert spans["gateway call"]["parent_id"] == spans["step charge"]["context"]["span_id"]
    assert {s["context"]["trace_id"] for s in spans.values()} == {root["context"]["trace_id"]}

    # --trace alone prints the spans too; --no-trace wins over the environment.
    proc = _cli(tmp_path, *args[:-1], "tr-2", "--trace")
    assert proc.returncode == 0 and "saga traced" in {s["name"] for s in _json_spans(proc.stderr)}
    proc = _cli(tmp_path, *args[:-1], "tr-3", "--no-trace", OTEL_TRACES_EXPORTER="console")
    assert proc.returncode == 0 and proc.stderr == ""


class _Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP receiver: keeps the body of every POST /v1/traces."""

    received: ClassVar[list[bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/v1/traces":
            self.received.append(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


def test_resume_exports_over_otlp_to_the_configured_endpoint(tmp_path: Path) -> None:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Collector.received.clear()
    try:
        store = f"sqlite:///{tmp_path}/journal.db"
        # [saga.started, reserve started]: the process dies with reserve in flight.
        proc = _cli(
            tmp_path, "run", "traced.saga", "--plugin", "shop.py", "--store", store, "--id", "o-1", crash_after=1
        )
        assert proc.returncode == -9, proc.stderr
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SERVICE_NAME": "ops"}
        proc = _cli(tmp_path, "resume", "o-1", "--plugin", "shop.py", "--store", store, **env)
        assert proc.returncode == 0, proc.stderr
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
    spans, services = [], set()
    for body in _Collector.received:
        request = ExportTraceServiceRequest.FromString(body)
        for resource_spans in request.resource_spans:
            attrs = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            services.add(attrs["service.name"])
            spans += [span for scope in resource_spans.scope_spans for span in scope.spans]
    assert services == {"ops"}
    steps = sorted(s.name for s in spans if not s.name.startswith("saga "))
    assert steps == ["gateway call", "step charge", "step reserve"]  # reserve again: it was in flight at the crash
    (root,) = [s for s in spans if s.name.startswith("saga ")]
    attrs = {a.key: a.value for a in root.attributes}
    assert attrs["saga.id"].string_value == "o-1" and attrs["saga.resumed"].bool_value is True
    assert {s.trace_id for s in spans} == {root.trace_id}


SHADOW = "raise ImportError('No module named opentelemetry')\n"


def test_without_opentelemetry_the_flag_gives_an_install_hint(tmp_path: Path) -> None:
    shadow = tmp_path / "shadow" / "opentelemetry"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text(SHADOW)
    (tmp_path / "plain.saga").write_text('saga plain version "1" { step a { do p.noop() } }\n')
    (tmp_path / "p.py").write_text(
        "from sagalang.plugins import handler\n\n@handler('p.noop')\nasync def noop() -> None:\n    return None\n"
    )
    args = ("run", "plain.saga", "--plugin", "p.py", "--store", "memory:", "--id", "n-1")
    path = {"PYTHONPATH": str(tmp_path / "shadow")}
    proc = _cli(tmp_path, *args, "--trace", **path)
    assert proc.returncode == 2
    assert proc.stderr == (
        "sagalang: error: --trace: tracing needs the OpenTelemetry SDK: pip install 'sagalang[otel]'\n"
    )
    proc = _cli(tmp_path, *args, OTEL_TRACES_EXPORTER="otlp", **path)
    assert proc.returncode == 0 and proc.stdout.startswith("run n-1: completed")
    assert proc.stderr.splitlines() == [
        "sagalang: note: OTEL_TRACES_EXPORTER is set, but tracing needs the OpenTelemetry SDK: "
        "pip install 'sagalang[otel]'; running without tracing"
    ]
