"""sagalang.status: one vocabulary of run and step statuses, and one event -> run status table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sagalang import events, state, status
from sagalang.cli import main
from sagalang.events import Event
from sagalang.journal import base, open_store, run_with_store
from sagalang.journal.base import RunRecord, Store
from sagalang.render import STATUS_FILL
from sagalang.state import fold
from sagalang.status import RUN_STATUS_AFTER, TERMINAL_EVENTS, RunStatus, StepStatus, status_after


def test_values_are_the_journal_strings() -> None:
    assert [s.value for s in RunStatus] == [
        "queued",
        "running",
        "compensating",
        "completed",
        "compensated",
        "aborted",
        "stuck",
        "cancelled",
    ]
    assert [s.value for s in StepStatus] == [
        "pending",
        "running",
        "succeeded",
        "failed",
        "skipped",
        "compensating",
        "compensated",
        "compensation_failed",
    ]
    assert json.dumps([RunStatus.STUCK, StepStatus.COMPENSATION_FAILED]) == '["stuck", "compensation_failed"]'
    assert RunStatus.STUCK == "stuck" and "stuck" in status.TERMINAL_RUN_STATUSES


def test_the_old_public_names_are_the_new_ones() -> None:
    assert base.TERMINAL_STATES is status.TERMINAL_RUN_STATUSES
    assert tuple(RunStatus) == base.RUN_STATES
    assert events.TERMINAL_EVENTS is TERMINAL_EVENTS
    assert tuple(StepStatus) == state.STEP_STATES
    assert state.DONE_STATES is status.DONE_STEP_STATUSES


def test_terminal_and_active_statuses_partition_the_run_statuses() -> None:
    terminal, active = status.TERMINAL_RUN_STATUSES, set(status.ACTIVE_RUN_STATUSES)
    assert terminal | active == set(RunStatus) and not terminal & active
    assert status.ACTIVE_RUN_STATUSES == (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.COMPENSATING)
    assert set(TERMINAL_EVENTS.values()) == terminal
    assert all(kind in events.EVENT_KINDS for kind in RUN_STATUS_AFTER)


@pytest.mark.parametrize("kind", sorted(RUN_STATUS_AFTER))
def test_the_fold_follows_the_table(kind: str) -> None:
    run = fold([Event("saga.started", "r", 1), Event(kind, "r", 2)])
    assert run.status == RUN_STATUS_AFTER[kind]
    assert run.terminal is (kind in TERMINAL_EVENTS)


def test_status_after_a_batch() -> None:
    assert status_after([]) is None
    assert status_after(["step.started", "step.succeeded"]) is None
    assert status_after(["saga.started", "step.started"]) is RunStatus.RUNNING
    assert status_after(["saga.compensating", "compensation.started", "saga.compensated"]) is RunStatus.COMPENSATED


async def _implied(store: Store, kinds: list[str]) -> list[str]:
    """The cached status after appending each event kind, without saying the status."""
    out = []
    for i, kind in enumerate(kinds):
        run_id = f"r{i}"
        await store.create_run(RunRecord(run_id, "s", "s.saga", {}, "h", {}, status=RunStatus.QUEUED))
        await store.append(run_id, [Event(kind, run_id, 1, 1.0)])
        rec = await store.get_run(run_id)
        assert rec is not None
        out.append(rec.status)
    return out


KINDS = [*sorted(RUN_STATUS_AFTER), "step.started", "saga.resumed"]
EXPECTED = [RUN_STATUS_AFTER.get(k, RunStatus.QUEUED) for k in KINDS]


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_every_store_implies_the_status_from_the_same_table(tmp_path: Path, backend: str) -> None:
    url = "memory:" if backend == "memory" else f"sqlite:///{tmp_path}/journal.db"
    assert run_with_store(open_store(url), lambda s: _implied(s, KINDS)) == EXPECTED


@pytest.mark.postgres
def test_postgres_implies_the_status_from_the_same_table(pg_url: str) -> None:
    # A queued run that receives any event counts as running there (the worker's claim query relies on it).
    expected = [RunStatus.RUNNING if s is RunStatus.QUEUED else s for s in EXPECTED]
    assert run_with_store(open_store(pg_url), lambda s: _implied(s, KINDS)) == expected


def test_views_cover_every_status() -> None:
    assert set(STATUS_FILL) == set(StepStatus)
    result = CliRunner().invoke(main, ["list", "--help"])
    assert all(s.value in result.output for s in RunStatus)
