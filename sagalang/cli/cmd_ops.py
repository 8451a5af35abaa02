"""Operations on stored runs: ``list``, ``show ID``, ``history ID``, ``resume ID|--all``, ``cancel ID``."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..status import RunStatus
from .common import EXIT_FAILED, EXIT_INVALID, EXIT_NEEDS_HUMAN, EXIT_OK, make_registry, plugin_option, user_errors

if TYPE_CHECKING:
    from ..events import Event
    from ..journal.base import RunRecord, Store
    from ..state import RunState

__all__ = ["cancel", "exit_code_for", "history", "list_runs", "resume", "show"]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

# Final run status -> exit code, as for `sagalang run`.
_EXIT = {
    "completed": EXIT_OK,
    "compensated": EXIT_FAILED,
    "cancelled": EXIT_FAILED,
    "aborted": EXIT_NEEDS_HUMAN,
    "stuck": EXIT_NEEDS_HUMAN,
}


def exit_code_for(status: str) -> int:
    """The exit code of a run that ended in ``status`` (like ``sagalang run``)."""
    return _EXIT.get(status, EXIT_NEEDS_HUMAN)


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


async def _run_or_fail(store: Store, run_id: str) -> RunRecord:
    from ..errors import SagaError

    rec = await store.get_run(run_id)
    if rec is None:
        raise SagaError(f"no run {run_id!r} in {store.url} (`sagalang list` shows the runs there)")
    return rec


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
        flag = " (cancel requested)" if r.cancel_requested and r.status not in _EXIT else ""
        click.echo(
            f"{r.run_id:<{width}}  {r.saga:<{saga_w}}  {r.status:<12}  {_when(r.created_at):<19}  "
            f"{_when(r.updated_at)}{flag}"
        )


# -- show ------------------------------------------------------------------------------------


async def _load(store: Store, run_id: str) -> tuple[RunRecord, list[Event]]:
    rec = await _run_or_fail(store, run_id)
    return rec, await store.events(run_id)


def _step_order(rec: RunRecord) -> list[str]:
    """Step names in the spec's order (empty when the stored spec cannot be rebuilt)."""
    from ..errors import SagaError

    try:
        from ..spec import Spec

        spec = Spec.from_sources(rec.spec, rec.entry, saga=rec.saga or None)
    except (SagaError, OSError, KeyError, ValueError):
        return []
    return [step.name for step in spec.saga.steps()]


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
    click.echo(f"  started   {_when(state.started_at or rec.created_at)}")
    if state.ended_at:
        click.echo(f"  ended     {_when(state.ended_at)}")
    if state.saga_attempt > 1:
        click.echo(f"  attempt   {state.saga_attempt} (whole-saga retry)")
    if rec.owner and rec.status not in _EXIT:
        click.echo(f"  driven by {rec.owner} (lease until {_when(rec.lease_until)})")
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


def spec_drift(rec: RunRecord) -> str | None:
    """How the run's spec files on disk differ from the definition it started with (None: unchanged)."""
    from pathlib import Path

    if not rec.spec_path:
        return None
    entry = Path(rec.spec_path)
    if not entry.is_file():
        return f"{rec.spec_path} no longer exists"
    folder = entry.parent
    changed = []
    for rel, text in sorted(rec.spec.items()):
        path = folder / rel
        try:
            if path.read_text(encoding="utf-8") != text:
                changed.append(f"{rel} changed")
        except OSError:
            changed.append(f"{rel} vanished")
    return ", ".join(changed) or None


def _lease_is_live(rec: RunRecord) -> bool:
    import time

    from ..journal.leases import owner_is_dead

    return bool(
        rec.owner and rec.lease_until is not None and rec.lease_until >= time.time() and not owner_is_dead(rec.owner)
    )


async def _drive(store: Store, run_id: str, registry: Any) -> RunState:
    """Resume one run in this process (the interpreter takes the lease)."""
    from ..interpreter import resume as resume_run

    # The interpreter takes the run's lease (LeaseHeldError if a live process drives it).
    result = await resume_run(run_id, store=store, registry=registry)
    return result.state


def _report(state: RunState, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(state.to_json(), indent=2, default=str))
        return
    line = f"run {state.run_id}: {state.status}"
    if state.failed_step:
        line += f" (failed at {state.failed_step}"
        line += f": {_error_text(state.error)})" if state.error else ")"
    click.echo(line)
    if state.compensation_path:
        click.echo(f"  compensated: {' -> '.join(state.compensation_path)}")
    if state.output is not None:
        click.echo(f"  output: {_compact(state.output)}")


def _note(text: str) -> None:
    click.echo(f"sagalang: note: {text}", err=True)


@click.command()
@click.argument("run_id", metavar="ID", required=False)
@click.option("--all", "resume_all", is_flag=True, help="Resume every unfinished run that no live process drives.")
@json_option
@store_option
@plugin_option
@user_errors(EXIT_FAILED)
def resume(
    run_id: str | None, resume_all: bool, as_json: bool, store_url: str | None, plugins: tuple[str, ...]
) -> None:
    """Continue runs whose process died: take the lease, fold the journal, carry on.

    Steps that were in flight are retried with the same idempotency key, or
    compensated when the saga was already rolling back. The run uses the
    definition it started with, even if its .saga file changed since.

    \b
    Exit status (like `run`): 0 completed, 1 compensated or cancelled (or nothing
    to resume), 3 invalid spec, 4 aborted or stuck; with --all, the worst of all runs.
    \b
    Examples:
      sagalang resume 6f1c2e
      sagalang resume --all --store sqlite:///ops/journal.db
    """
    from ..errors import SagaError, SagaInputError, SagaValidationError
    from ..journal.base import TERMINAL_STATES

    if (run_id is None) == (not resume_all):
        raise click.UsageError("give a run ID or --all (not both)")
    registry = make_registry(plugins)

    async def one(store: Store, rec: RunRecord) -> RunState:
        drift = spec_drift(rec)
        if drift:
            _note(f"{drift} since run {rec.run_id} started; resuming with the definition it started with")
        return await _drive(store, rec.run_id, registry)

    async def body(store: Store) -> list[tuple[str, RunState | SagaError]]:
        if run_id is not None:
            rec = await _run_or_fail(store, run_id)
            if rec.status in TERMINAL_STATES:
                raise SagaError(f"run {run_id} has already finished ({rec.status}); there is nothing to resume")
            return [(run_id, await one(store, rec))]
        todo = [r for r in await store.list_runs() if r.status not in TERMINAL_STATES]
        if not todo:
            _note("no unfinished runs to resume")
        results: list[tuple[str, RunState | SagaError]] = []
        for rec in todo:
            if _lease_is_live(rec):
                _note(f"skipping run {rec.run_id}: process {rec.owner} drives it")
                continue
            try:
                results.append((rec.run_id, await one(store, rec)))
            except SagaError as err:  # one broken run does not stop the others
                results.append((rec.run_id, err))
        return results

    try:
        results = _with_store(store_url, body)
    except (SagaValidationError, SagaInputError) as err:
        click.echo(f"sagalang: error: {err}", err=True)
        sys.exit(EXIT_INVALID)
    code = EXIT_OK
    for rid, outcome in results:
        if isinstance(outcome, SagaError):
            click.echo(f"sagalang: error: run {rid}: {outcome}", err=True)
            invalid = isinstance(outcome, SagaValidationError | SagaInputError)
            code = max(code, EXIT_INVALID if invalid else EXIT_FAILED)
            continue
        _report(outcome, as_json)
        code = max(code, exit_code_for(outcome.status))
    sys.exit(code)


@click.command()
@click.argument("run_id", metavar="ID")
@click.option(
    "--wait/--no-wait",
    default=True,
    show_default=True,
    help="When another process drives the run, wait until it has compensated.",
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
    otherwise this command takes the run over and compensates it itself.

    \b
    Exit status (like `run`): 1 cancelled (or compensated), 0 if the run
    completed before the cancel took effect, 4 aborted or stuck; 0 with
    --no-wait once the request is recorded.
    \b
    Examples:
      sagalang cancel 6f1c2e
      sagalang cancel 6f1c2e --no-wait
    """
    import time

    from ..errors import SagaError
    from ..journal.base import TERMINAL_STATES, LeaseHeldError
    from ..state import fold

    registry = make_registry(plugins)

    async def body(store: Store) -> RunState | None:
        rec = await _run_or_fail(store, run_id)
        if rec.status in TERMINAL_STATES:
            raise SagaError(f"run {run_id} has already finished ({rec.status}); there is nothing to cancel")
        if not await store.request_cancel(run_id):
            latest = await _run_or_fail(store, run_id)
            raise SagaError(f"run {run_id} has already finished ({latest.status}); there is nothing to cancel")
        if not _lease_is_live(rec):
            try:
                return await _drive(store, run_id, registry)
            except LeaseHeldError:
                pass  # someone took it over meanwhile: it will see the request
            rec = await _run_or_fail(store, run_id)
        _note(f"cancel requested; {rec.owner} drives run {run_id} and will compensate it")
        if not wait:
            return None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            await asyncio.sleep(0.2)
            latest = await _run_or_fail(store, run_id)
            if latest.status in TERMINAL_STATES:
                state = fold(await store.events(run_id))
                state.run_id = run_id
                return state
            if not _lease_is_live(latest):  # its driver died before finishing: finish the job here
                try:
                    return await _drive(store, run_id, registry)
                except LeaseHeldError:
                    continue
        raise SagaError(f"run {run_id} did not finish compensating within {timeout:g}s; see `sagalang show {run_id}`")

    state = _with_store(store_url, body)
    if state is None:
        sys.exit(EXIT_OK)
    _report(state, as_json)
    sys.exit(exit_code_for(state.status))
