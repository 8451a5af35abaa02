"""``sagalang run SPEC``: run a saga, showing its progress; the exit code says how it ended."""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any, NoReturn

import click

from .common import EXIT_BY_STATUS, EXIT_FAILED, EXIT_INVALID, exit_code_for, make_registry, plugin_option, use_color

if TYPE_CHECKING:
    from ..events import Event
    from ..interpreter import RunResult
    from ..spec import Spec

__all__ = ["EXIT_BY_STATUS", "Progress", "run"]

# The step status an event leaves behind (the view needs no full fold).
_STATUS_OF = {
    "step.started": "running",
    "step.retrying": "running",
    "step.succeeded": "succeeded",
    "step.failed": "failed",
    "step.skipped": "skipped",
    "compensation.started": "compensating",
    "compensation.succeeded": "compensated",
    "compensation.failed": "compensation_failed",
}

_MARK = {
    "pending": ("·", None),
    "running": ("▶", "cyan"),
    "succeeded": ("✓", "green"),
    "skipped": ("-", "bright_black"),
    "failed": ("✗", "red"),
    "compensating": ("↶", "yellow"),
    "compensated": ("↶", "yellow"),
    "compensation_failed": ("!", "red"),
}


def _fail(message: str) -> NoReturn:
    click.echo(f"sagalang: error: {message}", err=True)
    raise SystemExit(EXIT_INVALID)


class Progress:
    """Per-step progress: redrawn in place on a terminal, one line per event otherwise."""

    def __init__(self, steps: list[str], live: bool, color: bool, stream: IO[str]) -> None:
        self.steps = {name: "pending" for name in steps}
        self.notes: dict[str, str] = {}
        self.live = live
        self.color = color
        self.stream = stream
        self.drawn = 0

    def __call__(self, ev: Event) -> None:
        """Listener: update the view for one event."""
        if ev.step is not None and ev.item is None:
            final = ev.data.get("final", True) if ev.data else True
            status = _STATUS_OF.get(ev.kind)
            if status is not None and (final or ev.kind not in ("step.failed", "compensation.failed")):
                self.steps[ev.step] = status
            if ev.kind == "step.retrying":
                self.notes[ev.step] = f"retry in {ev.data.get('delay_ms', 0)} ms"
            elif ev.kind == "step.failed" and ev.data.get("error"):
                self.notes[ev.step] = str(ev.data["error"].get("message", ""))
            elif ev.kind in ("step.succeeded", "compensation.succeeded"):
                self.notes.pop(ev.step, None)
        if self.live:
            self._redraw(ev)
        else:
            self._line(ev)

    def _style(self, text: str, color: str | None) -> str:
        return click.style(text, fg=color) if self.color and color else text

    def _line(self, ev: Event) -> None:
        where = f" {ev.step}" if ev.step else ""
        if ev.item is not None:
            where += f"[{ev.item}]"
        extra = ""
        if ev.attempt and ev.attempt > 1:
            extra = f" (attempt {ev.attempt})"
        err = ev.data.get("error") if ev.data else None
        if isinstance(err, dict) and err.get("message"):
            extra += f": {err.get('type')}: {err['message']}"
        click.echo(f"{ev.kind}{where}{extra}", file=self.stream)

    def _redraw(self, ev: Event) -> None:
        lines = []
        for name, status in self.steps.items():
            mark, color = _MARK.get(status, ("?", None))
            note = self.notes.get(name, "")
            lines.append(f"  {self._style(mark, color)} {name:<24} {self._style(status, color)} {note}".rstrip())
        lines.append(f"  {ev.kind}")
        out = "\x1b[2K" if not self.drawn else f"\x1b[{self.drawn}F"
        self.stream.write(out + "".join(f"\x1b[2K{line}\n" for line in lines))
        self.stream.flush()
        self.drawn = len(lines)


def _summary(result: RunResult, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=2, sort_keys=True))
        return
    state = result.state
    click.echo(f"run {result.run_id}: {result.status}")
    if result.output is not None and result.status == "completed":
        click.echo(json.dumps(result.output, indent=2, sort_keys=True))
    if state.failed_step is not None:
        click.echo(f"failed step: {state.failed_step}")
    if result.error is not None and result.status != "completed":
        click.echo(f"error: {result.error.get('type')}: {result.error.get('message')}")
    if state.compensation_path:
        click.echo("compensated: " + ", ".join(state.compensation_path))
    broken = [n for n, s in state.steps.items() if s.status == "compensation_failed"]
    if broken:
        click.echo("compensation failed: " + ", ".join(broken))


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


async def _drive(loaded: Spec, data: dict[str, Any], store_url: str | None, **options: Any) -> RunResult:
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
        return await run_saga(loaded, data, store=store, **options)
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
@click.option("--progress/--no-progress", default=None, help="Show per-step progress (default: on a terminal).")
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
    listeners: list[Any] = []
    events_out: IO[str] | None = None
    if events_file is not None:
        writer, events_out = _event_writer(events_file)
        listeners.append(writer)
    stream = sys.stderr
    live = bool(getattr(stream, "isatty", lambda: False)()) and progress is not False
    if progress or live:
        listeners.append(Progress(list(loaded.graph.order), live, use_color(stream), stream))
    options = {"registry": registry, "run_id": run_id, "listeners": listeners, "fail_at": fail_at}
    try:
        result = asyncio.run(_drive(loaded, data, store_url, **options))
    except SagaInputError as err:
        _fail(str(err))
    except SagaError as err:
        click.echo(f"sagalang: error: {err}", err=True)
        raise SystemExit(EXIT_FAILED) from None
    finally:
        if events_out is not None:
            events_out.close()
    _summary(result, as_json)
    sys.exit(exit_code_for(result.status))
