"""A saga with a pivot, handlers the test holds at gates, and runs left as a crash leaves them."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import sagalang
from sagalang.journal import run_with_store
from sagalang.journal.base import RunRecord, Store
from sagalang.journal.memory import MemoryStore
from sagalang.journal.sqlite import SQLiteStore
from sagalang.plugins import Registry
from sagalang.spec import Spec

WAIT = 60.0  # a bound on every wait, so that a broken test fails instead of hanging

SPEC = """\
saga shipment version "1" {
    step reserve { do t.act(tag: "reserve") undo t.undo(tag: "reserve") }
    step pack { do t.wait(tag: "pack") undo t.undo(tag: "pack") }
    pivot step ship { do t.act(tag: "ship") }
    step notify {
        do t.wait(tag: "notify")
        retry attempts 2
    }
}
"""

# The same handlers for a CLI run (--plugin): nothing waits there.
PLUGIN = """\
from sagalang.plugins import handler

@handler("t.act")
async def act(tag: str) -> dict:
    return {"id": tag}

@handler("t.undo")
async def undo(tag: str) -> None:
    return None

@handler("t.wait")
async def wait(tag: str) -> dict:
    return {"id": tag}
"""


class Shop:
    """Handlers that log their calls; ``t.wait`` blocks until the test opens its gate."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.gates: dict[str, asyncio.Event] = {}
        self.waiting: dict[str, asyncio.Event] = {}
        self.registry = Registry()
        self.registry.add("t.act", self.act)
        self.registry.add("t.undo", self.undo)
        self.registry.add("t.wait", self.wait)

    def gate(self, tag: str) -> asyncio.Event:
        """The gate ``t.wait(tag)`` waits for."""
        return self.gates.setdefault(tag, asyncio.Event())

    def reached(self, tag: str) -> asyncio.Event:
        """Set once ``t.wait(tag)`` has been called."""
        return self.waiting.setdefault(tag, asyncio.Event())

    async def act(self, tag: str) -> dict[str, str]:
        """Log the call."""
        self.log.append(f"do {tag}")
        return {"id": tag}

    async def undo(self, tag: str) -> None:
        """Log the call."""
        self.log.append(f"undo {tag}")

    async def wait(self, tag: str) -> dict[str, str]:
        """Log the call, then wait for the gate."""
        self.log.append(f"do {tag}")
        self.reached(tag).set()
        await self.gate(tag).wait()
        return {"id": tag}


def with_sqlite(path: Path, body: Callable[[SQLiteStore], Awaitable[Any]]) -> Any:
    """Open a SQLite store at ``path``, await ``body(store)``, close it."""
    return run_with_store(SQLiteStore(f"sqlite:///{path}"), body)


async def stop_at(shop: Shop, spec: Spec, tag: str, store: Store, run_id: str) -> asyncio.Task[Any]:
    """A run of ``spec`` on ``store``, driven in this process until ``t.wait(tag)`` holds it."""
    task = asyncio.create_task(sagalang.run(spec, {}, store=store, registry=shop.registry, run_id=run_id))
    await asyncio.wait_for(shop.reached(tag).wait(), WAIT)
    return task


async def crashed(shop: Shop, spec: Spec, tag: str, store: Store, run_id: str) -> RunRecord:
    """In ``store``: run ``run_id`` as its process left it when it died while ``t.wait(tag)`` ran."""
    scratch = MemoryStore()
    task = await stop_at(shop, spec, tag, scratch, run_id)
    rec = await scratch.get_run(run_id)
    events = await scratch.events(run_id)
    task.cancel()  # the original compensates in scratch: wait for it, then forget its calls
    with contextlib.suppress(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)
    shop.log.clear()
    shop.reached(tag).clear()
    assert rec is not None
    await store.create_run(dataclasses.replace(rec, owner=None, lease_until=None, epoch=0))
    await store.append(run_id, events)
    found = await store.get_run(run_id)
    assert found is not None
    return found
