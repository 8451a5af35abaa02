"""Run the tutorial's trip saga with OpenTelemetry tracing (needs ``pip install 'sagalang[otel]'``).

    python trace_trip.py            # spans printed to the console as JSON

``trace()`` takes any span exporter; production code would configure an OTLP
exporter on the global tracer provider instead and pass ``OtelListener()``.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor, SpanExporter

from sagalang.interpreter import RunResult, run
from sagalang.otel import OtelListener
from sagalang.plugins import Registry
from sagalang.spec import load

HERE = Path(__file__).resolve().parent


def trace(exporter: SpanExporter, **changes: object) -> RunResult:
    """Run trip.saga (journal in memory) with the example input, exporting one span per saga, step and undo."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    registry = Registry.discover(cwd=HERE)
    spec = load(HERE / "trip.saga", registry)
    data = {**json.loads((HERE / "trip.input.json").read_text()), **changes}
    return asyncio.run(run(spec, data, registry=registry, listeners=[OtelListener(tracer_provider=provider)]))


if __name__ == "__main__":
    result = trace(ConsoleSpanExporter())
    print(f"run {result.run_id}: {result.status}")
