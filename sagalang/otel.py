"""OpenTelemetry tracing for saga runs: a listener that turns journal events into spans.

Install the extra (``pip install 'sagalang[otel]'``), configure a tracer
provider as usual, and pass the listener to a run::

    from sagalang.otel import OtelListener
    listener = OtelListener()
    run(spec, input, listeners=[listener])

``OtelListener.step_middleware`` makes each call's span current while its
handler runs, so the spans a handler starts nest under its step. The CLI
(``run``, ``resume``, ``worker``) builds all of this from the standard
``OTEL_*`` environment variables with :func:`from_environment`.

Each run becomes one ``saga NAME`` span; each attempt of a step a child
``step NAME`` span; each attempt of an undo a ``compensate NAME`` span. Fan-out
items nest under their step, a sub-saga's steps (journaled as ``caller/step``)
under the calling step. Every span carries the saga id; step and compensation
spans carry the idempotency key too, so a trace can be joined with the
effects a handler recorded under that key. Span times are the journal's
event times, so spans are exact even when the listener lags behind.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import IO, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, Status, StatusCode, Tracer, TracerProvider

from .context import Context
from .events import Event
from .status import TERMINAL_EVENTS, RunStatus

__all__ = ["ATTR_PREFIX", "EXPORTERS", "OtelListener", "Tracing", "TracingSetupError", "from_environment"]

ATTR_PREFIX = "saga"

# Outcomes of a run that mean "the business operation did not happen": every end but completion.
_FAILED_OUTCOMES = frozenset(kind for kind, status in TERMINAL_EVENTS.items() if status != RunStatus.COMPLETED)

_Key = tuple[str, str, str, int | None]  # (run id, "step" | "compensate", step, item)


def _ns(t: float) -> int | None:
    """Event time (seconds since the epoch) in nanoseconds; None lets the SDK use now."""
    return int(t * 1_000_000_000) if t > 0 else None


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sagalang")
    except PackageNotFoundError:
        return "0+unknown"


def _error_of(data: Mapping[str, Any]) -> tuple[str, str]:
    """(type, message) of an event's ``error`` (a dict, or text from older journals)."""
    err = data.get("error")
    if isinstance(err, Mapping):
        return str(err.get("type") or "Error"), str(err.get("message") or "")
    if err is None:
        return "Error", ""
    return "Error", str(err)


class OtelListener:
    """A run listener that emits OpenTelemetry spans per saga, step attempt and compensation attempt."""

    def __init__(self, tracer_provider: TracerProvider | None = None, tracer: Tracer | None = None) -> None:
        """Use ``tracer``, else a tracer from ``tracer_provider`` (default: the global provider)."""
        self._tracer = tracer or trace.get_tracer("sagalang", _version(), tracer_provider=tracer_provider)
        self._sagas: dict[str, Span] = {}
        self._spans: dict[_Key, Span] = {}
        self._lock = threading.Lock()  # listeners may be called from several threads

    # ---- the listener ------------------------------------------------------
    def __call__(self, event: Event) -> None:
        """Turn one event into span starts, ends and span events."""
        with self._lock:
            kind = event.kind
            if kind in TERMINAL_EVENTS:
                self._finish_saga(event, TERMINAL_EVENTS[kind].value)
            elif kind in ("saga.started", "saga.resumed"):
                self._start_saga(event)
            elif kind.startswith("step."):
                self._on_step(event)
            elif kind.startswith("compensation."):
                self._on_compensation(event)
            else:  # saga.compensating, saga.retrying, saga.cancel_requested, and kinds added later
                span = self._saga_span(event)
                attrs = self._event_attrs(event)
                if kind == "saga.compensating" and event.data.get("reason"):
                    span.set_attribute(f"{ATTR_PREFIX}.reason", str(event.data["reason"]))
                span.add_event(kind, attrs, timestamp=_ns(event.time))

    def close(self) -> None:
        """End every span still open (the process stops mid-run); they are marked interrupted."""
        with self._lock:
            for span in list(self._spans.values()) + list(self._sagas.values()):
                span.set_attribute(f"{ATTR_PREFIX}.interrupted", True)
                span.end()
            self._spans.clear()
            self._sagas.clear()

    async def step_middleware(self, call: Callable[[Context], Awaitable[Any]], ctx: Context) -> Any:
        """Step middleware: the handler runs with its call's span current, so its own spans nest under it."""
        kind = "compensate" if ctx.compensating else "step"
        with self._lock:
            span = self._spans.get((ctx.saga_id, kind, ctx.step, ctx.item))
        if span is None:
            return await call(ctx)
        token = otel_context.attach(trace.set_span_in_context(span))
        try:
            return await call(ctx)
        finally:
            otel_context.detach(token)

    # ---- sagas -------------------------------------------------------------
    def _start_saga(self, event: Event) -> Span:
        span = self._sagas.get(event.run_id)
        if span is not None:
            # A resume in the same process, or a whole-saga retry: one span per run.
            span.add_event(event.kind, self._event_attrs(event), timestamp=_ns(event.time))
            return span
        name = str(event.data.get("saga") or "")
        attrs: dict[str, Any] = {f"{ATTR_PREFIX}.id": event.run_id}
        if name:
            attrs[f"{ATTR_PREFIX}.name"] = name
        if event.data.get("version"):
            attrs[f"{ATTR_PREFIX}.version"] = str(event.data["version"])
        if event.kind == "saga.resumed":
            attrs[f"{ATTR_PREFIX}.resumed"] = True
        span = self._tracer.start_span(
            f"saga {name}".rstrip() if name else f"saga {event.run_id}",
            attributes=attrs,
            start_time=_ns(event.time),
        )
        self._sagas[event.run_id] = span
        return span

    def _saga_span(self, event: Event) -> Span:
        # Events of a run this listener did not see start (a resume in another process).
        return self._sagas.get(event.run_id) or self._start_saga(
            Event("saga.resumed", event.run_id, time=event.time, data={})
        )

    def _finish_saga(self, event: Event, outcome: str) -> None:
        span = self._saga_span(event)
        end = _ns(event.time)
        for key in [k for k in self._spans if k[0] == event.run_id]:
            # A step still open when the run ended (cancelled mid-flight): its outcome is unknown.
            child = self._spans.pop(key)
            child.set_attribute(f"{ATTR_PREFIX}.uncertain", True)
            child.end(end_time=end)
        span.set_attribute(f"{ATTR_PREFIX}.status", outcome)
        if event.kind in _FAILED_OUTCOMES:
            _etype, message = _error_of(event.data)
            span.set_status(Status(StatusCode.ERROR, f"{outcome}: {message}" if message else outcome))
            if event.data.get("step"):
                span.set_attribute(f"{ATTR_PREFIX}.failed_step", str(event.data["step"]))
        else:
            span.set_status(Status(StatusCode.OK))
        span.end(end_time=end)
        del self._sagas[event.run_id]

    # ---- steps and compensations -------------------------------------------
    def _parent(self, event: Event, kind: str) -> Span:
        step = event.step or ""
        if event.item is not None:
            agg = self._spans.get((event.run_id, kind, step, None))
            if agg is not None:
                return agg
        if "/" in step:
            caller = self._spans.get((event.run_id, kind, step.rsplit("/", 1)[0], None))
            if caller is not None:
                return caller
        return self._saga_span(event)

    def _open(self, event: Event, kind: str) -> None:
        key: _Key = (event.run_id, kind, event.step or "", event.item)
        previous = self._spans.pop(key, None)
        if previous is not None:
            # The previous attempt never reported its end (a crash before the outcome was journaled).
            previous.set_attribute(f"{ATTR_PREFIX}.uncertain", True)
            previous.end(end_time=_ns(event.time))
        parent = self._parent(event, kind)
        attrs = self._event_attrs(event)
        key_value = event.data.get("idempotency_key")
        if not key_value:
            # The contract's key: saga_id/step[/item], stable across retries and resumes.
            parts = [event.run_id, event.step or ""] + ([] if event.item is None else [str(event.item)])
            key_value = "/".join(parts)
        attrs[f"{ATTR_PREFIX}.idempotency_key"] = str(key_value)
        if kind == "compensate":
            attrs[f"{ATTR_PREFIX}.compensation"] = True
        self._spans[key] = self._tracer.start_span(
            f"{kind} {event.step}",
            context=trace.set_span_in_context(parent),
            attributes=attrs,
            start_time=_ns(event.time),
        )

    def _close(self, event: Event, kind: str, ok: bool, **extra: Any) -> None:
        key: _Key = (event.run_id, kind, event.step or "", event.item)
        span = self._spans.pop(key, None)
        if span is None:
            return
        for name, value in extra.items():
            span.set_attribute(f"{ATTR_PREFIX}.{name}", value)
        if ok:
            span.set_status(Status(StatusCode.OK))
        else:
            etype, message = _error_of(event.data)
            span.add_event(
                "exception",
                {"exception.type": etype, "exception.message": message},
                timestamp=_ns(event.time),
            )
            span.set_status(Status(StatusCode.ERROR, f"{etype}: {message}" if message else etype))
            if event.data.get("uncertain"):
                span.set_attribute(f"{ATTR_PREFIX}.uncertain", True)
        span.end(end_time=_ns(event.time))

    def _on_step(self, event: Event) -> None:
        kind = event.kind
        if kind == "step.started":
            self._open(event, "step")
        elif kind == "step.succeeded":
            self._close(event, "step", True)
        elif kind == "step.failed":
            self._close(event, "step", False, final=bool(event.data.get("final", True)))
        elif kind == "step.retrying":
            # The attempt failed (if its end was not journaled separately); note the retry on the step.
            self._close(event, "step", False, final=False)
            self._parent(event, "step").add_event(kind, self._event_attrs(event), timestamp=_ns(event.time))
        elif kind == "step.skipped":
            self._open(event, "step")
            self._close(event, "step", True, skipped=True)

    def _on_compensation(self, event: Event) -> None:
        kind = event.kind
        if kind == "compensation.started":
            self._open(event, "compensate")
        elif kind == "compensation.succeeded":
            self._close(event, "compensate", True)
        elif kind == "compensation.failed":
            self._close(event, "compensate", False, final=bool(event.data.get("final", True)))
        elif kind == "compensation.retrying":
            self._close(event, "compensate", False, final=False)
            self._parent(event, "compensate").add_event(kind, self._event_attrs(event), timestamp=_ns(event.time))

    @staticmethod
    def _event_attrs(event: Event) -> dict[str, Any]:
        attrs: dict[str, Any] = {f"{ATTR_PREFIX}.id": event.run_id}
        if event.step is not None:
            attrs[f"{ATTR_PREFIX}.step"] = event.step
        if event.item is not None:
            attrs[f"{ATTR_PREFIX}.item"] = event.item
        if event.attempt is not None:
            attrs[f"{ATTR_PREFIX}.attempt"] = event.attempt
        return attrs


# ---- tracing a CLI process from the OTEL_* environment -------------------------------------

EXPORTERS = ("console", "otlp", "none")
_INSTALL = "pip install 'sagalang[otel]'"


class TracingSetupError(Exception):
    """The environment asks for tracing that cannot be set up (an unknown exporter, a missing package)."""


class _Stderr:
    """Writes to whatever ``sys.stderr`` is at the time, so a live display that redirects it keeps its place."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _exporter_names(value: str) -> list[str]:
    names = [n.strip().lower() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in EXPORTERS]
    if unknown:
        raise TracingSetupError(
            f"OTEL_TRACES_EXPORTER: unknown exporter {unknown[0]!r} (sagalang knows {', '.join(EXPORTERS)})"
        )
    return [n for n in names if n != "none"]


def _otlp_exporter(environ: Mapping[str, str]) -> Any:
    """The OTLP span exporter of ``OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL`` (it reads its endpoint itself)."""
    protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    protocol = (protocol or "http/protobuf").strip().lower()
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

            return Grpc()
        if protocol in ("http/protobuf", "http"):
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

            return Http()
    except ImportError:
        package = "opentelemetry-exporter-otlp-proto-" + ("grpc" if protocol == "grpc" else "http")
        raise TracingSetupError(f"OTLP export over {protocol} needs {package}: pip install {package}") from None
    raise TracingSetupError(f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not grpc or http/protobuf")


class Tracing:
    """A process's tracing: a tracer provider, the run listener on it, and the step middleware."""

    def __init__(self, provider: Any, owned: bool) -> None:
        """``owned``: this process built ``provider`` and shuts it down at :meth:`close`."""
        self.provider = provider
        self.owned = owned
        self.listener = OtelListener(tracer_provider=provider)

    def close(self) -> None:
        """End the spans still open (an interrupted run), then export everything that is left."""
        self.listener.close()
        if self.owned:
            self.provider.shutdown()
        else:
            self.provider.force_flush()


def from_environment(exporters: str | None = None, console: IO[str] | None = None, install: bool = True) -> Tracing:
    """Tracing as ``OTEL_TRACES_EXPORTER`` (or ``exporters``) says: ``console`` (to stderr), ``otlp``, ``none``.

    The service is ``OTEL_SERVICE_NAME`` (``sagalang`` when unset) with
    ``OTEL_RESOURCE_ATTRIBUTES``; the OTLP exporter reads its endpoint, headers
    and protocol from their ``OTEL_EXPORTER_OTLP_*`` variables. A tracer provider
    that the process has configured already (``opentelemetry-instrument``) is
    used as it is; with ``install`` a new one becomes the global provider, so
    that handlers' own spans go to it too. Raises :class:`TracingSetupError` for an unknown exporter or
    a missing exporter package.
    """
    env = os.environ
    current = trace.get_tracer_provider()
    if install and not isinstance(current, trace.ProxyTracerProvider):
        return Tracing(current, owned=False)
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
    except ImportError:
        raise TracingSetupError(f"tracing needs the OpenTelemetry SDK: {_INSTALL}") from None
    resource = Resource.create()
    if not env.get("OTEL_SERVICE_NAME") and "service.name=" not in env.get("OTEL_RESOURCE_ATTRIBUTES", ""):
        resource = resource.merge(Resource({"service.name": "sagalang"}))
    provider = SdkProvider(resource=resource)
    for name in _exporter_names(exporters if exporters is not None else env.get("OTEL_TRACES_EXPORTER", "otlp")):
        if name == "console":
            # Spans in the order they end, at once: a short CLI run must not lose the last batch.
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter(out=console or _Stderr())))  # type: ignore[arg-type]
        else:
            provider.add_span_processor(BatchSpanProcessor(_otlp_exporter(env)))
    if install:
        trace.set_tracer_provider(provider)
    return Tracing(provider, owned=True)
