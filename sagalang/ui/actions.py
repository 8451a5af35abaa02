"""What an operator may do to a run from the web view (only with ``--allow-actions``).

Each action is one small registered handler: when it applies to a run (or why
not), what the confirmation page says, and what it does. Every action is
journaled first, as an ``operator.action`` event carrying the action, the
operator (``user@host`` of the server process), the client's address and the
reason typed on the confirmation page; then it acts.

A run no live process drives is driven by this server, in the background, with
the handlers it was started with (``--plugin``, ``[tool.sagalang] plugins``).

An action that needs more than a reason (a step to start from, an event's
data) declares :class:`Field` s: the confirmation page asks for them and the
action reads them from :attr:`ActionContext.values`.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import socket
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import SagaError
from ..events import Event
from ..journal.base import TERMINAL_STATES, LeaseHeldError, RunRecord, Store
from ..operations import cancel_run, lease_is_live, resume_run

__all__ = [
    "ACTIONS",
    "OPERATOR_EVENT",
    "Action",
    "ActionContext",
    "ActionRefused",
    "Drivers",
    "Field",
    "Outcome",
    "available",
    "operator_id",
    "register",
]

log = logging.getLogger("sagalang.ui")

OPERATOR_EVENT = "operator.action"
MAX_REASON = 500


class ActionRefused(SagaError):
    """The action does not apply (any more): the message says why, for the operator."""


def operator_id() -> str:
    """Who acts: ``user@host`` of this process."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


class Drivers:
    """Runs this server drives in the background (at most one task per run)."""

    def __init__(self, store: Store, registry: Callable[[], Any]) -> None:
        self.store = store
        self._registry = registry
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def driving(self, run_id: str) -> bool:
        """Whether this server drives ``run_id`` now."""
        task = self._tasks.get(run_id)
        return task is not None and not task.done()

    def registry(self) -> Any:
        """The handler registry runs are driven with."""
        return self._registry()

    def drive(self, run_id: str, work: Callable[[], Awaitable[object]]) -> None:
        """Do ``work`` (which drives ``run_id``) here in the background, unless this server drives it already."""
        if not self.driving(run_id):
            task = asyncio.get_running_loop().create_task(self._drive(run_id, work), name=f"ui-drive-{run_id}")
            self._tasks[run_id] = task

    async def _drive(self, run_id: str, work: Callable[[], Awaitable[object]]) -> None:
        try:
            await work()
            log.info("run %s: this server has done its part", run_id)
        except LeaseHeldError:
            log.info("run %s: another process took it over; it will act on the journal", run_id)
        except SagaError as err:
            log.error("run %s: cannot drive it: %s", run_id, err)
        finally:
            self._tasks.pop(run_id, None)

    async def wait(self, timeout: float | None = None) -> set[asyncio.Task[None]]:
        """Wait until the runs this server drives have ended (or ``timeout`` passed); those still running."""
        tasks = [t for t in self._tasks.values() if not t.done()]
        if not tasks:
            return set()
        _, late = await asyncio.wait(tasks, timeout=timeout)
        return late

    async def close(self, timeout: float = 10.0) -> None:
        """Let the runs in flight finish for ``timeout`` seconds, then stop them (their lease expires)."""
        late = await self.wait(timeout)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)


@dataclass(frozen=True, slots=True)
class Field:
    """A value an action asks for on its confirmation page, besides the reason."""

    name: str
    label: str
    choices: Callable[[RunRecord], list[str]] | None = None  # a list to pick from (else free text)
    required: bool = True
    multiline: bool = False


@dataclass(frozen=True, slots=True)
class Outcome:
    """What an action did: a line for the log, and the run whose page to show next (None: the one acted on)."""

    message: str
    run_id: str | None = None


@dataclass(frozen=True, slots=True)
class ActionContext:
    """What an action acts with."""

    store: Store
    record: RunRecord
    operator: str
    reason: str
    client: str | None
    drivers: Drivers
    values: Mapping[str, str] = field(default_factory=dict)  # the action's fields, as the operator filled them

    async def journal(self, action: str, run_id: str | None = None) -> None:
        """Record the action in the journal of ``run_id`` (default: the run acted on), before it takes effect."""
        target = run_id or self.record.run_id
        data: dict[str, Any] = {
            "action": action,
            "operator": self.operator,
            "reason": self.reason,
            "via": "ui",
            "client": self.client,
        }
        if self.values:
            data["values"] = dict(self.values)
        await self.store.append(target, [Event(OPERATOR_EVENT, target, data=data)])


@dataclass(frozen=True, slots=True)
class Action:
    """One thing an operator can do to a run."""

    name: str
    label: str
    explain: str  # what the confirmation page says it will do
    refusal: Callable[[RunRecord, Drivers], str | None]  # why it does not apply to a run (None: it does)
    perform: Callable[[ActionContext], Awaitable[Outcome]]  # does it (raise ActionRefused if it cannot)
    fields: tuple[Field, ...] = ()

    def read(self, rec: RunRecord, form: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
        """The values of this action's fields in ``form``, and what is wrong with them (None: nothing)."""
        values: dict[str, str] = {}
        for f in self.fields:
            value = form.get(f.name, "").strip()
            if not value and f.required:
                return values, f"{f.label.lower()}: give a value"
            if value and f.choices is not None and value not in f.choices(rec):
                return values, f"{f.label.lower()}: {value!r} is not one of the choices"
            if value:
                values[f.name] = value
        return values, None


ACTIONS: dict[str, Action] = {}


def register(action: Action) -> Action:
    """Add ``action`` to the actions the web view offers (by its name)."""
    ACTIONS[action.name] = action
    return action


def available(rec: RunRecord, drivers: Drivers) -> list[Action]:
    """The actions that apply to ``rec`` now."""
    return [a for a in ACTIONS.values() if a.refusal(rec, drivers) is None]


def _unfinished(rec: RunRecord) -> str | None:
    return f"the run has finished ({rec.status})" if rec.status in TERMINAL_STATES else None


# ---- cancel ---------------------------------------------------------------------------------


def _cancel_refusal(rec: RunRecord, drivers: Drivers) -> str | None:
    return _unfinished(rec)


async def _cancel(ctx: ActionContext) -> Outcome:
    from ..interpreter import cancel, live_run

    rec = ctx.record
    await ctx.journal("cancel")
    if live_run(ctx.store, rec.run_id) is not None:  # this process drives it: interrupt it at once
        await cancel(rec.run_id, store=ctx.store)
        return Outcome("cancel requested: this server drives the run and compensates it")
    # The library's cancel, off the request: it records the request, and drives the run here
    # (compensating it) when no live process does; a live driver sees the request and compensates.
    store, registry = ctx.store, ctx.drivers.registry()
    ctx.drivers.drive(rec.run_id, lambda: cancel_run(store, rec.run_id, registry, wait=False, on_note=log.info))
    return Outcome("cancel requested")


register(
    Action(
        "cancel",
        "Cancel",
        "Stop the run and compensate every completed step, in reverse order. If a live process drives the run, "
        "it sees the request and compensates; otherwise this server takes the run over and compensates it.",
        _cancel_refusal,
        _cancel,
    )
)


# ---- resume ---------------------------------------------------------------------------------


def _resume_refusal(rec: RunRecord, drivers: Drivers) -> str | None:
    from ..interpreter import live_run

    if (why := _unfinished(rec)) is not None:
        return why
    if drivers.driving(rec.run_id) or live_run(drivers.store, rec.run_id) is not None:
        return "this server drives the run already"
    if lease_is_live(rec):
        return f"a live process drives the run ({rec.owner})"
    return None


async def _resume(ctx: ActionContext) -> Outcome:
    rec = ctx.record
    await ctx.journal("resume")
    store, registry = ctx.store, ctx.drivers.registry()
    ctx.drivers.drive(rec.run_id, lambda: resume_run(store, rec.run_id, registry, on_note=log.info))
    return Outcome("resuming: this server took the run over and carries on from its journal")


register(
    Action(
        "resume",
        "Resume",
        "Take the run over and carry on from its journal, with the definition it started with: steps that were "
        "in flight are retried with the same idempotency key, or compensated if the run was rolling back.",
        _resume_refusal,
        _resume,
    )
)
