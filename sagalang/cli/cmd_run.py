"""``sagalang run SPEC``: run a saga, showing its progress; the exit code says how it ended."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click

from .common import EXIT_BY_STATUS, EXIT_FAILED, EXIT_INVALID, exit_code_for, make_registry, plugin_option, use_color
from .progress_view import ProgressView, mode_for, print_summary
from .tracing import trace_option

if TYPE_CHECKING:
    from ..events import Event
    from ..interpreter import RunResult
    from ..progress import RunProgress
    from ..spec import Spec

__all__ = ["EXIT_BY_STATUS", "run"]


def _fail(message: str) -> NoReturn:
    click.echo(f"sagalang: error: {message}", err=True)
    raise SystemExit(EXIT_INVALID)


def _summary(result: RunResult, progress: RunProgress, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, sort_keys=True))
        return
    print_summary(progress, result.state)


def _load(spec: str, plugins: tuple[str, ...], saga_name: str | None) -> tuple[Any, Spec]:
    """The registry and the validated spec; diagnostics and exit 3 when it is invalid."""
    from .. import diagnostics as D
    from ..errors import SagaError, SagaValidationError
    from ..spec import load

    try:
        registry = make_registry(plugins)
        return registry, load(spec, registry, saga=saga_name)
    except SagaValidationError as err:
        from ..project import load_project

        texts = load_project([spec])
        click.echo(D.format_text(err.diagnostics, texts.text_of, use_color(sys.stderr)), nl=False, err=True)
        click.echo(D.summary(err.diagnostics, len(texts.files) or 1), err=True)
        raise SystemExit(EXIT_INVALID) from None
    except SagaError as err:
        _fail(str(err))


def _event_writer(events_file: str) -> tuple[Callable[[Event], None], IO[str]]:
    """A listener writing each event as a JSON line to ``events_file``, and the file to close."""
    try:
        out = open(events_file, "w", encoding="utf-8")  # noqa: SIM115 - the caller closes it
    except OSError as err:
        _fail(f"cannot write events to {events_file}: {err.strerror or err}")

    def write_event(ev: Event) -> None:
        out.write(json.dumps(ev.to_json(), sort_keys=True) + "\n")
        out.flush()

    return write_event, out


async def _drive(
    loaded: Spec, data: dict[str, Any], store_url: str | None, view: ProgressView, **options: Any
) -> RunResult:
    """Run the saga on the store; SIGTERM, like Ctrl-C, cancels it (it compensates before the process ends)."""
    import asyncio

    from ..interpreter import run as run_saga
    from ..journal import open_store

    store = open_store(store_url)
    await store.open()
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    try:
        return await view.during(run_saga(loaded, data, store=store, **options))
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        await store.close()


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option("--input", "input_file", metavar="FILE|-", help="Input JSON object (a file, or - for stdin).")
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Set an input field, converted to the field's declared type (undeclared: JSON, else text).",
)
@click.option("--saga", "saga_name", help="Which saga of the file to run (default: the first).")
@plugin_option
@click.option(
    "--store",
    "store_url",
    metavar="URL",
    help="Journal store URL (default: $SAGALANG_STORE or sqlite:///.sagalang/sagalang.db).",
)
@click.option("--id", "run_id", help="Run id (default: generated). An existing id resumes that run.")
@click.option("--json", "as_json", is_flag=True, help="Print the final result as JSON.")
@click.option(
    "--events", "events_file", type=click.Path(dir_okay=False), help="Write every event to FILE as JSON lines."
)
@click.option(
    "--fail-at", "fail_at", multiple=True, metavar="STEP", help="Make STEP fail for good (fault injection); repeatable."
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show progress on stderr: a live table on a terminal, else (with --progress) one line per event.",
)
@trace_option
def run(
    spec: str,
    input_file: str | None,
    sets: tuple[str, ...],
    saga_name: str | None,
    plugins: tuple[str, ...],
    store_url: str | None,
    run_id: str | None,
    as_json: bool,
    events_file: str | None,
    fail_at: tuple[str, ...],
    progress: bool | None,
    trace: bool | None,
) -> None:
    """Run a saga: steps as their dependencies complete, compensation on failure.

    \b
    Exit status: 0 completed, 1 compensated or cancelled, 2 usage error (such
    as --fail-at naming no step), 3 invalid spec or input, 4 aborted or stuck
    (a human is needed).
    \b
    Examples:
      sagalang run order.saga --input order.json
      sagalang run order.saga --set sku=A1 --set qty=2 --set address.city=Delft
      sagalang run order.saga --input - --json < order.json
      sagalang run order.saga --store memory: --fail-at charge --events events.jsonl
      OTEL_TRACES_EXPORTER=otlp OTEL_SERVICE_NAME=shop sagalang run order.saga --input order.json
    """
    import asyncio

    from ..errors import SagaError, SagaInputError
    from ..inputs import load_input
    from ..operations import UnknownStepError, check_fail_at

    registry, loaded = _load(spec, plugins, saga_name)
    try:
        check_fail_at(loaded, fail_at)
    except UnknownStepError as err:
        raise click.BadParameter(str(err), param_hint="--fail-at") from None
    try:
        data = load_input(loaded, input_file, sets)
    except SagaInputError as err:
        _fail(str(err))
    from ..progress import Board, plan_of
    from .tracing import open_tracing

    listeners: list[Any] = []
    events_out: IO[str] | None = None
    if events_file is not None:
        writer, events_out = _event_writer(events_file)
        listeners.append(writer)
    # The view always follows the run: the summary tells the cancel's cause from the events it saw.
    view = ProgressView(Board(plan_of(loaded)), sys.stderr, mode_for(progress, sys.stderr))
    listeners.append(view)
    options: dict[str, Any] = {"registry": registry, "run_id": run_id, "listeners": listeners, "fail_at": fail_at}
    tracing = open_tracing(trace)
    if tracing is not None:
        listeners.append(tracing.listener)
        options["step_middleware"] = [tracing.listener.step_middleware]
    try:
        result = asyncio.run(_drive(loaded, data, store_url, view, **options))
    except SagaInputError as err:
        _fail(str(err))
    except SagaError as err:
        click.echo(f"sagalang: error: {err}", err=True)
        raise SystemExit(EXIT_FAILED) from None
    finally:
        if events_out is not None:
            events_out.close()
        if tracing is not None:
            tracing.close()
    _summary(result, view.board.progress(result.run_id), as_json)
    sys.exit(exit_code_for(result.status))
