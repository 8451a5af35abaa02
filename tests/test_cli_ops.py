"""``sagalang list / show / history / resume / cancel`` against real SQLite stores."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES

from sagalang.cli import main
from sagalang.events import Event
from sagalang.journal.base import RunRecord
from sagalang.journal.sqlite import SQLiteStore

ORDER = EXAMPLES / "order.saga"
SAGALANG = [sys.executable, "-m", "sagalang"]


def _populate(url: str, runs: list[tuple[RunRecord, list[Event]]]) -> None:
    async def go() -> None:
        store = SQLiteStore(url)
        await store.open()
        try:
            for rec, events in runs:
                await store.create_run(rec)
                if events:
                    await store.append(rec.run_id, events)
        finally:
            await store.close()

    asyncio.run(go())


def _record(run_id: str, created: float, **kw: Any) -> RunRecord:
    spec = {"order.saga": ORDER.read_text()}
    base: dict[str, Any] = {
        "run_id": run_id,
        "saga": "order_fulfillment",
        "entry": "order.saga",
        "spec": spec,
        "spec_hash": "f" * 64,
        "input": {"order_id": "A-1", "card": "***"},
        "created_at": created,
        "spec_path": str(ORDER),
    }
    base.update(kw)
    return RunRecord(**base)


def _compensated_journal(run_id: str) -> list[Event]:
    def e(kind: str, step: str | None = None, **kw: Any) -> Event:
        return Event(kind, run_id, step=step, **kw)

    return [
        e("saga.started", data={"saga": "order_fulfillment", "input": {"order_id": "A-1", "card": "***"}}),
        e("step.started", "reserve", attempt=1),
        e("step.succeeded", "reserve", attempt=1, data={"output": {"reservation_id": "R-1"}}),
        e("step.started", "charge", attempt=1),
        e(
            "step.failed",
            "charge",
            attempt=1,
            data={"error": {"type": "payments.Declined", "message": "card declined"}, "final": True},
        ),
        e(
            "saga.compensating",
            data={
                "reason": "failure",
                "step": "charge",
                "error": {"type": "payments.Declined", "message": "card declined"},
            },
        ),
        e("compensation.started", "reserve", attempt=1),
        e("compensation.succeeded", "reserve", attempt=1),
        e("saga.compensated", data={"step": "charge"}),
    ]


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A store with three runs: completed, compensated, and one still running."""
    url = f"sqlite:///{tmp_path}/journal.db"
    done = [
        Event("saga.started", "r-done", data={"saga": "order_fulfillment"}),
        Event("step.started", "r-done", step="reserve", attempt=1),
        Event("step.succeeded", "r-done", step="reserve", attempt=1, data={"output": {"reservation_id": "R-9"}}),
        Event("saga.completed", "r-done", data={"output": {"tracking": "T-1"}}),
    ]
    _populate(
        url,
        [
            (_record("r-done", 1000.0), done),
            (_record("r-comp", 2000.0), _compensated_journal("r-comp")),
            (_record("r-live", 3000.0), [Event("saga.started", "r-live", data={"saga": "order_fulfillment"})]),
        ],
    )
    return url


def test_list_text_and_json(runner: CliRunner, store_url: str) -> None:
    result = runner.invoke(main, ["list", "--store", store_url])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["RUN", "ID", "SAGA"]
    assert [line.split()[0] for line in lines[1:]] == ["r-live", "r-comp", "r-done"]
    assert "compensated" in lines[2] and "completed" in lines[3]

    result = runner.invoke(main, ["list", "--json", "--status", "compensated", "--store", store_url])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [(r["run_id"], r["status"], r["saga"]) for r in data] == [("r-comp", "compensated", "order_fulfillment")]

    result = runner.invoke(main, ["list", "--json", "--limit", "1", "--store", store_url])
    assert [r["run_id"] for r in json.loads(result.output)] == ["r-live"]


def test_list_uses_the_environment_store(runner: CliRunner, store_url: str) -> None:
    result = runner.invoke(main, ["list", "--json"], env={"SAGALANG_STORE": store_url})
    assert len(json.loads(result.output)) == 3


def test_list_empty_and_bad_store(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["list", "--store", f"sqlite:///{tmp_path}/empty.db"])
    assert result.exit_code == 0 and "no runs" in result.output
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"garbage" * 1000)
    result = runner.invoke(main, ["list", "--store", f"sqlite:///{junk}"])
    assert result.exit_code == 1
    assert "sagalang: error: cannot open the journal" in result.output and "not a database" in result.output
    assert "Traceback" not in result.output
    result = runner.invoke(main, ["list", "--store", "nosuch://x"])
    assert result.exit_code == 1 and "unknown store URL" in result.output


def test_show_text(runner: CliRunner, store_url: str) -> None:
    result = runner.invoke(main, ["show", "r-comp", "--store", store_url])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "run r-comp: saga order_fulfillment — compensated" in out
    assert "failed at charge: payments.Declined: card declined" in out
    assert "compensation path: reserve" in out
    reserve = next(line for line in out.splitlines() if line.strip().startswith("reserve"))
    assert "compensated" in reserve and "attempts 1" in reserve and "R-1" in reserve
    # Steps that never ran are listed from the stored spec, in its order.
    names = [line.split()[0] for line in out.split("steps:")[1].splitlines() if line.startswith("    ")]
    assert names[:6] == ["reserve", "charge", "label", "upgrade", "ship", "notify"]
    assert "4242" not in out  # the journal holds the card redacted


def test_show_json(runner: CliRunner, store_url: str) -> None:
    result = runner.invoke(main, ["show", "r-done", "--json", "--store", store_url])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["status"] == "completed" and data["output"] == {"tracking": "T-1"}
    assert data["steps"]["reserve"]["output"] == {"reservation_id": "R-9"}
    assert data["steps"]["ship"]["status"] == "pending"
    assert data["run"]["run_id"] == "r-done" and "input" not in data  # only the journal's (redacted) input is shown


def test_history_text_and_json(runner: CliRunner, store_url: str) -> None:
    result = runner.invoke(main, ["history", "r-comp", "--store", store_url])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert len(lines) == 9
    assert lines[0].split()[0] == "1" and "saga.started" in lines[0]
    assert "step.failed" in lines[4] and "charge" in lines[4] and "payments.Declined" in lines[4]
    assert lines[-1].split()[2] == "saga.compensated"
    result = runner.invoke(main, ["history", "r-comp", "--json", "--store", store_url])
    events = [json.loads(line) for line in result.output.splitlines()]
    assert [e["seq"] for e in events] == list(range(1, 10))
    assert events[2] == {
        "event": "step.succeeded",
        "run_id": "r-comp",
        "seq": 3,
        "time": events[2]["time"],
        "step": "reserve",
        "attempt": 1,
        "data": {"output": {"reservation_id": "R-1"}},
    }


@pytest.mark.parametrize("command", ["show", "history", "resume", "cancel"])
def test_unknown_id(runner: CliRunner, store_url: str, command: str) -> None:
    result = runner.invoke(main, [command, "nope", "--store", store_url])
    assert result.exit_code == 1, result.output
    assert "sagalang: error: no run 'nope' in" in result.output and "sagalang list" in result.output


@pytest.mark.parametrize("command", ["resume", "cancel"])
def test_finished_run(runner: CliRunner, store_url: str, command: str) -> None:
    result = runner.invoke(main, [command, "r-done", "--store", store_url])
    assert result.exit_code == 1, result.output
    assert "run r-done has already finished (completed); there is nothing to" in result.output


def test_resume_needs_an_id_or_all(runner: CliRunner, store_url: str) -> None:
    result = runner.invoke(main, ["resume", "--store", store_url])
    assert result.exit_code == 2 and "give a run ID or --all" in result.output
