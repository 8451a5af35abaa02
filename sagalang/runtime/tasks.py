"""Waiting for steps (or fan-out items) running in tasks of their own."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from .run import Run

__all__ = ["drain"]

K = TypeVar("K")  # what a set of running tasks is keyed by (step name, fan-out item)


async def drain(run: Run, inflight: dict[asyncio.Task[bool], K]) -> list[tuple[K, bool]]:
    """Wait for tasks of ``inflight`` to finish; each finished one's key and outcome, taken out of it.

    A task that raised (a bug, not a failed step) cancels the others and is re-raised;
    a cancel from outside is a cancel of the saga (and nothing finished yet).
    """
    await run.journal.flush()
    try:
        done, _ = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        run.stop.from_outside()
        return []
    out: list[tuple[K, bool]] = []
    # In the order the tasks were started, so that of several that failed at once the first started wins.
    for task in [t for t in inflight if t in done]:
        key = inflight.pop(task)
        exc = None if task.cancelled() else task.exception()
        if exc is not None:
            for other in inflight:
                other.cancel()
            raise exc
        out.append((key, not task.cancelled() and task.result()))
    return out
