"""Operations on stored runs, for the CLI and for scripts alike.

* who drives a run: :func:`lease_is_live`, :func:`is_orphaned`;
* whether its spec files changed on disk since it started: :func:`spec_drift`;
* continuing runs whose process died: :func:`resume_run`, :func:`resume_all`;
* cancelling a run wherever it is driven: :func:`cancel_run`;
* checking fault-injection targets: :func:`check_fail_at`.

The functions never print: what a person should know while they work (a
skipped run, a changed spec, who will compensate) goes to the ``on_note``
callback, and the outcome comes back as a value.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .diagnostics import did_you_mean
from .errors import SagaError
from .journal.base import TERMINAL_STATES, LeaseHeldError, RunRecord, Store
from .journal.leases import lease_is_live, owner_text

if TYPE_CHECKING:
    from .plugins import Registry
    from .spec import Spec
    from .state import RunState

__all__ = [
    "CancelOutcome",
    "ResumeOutcome",
    "UnknownStepError",
    "cancel_run",
    "check_fail_at",
    "fail_at_targets",
    "is_orphaned",
    "lease_is_live",
    "no_return_passed",
    "resume_all",
    "resume_run",
    "spec_drift",
    "stored_run",
]

Note = Callable[[str], None]
_IN_FLIGHT = frozenset({"running", "compensating"})


def _quiet(_: str) -> None:
    """The default ``on_note``: say nothing."""


# ---- who drives a run -------------------------------------------------------------------------


def is_orphaned(record: RunRecord, now: float | None = None) -> bool:
    """A run in flight (running or compensating) that no live process drives: its driver died."""
    return record.status in _IN_FLIGHT and not lease_is_live(record, now)


def spec_drift(record: RunRecord) -> str | None:
    """How the run's spec files on disk differ from the definition it started with (None: unchanged)."""
    if not record.spec_path:
        return None
    entry = Path(record.spec_path)
    if not entry.is_file():
        return f"{record.spec_path} no longer exists"
    folder = entry.parent
    changed = []
    for rel, text in sorted(record.spec.items()):
        try:
            on_disk = (folder / rel).read_text(encoding="utf-8", errors="replace")
        except OSError:
            changed.append(f"{rel} vanished")
            continue
        if on_disk != text:
            changed.append(f"{rel} changed")
    return ", ".join(changed) or None


# ---- fault injection targets ------------------------------------------------------------------


class UnknownStepError(SagaError):
    """A step name (``--fail-at``) that the saga does not have."""

    def __init__(self, name: str, saga: str, known: Sequence[str]) -> None:
        self.name = name
        self.suggestion = did_you_mean(name, known)
        hint = self.suggestion or f"its steps: {', '.join(known)}"
        super().__init__(f"saga {saga!r} has no step {name!r}; {hint}")


def fail_at_targets(spec: Spec) -> list[str]:
    """Every step a run of ``spec`` can fail at, named as ``--fail-at`` names it (``caller/step`` in a sub-saga)."""
    found: list[str] = []

    def walk(saga: str, prefix: str, seen: frozenset[str]) -> None:
        graph = spec.graphs[saga]
        for name in graph.order:
            found.append(prefix + name)
            call = graph.steps[name].call
            if call is not None and call.saga in spec.graphs and call.saga not in seen:
                walk(call.saga, f"{prefix}{name}/", seen | {call.saga})

    walk(spec.entry, "", frozenset({spec.entry}))
    return found


def check_fail_at(spec: Spec, names: Iterable[str]) -> None:
    """Raise :class:`UnknownStepError` for the first name that is no step of ``spec``."""
    known = fail_at_targets(spec)
    for name in names:
        if name not in known:
            raise UnknownStepError(name, spec.entry, known)


# ---- past the point of no return --------------------------------------------------------------


def no_return_passed(record: RunRecord, state: RunState) -> str | None:
    """The completed step past which a run cannot roll back (None: a cancel would compensate it).

    Steps inside a sub-saga count too (``caller/step``). A spec that no longer
    loads gives None: nothing is known about it.
    """
    from .semantics import is_pivot_like
    from .spec import Spec

    try:
        spec = Spec.from_sources(record.spec, record.entry, saga=record.saga or None)
    except (SagaError, OSError, ValueError):
        return None
    for qualified in fail_at_targets(spec):
        st = state.steps.get(qualified)
        if st is None or st.status != "succeeded":
            continue
        saga = spec.entry
        *callers, name = qualified.split("/")
        for caller in callers:
            call = spec.graphs[saga].steps[caller].call
            assert call is not None  # fail_at_targets descends through call steps only
            saga = call.saga
        # A sub-saga's steps count one by one, as the runtime judges them.
        if is_pivot_like(spec.graphs[saga].steps[name]):
            return qualified
    return None


# ---- resume ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ResumeOutcome:
    """What resuming one run came to: its final state, an error, or skipped (another process drives it)."""

    run_id: str
    state: RunState | None = None
    error: SagaError | None = None
    skipped_by: str | None = None  # the owner of the live lease
    drift: str | None = None  # how its spec files changed on disk since it started


async def stored_run(store: Store, run_id: str) -> RunRecord:
    """The record of ``run_id``; SagaError naming the store when it holds no such run."""
    rec = await store.get_run(run_id)
    if rec is None:
        raise SagaError(f"no run {run_id!r} in {store.url} (`sagalang list` shows the runs there)")
    return rec


async def _drive(
    store: Store, run_id: str, registry: Registry | None, listeners: Sequence[Any], step_middleware: Sequence[Any] = ()
) -> RunState:
    """Continue one run in this process; LeaseHeldError when a live process drives it."""
    from .interpreter import resume

    result = await resume(run_id, store=store, registry=registry, listeners=listeners, step_middleware=step_middleware)
    return result.state


async def _resume_one(
    store: Store,
    rec: RunRecord,
    drift: str | None,
    registry: Registry | None,
    listeners: Sequence[Any],
    on_note: Note,
    step_middleware: Sequence[Any] = (),
) -> RunState:
    if drift:
        on_note(f"{drift} since run {rec.run_id} started; resuming with the definition it started with")
    return await _drive(store, rec.run_id, registry, listeners, step_middleware)


async def resume_run(
    store: Store,
    run_id: str,
    registry: Registry | None = None,
    *,
    listeners: Sequence[Any] = (),
    step_middleware: Sequence[Any] = (),
    on_note: Note = _quiet,
) -> RunState:
    """Continue one unfinished run here; SagaError for an unknown or finished run, LeaseHeldError if it is driven."""
    rec = await stored_run(store, run_id)
    if rec.status in TERMINAL_STATES:
        raise SagaError(f"run {run_id} has already finished ({rec.status}); there is nothing to resume")
    return await _resume_one(store, rec, spec_drift(rec), registry, listeners, on_note, step_middleware)


async def resume_all(
    store: Store,
    registry: Registry | None = None,
    *,
    listeners: Sequence[Any] = (),
    step_middleware: Sequence[Any] = (),
    on_note: Note = _quiet,
) -> list[ResumeOutcome]:
    """Continue every unfinished run that no live process drives, one after the other, oldest first.

    A run that cannot be resumed (its spec no longer loads, a handler is
    missing) is reported in its outcome and does not stop the others.
    """
    todo = [r for r in await store.list_runs() if r.status not in TERMINAL_STATES]
    todo.sort(key=lambda r: (r.created_at, r.run_id))
    if not todo:
        on_note("no unfinished runs to resume")
    outcomes: list[ResumeOutcome] = []
    for rec in todo:
        if lease_is_live(rec):
            on_note(f"skipping run {rec.run_id}: {owner_text(rec.owner or '?')} drives it")
            outcomes.append(ResumeOutcome(rec.run_id, skipped_by=rec.owner))
            continue
        drift = spec_drift(rec)
        try:
            state = await _resume_one(store, rec, drift, registry, listeners, on_note, step_middleware)
        except LeaseHeldError:  # taken over since the list was read: that process drives it
            latest = await store.get_run(rec.run_id)
            owner = latest.owner if latest is not None else None
            on_note(f"skipping run {rec.run_id}: {owner_text(owner or '?')} drives it")
            outcomes.append(ResumeOutcome(rec.run_id, skipped_by=owner, drift=drift))
        except SagaError as err:
            outcomes.append(ResumeOutcome(rec.run_id, error=err, drift=drift))
        else:
            outcomes.append(ResumeOutcome(rec.run_id, state=state, drift=drift))
    return outcomes


# ---- cancel ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CancelOutcome:
    """What ``cancel_run`` came to.

    ``state`` is the run's final state, or None when ``wait=False`` left it to
    the process that drives it (``driver``). ``already_finished``: it had ended
    before the request, so nothing was cancelled. ``no_return``: the completed
    step past which the run cannot roll back, so it goes on forward instead.
    """

    run_id: str
    state: RunState | None = None
    already_finished: bool = False
    driver: str | None = None
    no_return: str | None = None


async def _final(store: Store, rec: RunRecord) -> RunState:
    from .state import RunState, fold

    state = fold(await store.events(rec.run_id), RunState(rec.run_id, saga=rec.saga, status=rec.status))
    state.run_id = rec.run_id
    return state


def _driven_note(run_id: str, owner: str | None, no_return: str | None) -> str:
    who = owner_text(owner) if owner else "this process"
    if no_return is None:
        return f"cancel requested; {who} drives run {run_id} and will compensate it"
    return (
        f"cancel requested, but step {no_return} of run {run_id} has completed and cannot be undone: "
        f"{who} carries the run on forward to its end instead of compensating it"
    )


async def cancel_run(
    store: Store,
    run_id: str,
    registry: Registry | None = None,
    *,
    wait: bool = True,
    timeout: float = 300.0,
    poll: float = 0.2,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    listeners: Sequence[Any] = (),
    on_note: Note = _quiet,
) -> CancelOutcome:
    """Cancel a stored run: record the request, then drive it here if nobody does, else wait for its driver.

    A run past its point of no return goes on forward to its end (a cancel
    cannot undo it); ``on_note`` says so. While waiting (every ``poll``
    seconds of ``clock``, for at most ``timeout``), a driver that dies is
    taken over. Raises SagaError for an unknown run or when the wait times out.
    """
    rec = await stored_run(store, run_id)
    if rec.status in TERMINAL_STATES or not await store.request_cancel(run_id):
        latest = await stored_run(store, run_id)
        return CancelOutcome(run_id, await _final(store, latest), already_finished=True)
    no_return = no_return_passed(rec, await _final(store, rec))
    if not lease_is_live(rec):
        if no_return is not None:
            on_note(_driven_note(run_id, None, no_return))
        try:
            return CancelOutcome(run_id, await _drive(store, run_id, registry, listeners), no_return=no_return)
        except LeaseHeldError:
            rec = await stored_run(store, run_id)  # taken over meanwhile: that process sees the request
    on_note(_driven_note(run_id, rec.owner, no_return))
    if not wait:
        return CancelOutcome(run_id, driver=rec.owner, no_return=no_return)
    deadline = clock() + timeout
    while clock() < deadline:
        await sleep(min(poll, max(0.0, deadline - clock())))
        latest = await stored_run(store, run_id)
        if latest.status in TERMINAL_STATES:
            return CancelOutcome(run_id, await _final(store, latest), driver=rec.owner, no_return=no_return)
        if not lease_is_live(latest):  # its driver died before finishing: finish the job here
            try:
                state = await _drive(store, run_id, registry, listeners)
            except LeaseHeldError:
                continue
            return CancelOutcome(run_id, state, no_return=no_return)
    raise SagaError(f"run {run_id} did not finish within {timeout:g}s of the cancel; see `sagalang show {run_id}`")
