"""The status vocabulary: what a run and a step can be, and which event leads to which run status.

The values are the strings the journal, the stores' ``status`` column and every
JSON output use; a :class:`~enum.StrEnum` member compares equal to its string,
so code may test ``status == RunStatus.STUCK`` against a value read back from a
database. A new run status is one member here: the terminal and active sets
below follow from it (a terminal status is listed in :data:`TERMINAL_RUN_STATUSES`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "ACTIVE_RUN_STATUSES",
    "DONE_STEP_STATUSES",
    "RUN_STATUS_AFTER",
    "TERMINAL_EVENTS",
    "TERMINAL_RUN_STATUSES",
    "RunStatus",
    "StepStatus",
    "status_after",
]


class RunStatus(StrEnum):
    """A run's status, as journaled, stored and printed."""

    QUEUED = "queued"  # submitted, not started by any process yet
    RUNNING = "running"
    COMPENSATING = "compensating"  # backward recovery in progress
    COMPLETED = "completed"
    COMPENSATED = "compensated"  # failed and rolled back cleanly
    ABORTED = "aborted"  # an undo failed for good: a human must look
    STUCK = "stuck"  # a step after the point of no return failed for good: a human must look
    CANCELLED = "cancelled"  # cancelled and rolled back cleanly


class StepStatus(StrEnum):
    """A step's (or a fan-out item's) status in a run's state."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    COMPENSATING = "compensating"
    COMPENSATED = "compensated"
    COMPENSATION_FAILED = "compensation_failed"


# A run in one of these states is over: nothing drives it any more.
TERMINAL_RUN_STATUSES: frozenset[RunStatus] = frozenset(
    {RunStatus.COMPLETED, RunStatus.COMPENSATED, RunStatus.ABORTED, RunStatus.STUCK, RunStatus.CANCELLED}
)
# Every other status: a process drives the run, or will (in declaration order).
ACTIVE_RUN_STATUSES: tuple[RunStatus, ...] = tuple(s for s in RunStatus if s not in TERMINAL_RUN_STATUSES)
# A step in one of these states satisfies its dependents.
DONE_STEP_STATUSES: frozenset[StepStatus] = frozenset({StepStatus.SUCCEEDED, StepStatus.SKIPPED})

# The run status after an event of this kind; kinds not listed leave the status as it was.
RUN_STATUS_AFTER: Mapping[str, RunStatus] = MappingProxyType(
    {
        "saga.started": RunStatus.RUNNING,
        "saga.retrying": RunStatus.RUNNING,
        "saga.compensating": RunStatus.COMPENSATING,
        "saga.completed": RunStatus.COMPLETED,
        "saga.compensated": RunStatus.COMPENSATED,
        "saga.aborted": RunStatus.ABORTED,
        "saga.stuck": RunStatus.STUCK,
        "saga.cancelled": RunStatus.CANCELLED,
    }
)
# The events that end a run, and the status each one ends it in.
TERMINAL_EVENTS: Mapping[str, RunStatus] = MappingProxyType(
    {kind: status for kind, status in RUN_STATUS_AFTER.items() if status in TERMINAL_RUN_STATUSES}
)


def status_after(kinds: Iterable[str]) -> RunStatus | None:
    """The run status after events of these kinds, in order; None when none of them changes it."""
    found: RunStatus | None = None
    for kind in kinds:
        found = RUN_STATUS_AFTER.get(kind, found)
    return found
