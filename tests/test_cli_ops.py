"""``sagalang list / show / history / resume / cancel`` against real SQLite stores."""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import EXAMPLES
from ops_kit import PLUGIN as SHOP_PLUGIN
from ops_kit import SPEC, Shop, crashed, with_sqlite

from sagalang.cli import main
from sagalang.events import Event
from sagalang.journal import run_with_store
from sagalang.journal.base import RunRecord
from sagalang.journal.leases import make_owner
from sagalang.journal.sqlite import SQLiteStore
from sagalang.spec import load

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


def test_show_says_whether_a_process_drives_the_run(runner: CliRunner, store_url: str) -> None:
    result = runner.invoke(main, ["show", "r-live", "--store", store_url])
    assert result.exit_code == 0, result.output
    assert "driven by nobody: its process is gone (`sagalang resume r-live` continues it)" in result.output
    _with_lease(store_url, "r-live", make_owner())
    result = runner.invoke(main, ["show", "r-live", "--store", store_url])
    assert f"driven by {make_owner()} (lease until" in result.output and "nobody" not in result.output


def _with_lease(url: str, run_id: str, owner: str) -> None:
    assert run_with_store(SQLiteStore(url), lambda store: store.acquire(run_id, owner, ttl=3600)) is not None


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


def test_show_started_means_what_list_says(runner: CliRunner, tmp_path: Path) -> None:
    # A submitted run: its record is created when queued, its journal starts when a worker picks it up.
    url = f"sqlite:///{tmp_path}/journal.db"
    created, picked = 1_700_000_000.0, 1_700_000_090.0
    journal = [Event("saga.started", "r-q", time=picked, data={"saga": "order_fulfillment"})]
    _populate(url, [(_record("r-q", created), journal)])

    def local(t: float) -> str:
        return datetime.datetime.fromtimestamp(t).astimezone().strftime("%Y-%m-%d %H:%M:%S")

    listed = runner.invoke(main, ["list", "--store", url]).output.splitlines()
    at = listed[0].index("STARTED")
    assert listed[1][at : at + 19] == local(created)
    shown = runner.invoke(main, ["show", "r-q", "--store", url]).output.splitlines()
    assert f"  started   {local(created)}" in shown
    assert f"  picked up {local(picked)} (queued until then)" in shown


@pytest.mark.parametrize("command", ["show", "history", "resume", "cancel"])
def test_unknown_id(runner: CliRunner, store_url: str, command: str) -> None:
    result = runner.invoke(main, [command, "nope", "--store", store_url])
    assert result.exit_code == 1, result.output
    assert "sagalang: error: no run 'nope' in" in result.output and "sagalang list" in result.output


@pytest.mark.parametrize(("command", "code"), [("resume", 1), ("cancel", 6)])
def test_finished_run(runner: CliRunner, store_url: str, command: str, code: int) -> None:
    result = runner.invoke(main, [command, "r-done", "--store", store_url])
    assert result.exit_code == code, result.output
    assert f"run r-done has already finished (completed); there is nothing to {command}" in result.stderr
    assert result.stdout == ""


def test_cancel_a_finished_run_exits_6_and_shows_its_state(runner: CliRunner, store_url: str) -> None:
    result = runner.invoke(main, ["cancel", "r-comp", "--json", "--store", store_url])
    assert result.exit_code == 6, result.output
    assert json.loads(result.stdout)["status"] == "compensated"
    assert "already finished (compensated)" in result.stderr


def test_help_states_the_exit_codes(runner: CliRunner) -> None:
    cancel = " ".join(runner.invoke(main, ["cancel", "--help"]).output.split())
    assert "6 the run had already finished (nothing was cancelled)" in cancel
    assert "0 completed (the cancel came after the point of no return)" in cancel
    resume = " ".join(runner.invoke(main, ["resume", "--help"]).output.split())
    assert "0 when there is nothing to resume" in resume


def test_resume_all_with_nothing_to_resume_exits_0(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["resume", "--all", "--store", f"sqlite:///{tmp_path}/empty.db"])
    assert result.exit_code == 0, result.output
    assert result.stderr == "sagalang: note: no unfinished runs to resume\n" and result.stdout == ""


def test_cancel_past_the_pivot_says_the_run_goes_forward(runner: CliRunner, tmp_path: Path) -> None:
    shop = Shop()
    shop.gate("pack").set()
    (tmp_path / "shipment.saga").write_text(SPEC)
    (tmp_path / "shop_plugin.py").write_text(SHOP_PLUGIN)
    spec = load(tmp_path / "shipment.saga", shop.registry)
    with_sqlite(tmp_path / "j.db", lambda store: crashed(shop, spec, "notify", store, "r"))
    result = runner.invoke(
        main, ["cancel", "r", "--plugin", str(tmp_path / "shop_plugin.py"), "--store", f"sqlite:///{tmp_path}/j.db"]
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "run r: completed"
    assert result.stderr.splitlines() == [
        "sagalang: note: cancel requested, but step ship of run r has completed and cannot be undone: "
        "this process carries the run on forward to its end instead of compensating it",
        "sagalang: note: run r completed: the cancel came after its point of no return",
    ]


def test_resume_needs_an_id_or_all(runner: CliRunner, store_url: str) -> None:
    result = runner.invoke(main, ["resume", "--store", store_url])
    assert result.exit_code == 2 and "give a run ID or --all" in result.output


# -- resume and cancel with real processes ----------------------------------------------------

PLUGIN = """
import asyncio, os
from sagalang.plugins import handler

def _log(line):
    with open(os.environ["OPS_TEST_LOG"], "a") as f:
        f.write(line + "\\n")

@handler("ops.act")
def act(ctx, name: str) -> dict:
    _log(f"do {name} {ctx.idempotency_key}")
    return {"name": name}

@handler("ops.undo")
def undo(ctx, name: str) -> dict:
    _log(f"undo {name}")
    return {}

@handler("ops.wait")
async def wait(ctx, seconds: float) -> dict:
    _log("wait started")
    await asyncio.sleep(seconds)
    _log("wait ended")
    return {}
"""

SLOW_SAGA = """saga slow version "1" {
    step first { do ops.act(name: "first") undo ops.undo(name: "first") }
    step hold  { do ops.wait(seconds: 60) undo ops.undo(name: "hold") }
    step last  { do ops.act(name: "last") undo ops.undo(name: "last") }
}
"""


class Ops:
    """A slow saga, its handlers, a store and a log of handler calls under one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.plugin = folder / "ops_handlers.py"
        self.plugin.write_text(PLUGIN)
        self.spec = folder / "slow.saga"
        self.spec.write_text(SLOW_SAGA)
        self.log = folder / "calls.log"
        self.store = f"sqlite:///{folder}/journal.db"

    def env(self, **extra: str) -> dict[str, str]:
        """Environment for a run: the call log, no SAGALANG_* leaking in."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAGALANG_")}
        env.update(OPS_TEST_LOG=str(self.log), NO_COLOR="1", **extra)
        return env

    def start(self, run_id: str, crash_after: int | None = None, **extra: str) -> subprocess.Popen[str]:
        """``sagalang run`` in the background (killed after its ``crash_after``-th journal append)."""
        args = ["run", str(self.spec), "--plugin", str(self.plugin), "--store", self.store, "--id", run_id]
        crash = [] if crash_after is None else [sys.executable, "-m", "sagalang.testing.crash", str(crash_after)]
        return subprocess.Popen(
            [*(crash or SAGALANG), *args],
            cwd=self.folder,
            env=self.env(**extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def cli(self, runner: CliRunner, *args: str) -> Any:
        """A command in this process, with the plugin and store."""
        extra = ["--plugin", str(self.plugin)] if args[0] in ("resume", "cancel") else []
        return runner.invoke(main, [*args, *extra, "--store", self.store], env=self.env())

    def calls(self) -> list[str]:
        """The handler calls so far."""
        return self.log.read_text().splitlines() if self.log.exists() else []

    def wait_for(self, line: str, timeout: float = 60) -> None:
        """Block until a handler logged ``line``."""
        deadline = time.monotonic() + timeout
        while line not in self.calls():
            assert time.monotonic() < deadline, f"{line!r} never logged: {self.calls()}"
            time.sleep(0.05)

    def crashed(self, run_id: str, after: int) -> None:
        """A run killed (SIGKILL, by ``sagalang.testing.crash``) after its ``after``-th append."""
        proc = self.start(run_id, crash_after=after)
        proc.communicate(timeout=60)
        assert proc.returncode == -signal.SIGKILL


def _kinds(runner: CliRunner, ops: Ops, run_id: str) -> list[str]:
    result = ops.cli(runner, "history", run_id, "--json")
    return [json.loads(line)["event"] for line in result.stdout.splitlines()]


@pytest.fixture
def ops(tmp_path: Path) -> Iterator[Ops]:
    """The slow saga set-up."""
    yield Ops(tmp_path)


def test_cancel_a_run_another_process_drives(runner: CliRunner, ops: Ops) -> None:
    proc = ops.start("c1")
    try:
        ops.wait_for("wait started")
        # A second driver is refused, naming the live one.
        refused = ops.cli(runner, "resume", "c1")
        assert refused.exit_code == 1, refused.output
        assert f"run c1 is being driven by process {proc.pid} on host" in refused.output
        assert "try again after its lease expires at" in refused.output
        result = ops.cli(runner, "cancel", "c1")
        _, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert result.exit_code == 1, result.output
    assert "cancel requested" in result.output and "run c1: cancelled" in result.output
    assert proc.returncode == 1, err  # the driving process compensated and ended `cancelled`
    calls = ops.calls()
    assert calls[-2:] == ["undo hold", "undo first"] and "do last c1/last" not in calls
    kinds = _kinds(runner, ops, "c1")
    assert kinds[-1] == "saga.cancelled" and "compensation.succeeded" in kinds


def test_cancel_with_no_wait(runner: CliRunner, ops: Ops) -> None:
    proc = ops.start("c2")
    try:
        ops.wait_for("wait started")
        result = ops.cli(runner, "cancel", "c2", "--no-wait")
        assert result.exit_code == 0, result.output
        assert "cancel requested" in result.output
        proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 1
    shown = json.loads(ops.cli(runner, "show", "c2", "--json").stdout)
    assert shown["status"] == "cancelled" and shown["compensation_path"] == ["hold", "first"]


def test_cancel_a_run_nobody_drives(runner: CliRunner, ops: Ops) -> None:
    # Appends: [saga.started, first started], then [first succeeded, hold started]: killed before hold ran.
    ops.crashed("c3", after=2)
    assert ops.calls() == ["do first c3/first"]
    result = ops.cli(runner, "cancel", "c3")
    assert result.exit_code == 1, result.output
    # hold's outcome is unknown (started, never answered): it is compensated too.
    assert "run c3: cancelled" in result.output and "compensated: hold, first" in result.output
    assert ops.calls() == ["do first c3/first", "undo hold", "undo first"]
    kinds = _kinds(runner, ops, "c3")
    assert kinds[4] == "saga.resumed" and kinds[-1] == "saga.cancelled"
    again = ops.cli(runner, "cancel", "c3")
    assert again.exit_code == 6 and "already finished (cancelled)" in again.output


def test_resume_one_and_all(runner: CliRunner, ops: Ops, tmp_path: Path) -> None:
    fast = tmp_path / "fast.saga"
    fast.write_text(SLOW_SAGA.replace("seconds: 60", "seconds: 0"))
    ops.spec = fast
    ops.crashed("a", after=1)  # [saga.started, first started]: first in flight at the crash
    ops.crashed("b", after=2)  # [first succeeded, hold started]: hold in flight
    result = ops.cli(runner, "resume", "a", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["status"] == "completed"
    # The step in flight at the crash (journaled as started, never answered) ran once, with the run's key.
    assert ops.calls().count("do first a/first") == 1
    history = [json.loads(line) for line in ops.cli(runner, "history", "a", "--json").stdout.splitlines()]
    starts = [e for e in history if e["event"] == "step.started" and e["step"] == "first"]
    assert len(starts) == 2 and {e["data"]["idempotency_key"] for e in starts} == {"a/first"}
    result = ops.cli(runner, "resume", "--all")
    assert result.exit_code == 0, result.output
    assert "run b: completed" in result.output and "run a" not in result.stdout
    listed = json.loads(ops.cli(runner, "list", "--json").stdout)
    assert {r["run_id"]: r["status"] for r in listed} == {"a": "completed", "b": "completed"}
    result = ops.cli(runner, "resume", "--all")
    assert result.exit_code == 0 and "no unfinished runs" in result.output


def test_resume_shows_progress_from_where_the_run_stood(runner: CliRunner, ops: Ops, tmp_path: Path) -> None:
    fast = tmp_path / "fast.saga"
    fast.write_text(SLOW_SAGA.replace("seconds: 60", "seconds: 0"))
    ops.spec = fast
    ops.crashed("b", after=2)  # [first succeeded, hold started]: hold in flight at the crash
    result = ops.cli(runner, "resume", "b", "--progress")
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0] == "run b: resumed here (it was running)"
    assert "hold: attempt 2 (resumed)" in lines and "last: started" in lines
    assert "first: started" not in lines  # done before the crash: folded from the journal, not told again
    assert re.fullmatch(r"run b: completed \(took [0-9.]+ m?s\)", lines[-1])
    assert result.stdout.startswith("run b: completed\n")


def test_resume_of_a_run_someone_cancelled_names_them(runner: CliRunner, ops: Ops) -> None:
    ops.crashed("k", after=2)  # first done, hold started; then the process died
    journal = run_with_store(SQLiteStore(ops.store), lambda store: store.events("k"))
    asked = Event(
        "saga.cancel_requested",
        "k",
        seq=len(journal) + 1,
        time=time.time(),
        data={"reason": "cancel", "by": "ada@ops-1"},
    )
    run_with_store(SQLiteStore(ops.store), lambda store: store.append("k", [asked]))
    result = ops.cli(runner, "resume", "k")
    assert result.exit_code == 1, result.output
    assert result.stdout.splitlines()[0] == "run k: cancelled by ada@ops-1"
    assert result.stdout.splitlines()[-1] == "compensated: hold, first"


def test_runs_land_in_the_default_store(runner: CliRunner, ops: Ops, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ops.folder)
    fast = ops.folder / "fast.saga"
    fast.write_text(SLOW_SAGA.replace("seconds: 60", "seconds: 0"))
    env = ops.env()
    result = runner.invoke(main, ["run", str(fast), "--plugin", str(ops.plugin), "--id", "d1"], env=env)
    assert result.exit_code == 0, result.output
    assert (ops.folder / ".sagalang" / "sagalang.db").is_file()
    listed = runner.invoke(main, ["list"], env=env)
    assert listed.exit_code == 0 and "d1" in listed.output and "completed" in listed.output
