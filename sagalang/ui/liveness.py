"""Whether a process drives a run: the project's one answer, reached through one function."""

from __future__ import annotations

from ..journal.base import RunRecord
from ..journal.queries import HOT_STATES

__all__ = ["is_orphaned", "lease_is_live"]


def lease_is_live(rec: RunRecord) -> bool:
    """Whether a live process holds ``rec``'s lease (the CLI's decision, used as is)."""
    from ..cli.cmd_ops import _lease_is_live

    return _lease_is_live(rec)


def is_orphaned(rec: RunRecord) -> bool:
    """A run in flight that no live process drives: its driver died, and it needs a resume."""
    return rec.status in HOT_STATES and not lease_is_live(rec)
