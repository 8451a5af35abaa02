"""What runs next, decided from the run state alone: pure functions and bookkeeping, no asyncio.

The forward loop asks a :class:`Frontier` which steps may start and tells it
which finished; compensation asks :func:`undo_order` in which order to undo.
Both are plain data in, plain data out, so they are tested without running
anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from ..graph import SagaGraph
from ..state import DONE_STATES, StepState

__all__ = ["Frontier", "resume_point", "undo_order"]

# A step that never finished (it was in flight) counts as the latest to have finished.
_LATEST = 1 << 62


class Frontier:
    """The steps of one saga that may start: each waits until all its dependencies are done."""

    __slots__ = ("_dependents", "_waiting", "ready")

    def __init__(self, graph: SagaGraph, done: Iterable[str] = ()) -> None:
        self._dependents = graph.dependents
        finished = set(done)
        if not finished:
            self._waiting = {n: len(graph.deps[n]) for n in graph.order}
            self.ready = list(graph.roots)
            return
        self._waiting = {
            n: sum(1 for d in graph.deps[n] if d not in finished) for n in graph.order if n not in finished
        }
        self.ready = [n for n, left in self._waiting.items() if left == 0]

    def take(self) -> str:
        """The next step to start (the earliest in source order among those ready)."""
        return self.ready.pop(0)

    def done(self, name: str) -> None:
        """``name`` succeeded or was skipped: its dependents wait for one dependency less."""
        waiting = self._waiting
        for d in self._dependents[name]:
            left = waiting[d] - 1
            waiting[d] = left
            if left == 0:
                self.ready.append(d)


def resume_point(graph: SagaGraph, steps: Mapping[str, StepState], prefix: str) -> tuple[list[str], str | None]:
    """From a folded run: the steps of ``graph`` already done, and the first (qualified) step that failed."""
    done: list[str] = []
    failed: str | None = None
    for name in graph.topo:
        st = steps.get(prefix + name)
        if st is None:
            continue
        if st.status in DONE_STATES:
            done.append(name)
        elif st.status == "failed" and failed is None:
            failed = prefix + name
    return done, failed


def undo_order(graph: SagaGraph, names: Iterable[str], steps: Mapping[str, StepState], prefix: str) -> list[str]:
    """``names`` in the order to undo them one by one: reverse completion order, ties by reverse source order."""
    position = graph.order.index

    def finished(name: str) -> tuple[int, int]:
        st = steps.get(prefix + name)
        seq = st.finished_seq if st is not None and st.finished_seq is not None else _LATEST
        return seq, position(name)

    return sorted(names, key=finished, reverse=True)
