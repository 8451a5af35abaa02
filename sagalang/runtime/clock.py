"""Time as the runtime sees it: injected, so tests decide when a backoff or a timer ends."""

from __future__ import annotations

import asyncio
import random
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock"]


class Clock(Protocol):
    """Wall-clock time, waiting, and randomness for jitter."""

    def time(self) -> float:
        """Wall-clock seconds (event timestamps)."""

    async def sleep(self, seconds: float) -> None:
        """Wait between retries."""

    def random(self) -> float:
        """A number in [0, 1) for jitter."""


class SystemClock:
    """The real clock: ``time.time``, ``asyncio.sleep`` and ``random.random``."""

    time = staticmethod(time.time)
    random = staticmethod(random.random)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep``."""
        await asyncio.sleep(seconds)
