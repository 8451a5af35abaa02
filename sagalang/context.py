"""What a handler receives: the call's context (ids, attempt, idempotency key, deadline)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Context", "Failure"]


@dataclass(slots=True)
class Context:
    """Passed to a handler whose signature has a ``ctx`` parameter.

    ``idempotency_key`` is ``saga_id/step`` (``saga_id/step/item`` in a fan-out)
    and stays the same across retries and resumes: a handler that records it
    with its effect can tell a repeated call from a new one. For an undo,
    ``compensating`` is True and ``result`` holds the step's output (None when
    the step's outcome is uncertain: it timed out, was cancelled or crashed).
    A context describes one call: treat it as read-only (a new one is made for
    every attempt).
    """

    saga_id: str
    saga: str
    step: str
    attempt: int = 1
    idempotency_key: str = ""
    item: int | None = None
    deadline: float | None = None  # time.monotonic() value after which the call is timed out
    compensating: bool = False
    result: Any = None
    input: Mapping[str, Any] = field(default_factory=dict)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("sagalang.handler"))

    def time_left(self) -> float | None:
        """Seconds until the deadline (None when the call has no timeout)."""
        import time

        return None if self.deadline is None else max(0.0, self.deadline - time.monotonic())


class Failure(Exception):
    """A handler failure with an explicit error name (matched by ``retry on`` / ``except``).

    ``retryable=False`` makes the failure permanent whatever the retry policy says.
    """

    def __init__(self, name: str, message: str = "", *, retryable: bool | None = None) -> None:
        super().__init__(message or name)
        self.name = name
        self.message = message or name
        self.retryable = retryable
