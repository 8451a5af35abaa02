"""What an operator may do to a run from the web view (only with ``--allow-actions``).

Each action is one small registered handler: when it applies to a run (or why
not), what the confirmation page says, and what it does. Every action is
journaled first, as an ``operator.action`` event carrying the action, the
operator (``user@host`` of the server process), the client's address and the
reason typed on the confirmation page; then it acts.

A run no live process drives is driven by this server, in the background, with
the handlers it was started with (``--plugin``, ``[tool.sagalang] plugins``).
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..errors import SagaError
from ..events import Event
from ..journal.base import TERMINAL_STATES, LeaseHeldError, RunRecord, Store
from .liveness import lease_is_live

__all__ = [
    "ACTIONS",
    "OPERATOR_EVENT",
    "Action",
    "ActionContext",
    "ActionRefused",
    "Drivers",
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

    def drive(self, run_id: str) -> None:
        """Resume ``run_id`` here, in the background (cancelling compensates, as the journal says)."""
        if not self.driving(run_id):
            self._tasks[run_id] = asyncio.get_running_loop().create_task(self._drive(run_id), name=f"ui-drive-{run_id}")

    async def _drive(self, run_id: str) -> None:
        from ..interpreter import resume

        try:
            result = await resume(run_id, store=self.store, registry=self._registry())
            log.info("run %s: %s", run_id, result.status)
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
class ActionContext:
    """What an action acts with."""

    store: Store
    record: RunRecord
    operator: str
    reason: str
    client: str | None
    drivers: Drivers

    async def journal(self, action: str) -> None:
        """Record the action in the run's journal, before it takes effect."""
        data = {"action": action, "operator": self.operator, "reason": self.reason, "via": "ui", "client": self.client}
        await self.store.append(self.record.run_id, [Event(OPERATOR_EVENT, self.record.run_id, data=data)])


@dataclass(frozen=True, slots=True)
class Action:
    """One thing an operator can do to a run."""

    name: str
    label: str
    explain: str  # what the confirmation page says it will do
    refusal: Callable[[RunRecord, Drivers], str | None]  # why it does not apply to a run (None: it does)
    perform: Callable[[ActionContext], Awaitable[str]]  # does it; returns what happened, for the operator


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


async def _cancel(ctx: ActionContext) -> str:
    from ..interpreter import cancel, live_run

    rec = ctx.record
    await ctx.journal("cancel")
    # Flags the run in the store (its driver, wherever it is, polls the flag) and interrupts a run this
    # process drives at once.
    if not await cancel(rec.run_id, store=ctx.store):
        raise ActionRefused("the run finished before the cancel took effect")
    if live_run(ctx.store, rec.run_id) is not None or ctx.drivers.driving(rec.run_id) or lease_is_live(rec):
        return "cancel requested: the process driving the run stops it and compensates"
    ctx.drivers.drive(rec.run_id)
    return "cancel requested: no process drove the run, so this server compensates it"


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


async def _resume(ctx: ActionContext) -> str:
    rec = ctx.record
    await ctx.journal("resume")
    ctx.drivers.drive(rec.run_id)
    return "resuming: this server took the run over and carries on from its journal"


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
