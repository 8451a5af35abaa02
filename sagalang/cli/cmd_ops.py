"""Operations on stored runs: ``list``, ``show ID``, ``history ID``, ``resume ID|--all``, ``cancel ID``."""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..journal.base import TERMINAL_STATES
from ..status import RunStatus
from .common import (
    EXIT_FAILED,
    EXIT_FINISHED,
    EXIT_INVALID,
    EXIT_OK,
    exit_code_for,
    make_registry,
    plugin_option,
    user_errors,
)
from .tracing import trace_option

if TYPE_CHECKING:
    from ..events import Event
    from ..journal.base import RunRecord, Store
    from ..operations import ResumeOutcome
    from ..progress import Board, RunProgress
    from ..spec import Spec
    from ..state import RunState

__all__ = ["cancel", "exit_code_for", "history", "list_runs", "resume", "show"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def store_option(f: F) -> F:
    """``--store URL`` (default ``$SAGALANG_STORE`` or ``sqlite:///.sagalang/sagalang.db``)."""
    return click.option(
        "--store",
        "store_url",
        metavar="URL",
        default=None,
        help="Journal store: sqlite:///PATH, postgresql://... (default: $SAGALANG_STORE or "
        "sqlite:///.sagalang/sagalang.db).",
    )(f)


def json_option(f: F) -> F:
    """``--json``: machine-readable output."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")(f)


def _with_store(url: str | None, body: Callable[[Store], Awaitable[T]]) -> T:
    """Open the store, run ``body`` with it, close it."""
    from ..journal import open_store, run_with_store

    return run_with_store(open_store(url), body)


def _when(t: float | None) -> str:
    if not t:
        return "-"
    return dt.datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def _compact(value: Any, limit: int = 120) -> str:
    text = json.dumps(value, separators=(",", ":"), sort_keys=True, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _record_json(rec: RunRecord) -> dict[str, Any]:
    return {
        "run_id": rec.run_id,
        "saga": rec.saga,
        "status": rec.status,
        "entry": rec.entry,
        "spec_path": rec.spec_path,
        "spec_hash": rec.spec_hash,
        "created_at": rec.created_at,
        "updated_at": rec.updated_at,
        "owner": rec.owner,
        "lease_until": rec.lease_until,
        "epoch": rec.epoch,
        "cancel_requested": rec.cancel_requested,
    }


# -- list ------------------------------------------------------------------------------------


@click.command("list")
@click.option(
    "--status",
    type=click.Choice([s.value for s in RunStatus]),
    default=None,
    help="Only runs in this state.",
)
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many runs (newest first).")
@json_option
@store_option
@user_errors()
def list_runs(status: str | None, limit: int | None, as_json: bool, store_url: str | None) -> None:
    """List the runs in the store, newest first.

    \b
    Examples:
      sagalang list
      sagalang list --status running
      sagalang list --json --store sqlite:///ops/journal.db
    """
    runs = _with_store(store_url, lambda s: s.list_runs(status=status, limit=limit))
    if as_json:
        click.echo(json.dumps([_record_json(r) for r in runs], indent=2))
        return
    if not runs:
        click.echo("no runs" + (f" in state {status}" if status else ""), err=True)
        return
    width = max(6, *(len(r.run_id) for r in runs))
    saga_w = max(4, *(len(r.saga) for r in runs))
    click.echo(f"{'RUN ID':<{width}}  {'SAGA':<{saga_w}}  {'STATUS':<12}  {'STARTED':<19}  UPDATED")
    for r in runs:
        flag = " (cancel requested)" if r.cancel_requested and r.status not in TERMINAL_STATES else ""
        click.echo(
            f"{r.run_id:<{width}}  {r.saga:<{saga_w}}  {r.status:<12}  {_when(r.created_at):<19}  "
            f"{_when(r.updated_at)}{flag}"
        )


# -- show ------------------------------------------------------------------------------------


async def _load(store: Store, run_id: str) -> tuple[RunRecord, list[Event]]:
    from ..operations import stored_run

    rec = await stored_run(store, run_id)
    return rec, await store.events(run_id)


def _stored_spec(rec: RunRecord) -> Spec | None:
    """The definition the run started with, rebuilt from its record (None when it cannot be)."""
    from ..errors import SagaError
    from ..spec import Spec

    try:
        return Spec.from_sources(rec.spec, rec.entry, saga=rec.saga or None)
    except (SagaError, OSError, KeyError, ValueError):
        return None


def _step_order(rec: RunRecord) -> list[str]:
    """Step names in the spec's order (empty when the stored spec cannot be rebuilt)."""
    spec = _stored_spec(rec)
    return [step.name for step in spec.saga.steps()] if spec is not None else []


def _error_text(error: Any) -> str:
    if isinstance(error, dict):
        name = error.get("type") or error.get("name") or "error"
        message = error.get("message")
        return f"{name}: {message}" if message else str(name)
    return str(error)


@click.command()
@click.argument("run_id", metavar="ID")
@json_option
@store_option
@user_errors()
def show(run_id: str, as_json: bool, store_url: str | None) -> None:
    """Show one run: its state, every step's state, outputs, errors and what was undone.

    Secret inputs never appear: the journal holds them redacted.

    \b
    Examples:
      sagalang show 6f1c2e
      sagalang show 6f1c2e --json | jq .steps
    """
    from ..state import fold

    rec, events = _with_store(store_url, lambda s: _load(s, run_id))
    state = fold(events)
    state.run_id = rec.run_id
    if not events:
        state.status = rec.status
    order = _step_order(rec)
    for name in order:
        state.step(name)  # steps that never started show as pending
    if order:
        known = [n for n in order if n in state.steps] + [n for n in state.steps if n not in order]
        state.steps = {n: state.steps[n] for n in known}
    if as_json:
        out = state.to_json()
        out["run"] = _record_json(rec)
        if state.input is not None:  # as journaled: secrets redacted
            out["input"] = state.input
        click.echo(json.dumps(out, indent=2, default=str))
        return
    _print_state(rec, state)


def _print_state(rec: RunRecord, state: RunState) -> None:
    click.echo(f"run {rec.run_id}: saga {rec.saga} — {state.status}")
    where = rec.spec_path or rec.entry
    click.echo(f"  spec      {where} (sha256 {rec.spec_hash[:12]})")
    # "started" is the record's creation, as in `list`: when `run` started it or `submit` queued it.
    click.echo(f"  started   {_when(rec.created_at)}")
    if state.started_at and state.started_at - rec.created_at >= 1:
        click.echo(f"  picked up {_when(state.started_at)} (queued until then)")
    if state.ended_at:
        click.echo(f"  ended     {_when(state.ended_at)}")
    if state.saga_attempt > 1:
        click.echo(f"  attempt   {state.saga_attempt} (whole-saga retry)")
    from ..operations import is_orphaned, lease_is_live

    if rec.status not in TERMINAL_STATES and lease_is_live(rec):
        click.echo(f"  driven by {rec.owner} (lease until {_when(rec.lease_until)})")
    elif is_orphaned(rec):
        click.echo(f"  driven by nobody: its process is gone (`sagalang resume {rec.run_id}` continues it)")
    if state.cancel_requested or rec.cancel_requested:
        click.echo("  cancel    requested")
    if state.reason:
        click.echo(f"  reason    {state.reason}")
    if state.failed_step:
        suffix = f": {_error_text(state.error)}" if state.error else ""
        click.echo(f"  failed at {state.failed_step}{suffix}")
    click.echo("  steps:")
    width = max([4, *(len(n) for n in state.steps)])
    for name, st in state.steps.items():
        parts = [f"    {name:<{width}}  {st.status:<19}"]
        if st.attempts:
            parts.append(f"attempts {st.attempts}")
        if st.compensation_attempts:
            parts.append(f"undo attempts {st.compensation_attempts}")
        if st.uncertain:
            parts.append("outcome uncertain")
        if st.output is not None:
            parts.append(f"output {_compact(st.output, 80)}")
        if st.error is not None:
            parts.append(f"error {_error_text(st.error)}")
        click.echo("  ".join(parts).rstrip())
        for index, item in sorted(st.items.items()):
            detail = f"      [{index}] {item.status}"
            if item.output is not None:
                detail += f"  output {_compact(item.output, 70)}"
            if item.error is not None:
                detail += f"  error {_error_text(item.error)}"
            click.echo(detail)
    if state.compensation_path:
        click.echo(f"  compensation path: {' -> '.join(state.compensation_path)}")
    if state.output is not None:
        click.echo(f"  output    {_compact(state.output)}")


# -- history ---------------------------------------------------------------------------------


def format_event(event: Event) -> str:
    """One event as a readable line: seq, time, kind, step[item], attempt, data."""
    when = dt.datetime.fromtimestamp(event.time).astimezone().strftime("%H:%M:%S.%f")[:-3] if event.time else "-"
    where = event.step or ""
    if event.item is not None:
        where += f"[{event.item}]"
    line = f"{event.seq:>5}  {when}  {event.kind:<24} {where}"
    if event.attempt is not None:
        line += f"  attempt {event.attempt}"
    if event.data:
        line += f"  {_compact(dict(event.data))}"
    return line.rstrip()


@click.command()
@click.argument("run_id", metavar="ID")
@json_option
@store_option
@user_errors()
def history(run_id: str, as_json: bool, store_url: str | None) -> None:
    """Print a run's journal: every event, one per line (JSON lines with --json).

    \b
    Examples:
      sagalang history 6f1c2e
      sagalang history 6f1c2e --json > run.jsonl
    """
    _, events = _with_store(store_url, lambda s: _load(s, run_id))
    for event in events:
        click.echo(json.dumps(event.to_json(), separators=(",", ":")) if as_json else format_event(event))


# -- resume and cancel -----------------------------------------------------------------------


def _report(state: RunState, progress: RunProgress, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(state.to_json(), indent=2, default=str))
        return
    from .progress_view import print_summary

    print_summary(progress, state)


async def _watch(store: Store, records: list[RunRecord], board: Board) -> None:
    """Start each run's progress from its stored journal and the plan of the spec it started with."""
    from ..progress import Plan, plan_of

    plans: dict[str, Plan] = {}
    for rec in records:
        plan = plans.get(rec.spec_hash)
        if plan is None:
            spec = _stored_spec(rec)
            plan = plans[rec.spec_hash] = plan_of(spec) if spec is not None else Plan()
        board.watch(rec.run_id, plan, await store.events(rec.run_id))


def _note(text: str) -> None:
    click.echo(f"sagalang: note: {text}", err=True)


def _outcome_code(outcome: ResumeOutcome, board: Board, as_json: bool) -> int:
    """Print one resumed run's outcome; its exit code."""
    from ..errors import SagaInputError, SagaValidationError

    if outcome.error is not None:
        click.echo(f"sagalang: error: run {outcome.run_id}: {outcome.error}", err=True)
        return EXIT_INVALID if isinstance(outcome.error, SagaValidationError | SagaInputError) else EXIT_FAILED
    if outcome.state is None:  # skipped: a live process drives it
        return EXIT_OK
    _report(outcome.state, board.progress(outcome.run_id), as_json)
    return exit_code_for(outcome.state.status)


@click.command()
@click.argument("run_id", metavar="ID", required=False)
@click.option("--all", "every", is_flag=True, help="Resume every unfinished run that no live process drives.")
@json_option
@store_option
@plugin_option
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Show progress on stderr: a live table on a terminal, else (with --progress) one line per event.",
)
@trace_option
@user_errors(EXIT_FAILED)
def resume(
    run_id: str | None,
    every: bool,
    as_json: bool,
    store_url: str | None,
    plugins: tuple[str, ...],
    progress: bool | None,
    trace: bool | None,
) -> None:
    """Continue runs whose process died: take the lease, fold the journal, carry on.

    Steps that were in flight are retried with the same idempotency key, or
    compensated when the saga was already rolling back. The run uses the
    definition it started with, even if its .saga file changed since.
    Progress shows as with `run`, from where the run stood.

    \b
    Exit status (like `run`): 0 completed, 1 compensated or cancelled,
    3 invalid spec, 4 aborted or stuck; with --all, the worst of all runs, and
    0 when there is nothing to resume (every run finished, or driven by a live process).
    \b
    Examples:
      sagalang resume 6f1c2e
      sagalang resume --all --store sqlite:///ops/journal.db
      OTEL_TRACES_EXPORTER=otlp sagalang resume 6f1c2e
    """
    from ..errors import SagaInputError, SagaValidationError
    from ..operations import resume_all, resume_run, stored_run
    from ..progress import Board
    from .progress_view import ProgressView, mode_for
    from .tracing import open_tracing

    if (run_id is None) == (not every):
        raise click.UsageError("give a run ID or --all (not both)")
    registry = make_registry(plugins)
    view = ProgressView(Board(), sys.stderr, mode_for(progress, sys.stderr))
    tracing = open_tracing(trace)
    listeners: list[Any] = [view] if tracing is None else [view, tracing.listener]
    middleware = [] if tracing is None else [tracing.listener.step_middleware]

    async def one(store: Store, rid: str) -> RunState:
        await _watch(store, [await stored_run(store, rid)], view.board)
        work = resume_run(store, rid, registry, listeners=listeners, step_middleware=middleware, on_note=_note)
        return await view.during(work)

    async def all_runs(store: Store) -> list[ResumeOutcome]:
        await _watch(store, [r for r in await store.list_runs() if r.status not in TERMINAL_STATES], view.board)
        work = resume_all(store, registry, listeners=listeners, step_middleware=middleware, on_note=_note)
        return await view.during(work)

    try:
        if run_id is not None:
            state = _with_store(store_url, lambda s: one(s, run_id))
            _report(state, view.board.progress(run_id), as_json)
            sys.exit(exit_code_for(state.status))
        outcomes = _with_store(store_url, all_runs)
    except (SagaValidationError, SagaInputError) as err:
        click.echo(f"sagalang: error: {err}", err=True)
        sys.exit(EXIT_INVALID)
    finally:
        if tracing is not None:
            tracing.close()
    sys.exit(max((_outcome_code(o, view.board, as_json) for o in outcomes), default=EXIT_OK))


@click.command()
@click.argument("run_id", metavar="ID")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="When another process drives the run, wait until it has finished.",
)
@click.option("--timeout", type=click.FloatRange(min=0), default=300.0, show_default=True, help="Seconds to wait.")
@json_option
@store_option
@plugin_option
@user_errors(EXIT_FAILED)
def cancel(
    run_id: str, wait: bool, timeout: float, as_json: bool, store_url: str | None, plugins: tuple[str, ...]
) -> None:
    """Cancel a run: stop it and compensate every completed step.

    If a live process drives the run, it sees the request and compensates;
    otherwise this command takes the run over and compensates it itself. A
    run whose pivot (or another step without undo) has completed cannot be
    rolled back: it goes on forward to its end, and a note says so.

    \b
    Exit status: 1 cancelled (or compensated), 0 completed (the cancel came
    after the point of no return), 4 aborted or stuck, 6 the run had already
    finished (nothing was cancelled); 0 with --no-wait once the request is
    recorded; 1 for an unknown run or when --timeout passes.
    \b
    Examples:
      sagalang cancel 6f1c2e
      sagalang cancel 6f1c2e --no-wait
    """
    from ..operations import CancelOutcome, cancel_run
    from ..progress import RunProgress

    registry = make_registry(plugins)
    watched = RunProgress(run_id)

    async def cancel_and_read(store: Store) -> CancelOutcome:
        outcome = await cancel_run(store, run_id, registry, wait=wait, timeout=timeout, on_note=_note)
        if outcome.state is not None:  # who asked, and why, is in the journal
            watched.replay(await store.events(run_id))
        return outcome

    outcome = _with_store(store_url, cancel_and_read)
    state = outcome.state
    if state is None:
        sys.exit(EXIT_OK)
    if outcome.already_finished:
        _note(f"run {run_id} has already finished ({state.status}); there is nothing to cancel")
        if as_json:
            _report(state, watched, as_json)
        sys.exit(EXIT_FINISHED)
    _report(state, watched, as_json)
    if state.status == "completed":
        _note(f"run {run_id} completed: the cancel came after its point of no return")
    sys.exit(exit_code_for(state.status))
