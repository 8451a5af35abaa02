"""The example specs under fault injection: every failure point, the saga invariants hold.

For every example and every step (``fail_at`` it): the saga ends in the state
its step classes call for; every completed step with an undo is compensated
exactly once, in reverse dependency order; skipped, never-started and
post-pivot steps are not; in-flight siblings finish before any undo starts.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from sagalang.events import Event
from sagalang.graph import SagaGraph
from sagalang.interpreter import run
from sagalang.journal.memory import MemoryStore
from sagalang.plugins import Registry
from sagalang.spec import Spec, load

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "specs" / "examples"
NAMES = sorted(p.stem for p in EXAMPLES.glob("*.saga") if (EXAMPLES / f"{p.stem}.input.json").is_file())

_cache: dict[str, tuple[Spec, Registry]] = {}


class InstantClock:
    """Backoff delays (seconds to minutes in the examples) pass at once."""

    def __init__(self) -> None:
        import time

        self.time = time.time
        self.slept = 0.0

    async def sleep(self, seconds: float) -> None:
        self.slept += seconds
        await asyncio.sleep(0)

    def random(self) -> float:
        return 0.5


def _load(name: str) -> tuple[Spec, Registry]:
    if name not in _cache:
        registry = Registry.discover(cwd=ROOT, entry_points=False)
        _cache[name] = (load(EXAMPLES / f"{name}.saga", registry), registry)
    return _cache[name]


def _points(spec: Spec) -> list[str]:
    """Every step that can fail: top-level steps and those of called sagas (``caller/step``)."""
    out: list[str] = []

    def walk(graph: SagaGraph, prefix: str) -> None:
        for name in graph.order:
            step = graph.steps[name]
            out.append(prefix + name)
            if step.call is not None:
                walk(spec.graphs[step.call.saga], f"{prefix}{name}/")

    walk(spec.graph, "")
    return out


def _graph_of(spec: Spec, scope: str) -> SagaGraph:
    graph = spec.graph
    for part in [p for p in scope.split("/") if p]:
        call = graph.steps[part].call
        assert call is not None
        graph = spec.graphs[call.saga]
    return graph


def _last_attempt(events: list[Event]) -> list[Event]:
    starts = [i for i, e in enumerate(events) if e.kind == "saga.started"]
    return events[starts[-1] :]


def _check_invariants(spec: Spec, events: list[Event], status: str, where: str) -> None:
    events = _last_attempt(events)
    kinds = [e.kind for e in events]
    succeeded = {e.step for e in events if e.kind == "step.succeeded" and e.item is None}
    undone = [e.step for e in events if e.kind == "compensation.succeeded" and e.item is None]
    assert len(undone) == len(set(undone)), f"{where}: a step was compensated twice: {undone}"
    if "saga.compensating" in kinds:
        start = kinds.index("saga.compensating")
        # In-flight siblings finished (or failed) before the first undo.
        assert not any(k.startswith("step.") for k in kinds[start:]), where
        started = {e.step for e in events[:start] if e.kind == "step.started"}
        for q in undone:
            assert q in started, f"{where}: {q} was compensated but never started"
        skipped = {e.step for e in events if e.kind == "step.skipped"}
        assert not skipped & set(undone), where
        # Completed steps with an undo were all compensated.
        for q in succeeded:
            scope, _, name = q.rpartition("/")
            step = _graph_of(spec, scope).steps[name]
            if step.undo is not None or step.use is not None:
                assert q in undone, f"{where}: {q} completed but was not compensated"
        # Reverse dependency order: a step's undo starts after its dependents' undos ended.
        pos_start = {e.step: i for i, e in enumerate(events) if e.kind == "compensation.started" and e.item is None}
        pos_done = {e.step: i for i, e in enumerate(events) if e.kind == "compensation.succeeded" and e.item is None}
        for q in undone:
            scope, _, name = q.rpartition("/")
            prefix = f"{scope}/" if scope else ""
            graph = _graph_of(spec, scope)
            for later in graph.descendants(name):
                if prefix + later in pos_done and prefix + later not in (q,):
                    assert pos_done[prefix + later] < pos_start[q] or q.startswith(prefix + later + "/"), (
                        f"{where}: {q} undone before its dependent {prefix + later}"
                    )
    if status == "stuck":
        assert "saga.compensating" not in kinds and not undone, where
    if status == "completed":
        assert not undone, where


@pytest.mark.parametrize("name", NAMES)
def test_example_under_every_failure_point(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGALANG_EXAMPLES_DB", str(tmp_path / "effects.db"))
    spec, registry = _load(name)
    data: dict[str, Any] = json.loads((EXAMPLES / f"{name}.input.json").read_text())

    async def one(fail_at: tuple[str, ...]) -> tuple[str, list[Event], Any]:
        store = MemoryStore()
        result = await run(spec, data, store=store, registry=registry, fail_at=fail_at, clock=InstantClock())
        return result.status, await store.events(result.run_id), result

    async def main() -> None:
        baseline, base_events, _ = await one(())
        _check_invariants(spec, base_events, baseline, f"{name} without faults")
        ran = {e.step for e in base_events if e.kind == "step.started"}
        for point in _points(spec):
            status, events, result = await one((point,))
            where = f"{name} --fail-at {point}"
            assert status in ("completed", "compensated", "stuck", "aborted"), where
            _check_invariants(spec, events, status, where)
            if point not in ran:
                continue  # skipped (when) in this input: the fault never fires
            if status == "completed":
                # Only possible when the failure was absorbed by a whole-saga retry that skips it.
                assert "saga.retrying" in [e.kind for e in events], where
            elif status == "stuck":
                assert result.state.failed_step is not None, where
            else:
                assert status != "aborted", f"{where}: a compensation failed: {result.error}"

    asyncio.run(main())
