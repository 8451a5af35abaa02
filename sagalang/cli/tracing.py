"""``--trace/--no-trace`` for the commands that drive runs, and the tracing the ``OTEL_*`` variables ask for."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from ..otel import Tracing

__all__ = ["EXIT_USAGE", "exporters_wanted", "open_tracing", "trace_option"]

F = TypeVar("F", bound=Callable[..., Any])
EXIT_USAGE = 2
_INSTALL = "pip install 'sagalang[otel]'"


def trace_option(f: F) -> F:
    """``--trace/--no-trace``: OpenTelemetry spans (default: when ``OTEL_TRACES_EXPORTER`` asks for them)."""
    return click.option(
        "--trace/--no-trace",
        "trace",
        default=None,
        help="Emit OpenTelemetry spans: to the exporters of $OTEL_TRACES_EXPORTER (console, otlp), else "
        "to stderr. Default: on when $OTEL_TRACES_EXPORTER names an exporter.",
    )(f)


def exporters_wanted(flag: bool | None, environ: Mapping[str, str]) -> str | None:
    """The exporters to trace with (``console``, ``otlp``, comma-separated), or None for no tracing."""
    if flag is False or environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    names = environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if flag:
        return names if names and names.lower() != "none" else "console"
    return names if names and names.lower() != "none" else None


def open_tracing(flag: bool | None) -> Tracing | None:
    """The process's tracing, or None; a problem is one line: an error with ``--trace``, else a note."""
    exporters = exporters_wanted(flag, os.environ)
    if exporters is None:
        return None
    try:
        from ..otel import TracingSetupError, from_environment
    except ImportError:
        problem = f"tracing needs the OpenTelemetry SDK: {_INSTALL}"
    else:
        try:
            return from_environment(exporters)
        except TracingSetupError as err:
            problem = str(err)
    if flag:
        click.echo(f"sagalang: error: --trace: {problem}", err=True)
        raise SystemExit(EXIT_USAGE)
    click.echo(f"sagalang: note: OTEL_TRACES_EXPORTER is set, but {problem}; running without tracing", err=True)
    return None
