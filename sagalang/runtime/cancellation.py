"""Stopping a run: why forward progress stopped, and the handler calls a cancel interrupts.

A run stops for one of three reasons: a step failed for good (``failure``), it
was cancelled (``cancel``), or its saga timeout expired (``timeout``, which is
a cancel). Once stopped nothing new starts; a cancel also interrupts the
handler calls and retry waits in flight (the *zones*). After the pivot has
completed there is nothing to roll back to: a cancel is noted and ignored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

__all__ = ["Stop"]

T = TypeVar("T")


class Stop:
    """The stop state of one run, and the tasks a cancel must interrupt."""

    __slots__ = ("cancel_ignored", "external", "pivot_done", "reason", "siblings_cancel", "zones")

    def __init__(self, pivot_done: Callable[[], bool], siblings_cancel: bool) -> None:
        self.reason: str | None = None  # failure | cancel | timeout
        self.external = False  # the driving task itself was cancelled from outside
        self.cancel_ignored: str | None = None  # a cancel that came after the pivot
        self.pivot_done = pivot_done
        self.siblings_cancel = siblings_cancel  # `on failure { siblings cancel }`
        # Tasks running a handler call or a retry wait. A list: it holds one or two tasks.
        self.zones: list[asyncio.Task[Any]] = []

    @property
    def stopped(self) -> bool:
        """True once forward progress has stopped."""
        return self.reason is not None

    def cancel(self, reason: str = "cancel") -> None:
        """Stop forward progress and interrupt the calls in flight (compensation follows)."""
        if self.reason is None and self.pivot_done():
            self.cancel_ignored = self.cancel_ignored or reason
            return
        if self.reason is None:
            self.reason = reason
        self._interrupt()

    def from_outside(self) -> None:
        """The task driving the run was cancelled from outside: that is a cancel of the saga."""
        if self.reason is None:
            self.reason = "cancel"
            self.external = True
        me = asyncio.current_task()
        for task in list(self.zones):
            if task is not me:
                task.cancel()

    def failed_for_good(self) -> None:
        """A step failed for good: start nothing new; ``siblings cancel`` interrupts the rest."""
        if self.reason is None:
            self.reason = "failure"
            if self.siblings_cancel:
                self._interrupt()

    def _interrupt(self) -> None:
        for task in list(self.zones):
            task.cancel()

    async def zoned(self, work: Awaitable[T]) -> T:
        """Await ``work`` where a cancel can interrupt it."""
        task = asyncio.current_task()
        assert task is not None
        zones = self.zones
        zones.append(task)
        try:
            return await work
        finally:
            zones.remove(task)
