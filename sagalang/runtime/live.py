"""The runs this process is driving, so a cancel made here reaches them at once.

A cancel from another process is seen by the driver through the store (its
cancel flag); one made in this process, with the same store object, reaches
the run directly, without waiting for the driver to look.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING

from ..journal.base import Store

if TYPE_CHECKING:
    from .run import Run

__all__ = ["LiveRuns", "live_runs"]


class LiveRuns:
    """Runs being driven in this process, by store and run id."""

    def __init__(self) -> None:
        self._by_store: weakref.WeakKeyDictionary[Store, dict[str, Run]] = weakref.WeakKeyDictionary()

    def add(self, run: Run) -> None:
        """``run`` is being driven from now on."""
        self._by_store.setdefault(run.store, {})[run.run_id] = run

    def discard(self, run: Run) -> None:
        """``run`` is no longer driven here."""
        runs = self._by_store.get(run.store)
        if runs is not None and runs.get(run.run_id) is run:
            del runs[run.run_id]

    def get(self, store: Store, run_id: str) -> Run | None:
        """The driver of ``run_id`` of ``store`` in this process, if any."""
        runs = self._by_store.get(store)
        return runs.get(run_id) if runs is not None else None


live_runs = LiveRuns()
