"""``sagalang.operations``: leases, spec drift, resume of unfinished runs and cancel, against real SQLite stores.

Runs are driven by the interpreter in this process; a crashed run is the record and
journal of a real run copied into another store without its lease (the process that
drove it is gone). Every wait is on an event the test controls; the cancel's wait
loop gets a clock and a sleep the test drives.
"""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from ops_kit import SPEC, WAIT, Shop, crashed, stop_at, with_sqlite

import sagalang
from sagalang.errors import SagaError
from sagalang.journal.base import RunRecord, Store
from sagalang.journal.leases import make_owner, owner_text
from sagalang.journal.memory import MemoryStore
from sagalang.journal.sqlite import SQLiteStore
from sagalang.operations import (
    UnknownStepError,
    cancel_run,
    check_fail_at,
    fail_at_targets,
    is_orphaned,
    lease_is_live,
    no_return_passed,
    resume_all,
    resume_run,
    spec_drift,
)
from sagalang.plugins import Registry
from sagalang.spec import load


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "shipment.saga"
    path.write_text(SPEC)
    return path


def _record(run_id: str = "r", **kw: Any) -> RunRecord:
    fields: dict[str, Any] = {"saga": "s", "entry": "s.saga", "spec": {}, "spec_hash": "0" * 64, "input": {}}
    return RunRecord(run_id=run_id, **(fields | kw))


def _dead_owner() -> str:
    """The owner id of a process of this host that has exited."""
    code = "from sagalang.journal.leases import make_owner; print(make_owner())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return out.stdout.strip()


# ---- leases -------------------------------------------------------------------------------


def test_lease_is_live() -> None:
    now = 1000.0
    assert not lease_is_live(_record(), now)  # nobody holds it
    assert not lease_is_live(_record(owner="other-host:1:1", lease_until=999.0), now)  # expired
    assert lease_is_live(_record(owner="other-host:1:1", lease_until=1000.0), now)  # other hosts: until expiry
    assert lease_is_live(_record(owner=make_owner(), lease_until=1e12))  # this process
    assert not lease_is_live(_record(owner=_dead_owner(), lease_until=1e12))  # exited: free at once


def test_is_orphaned() -> None:
    dead = _dead_owner()
    assert is_orphaned(_record(status="running"))
    assert is_orphaned(_record(status="compensating", owner=dead, lease_until=1e12))
    assert not is_orphaned(_record(status="running", owner=make_owner(), lease_until=1e12))
    assert not is_orphaned(_record(status="queued"))  # waits for a worker: nobody ever drove it
    assert not is_orphaned(_record(status="completed", owner=dead, lease_until=1e12))
    assert is_orphaned(_record(status="running", owner="other-host:1:1", lease_until=5.0), now=10.0)


def test_the_embedded_stores_take_a_lease_by_the_same_rule(tmp_path: Path) -> None:
    dead = _dead_owner()

    async def body(store: Store) -> None:
        for run_id in ("a", "b"):
            await store.create_run(_record(run_id))
        assert await store.acquire("a", dead, ttl=3600) == 1
        assert await store.acquire("a", "me:1:1", ttl=60) == 2  # an exited holder's lease is free
        assert await store.acquire("b", make_owner(), ttl=3600) == 1
        assert await store.acquire("b", "me:1:1", ttl=60) is None  # a live one is not

    with_sqlite(tmp_path / "j.db", body)
    asyncio.run(body(MemoryStore()))


# ---- spec drift ---------------------------------------------------------------------------


def test_spec_drift(spec_file: Path) -> None:
    spec = load(spec_file, Shop().registry)
    rec = _record(spec=dict(spec.sources), spec_path=str(spec_file))
    assert spec_drift(rec) is None
    assert spec_drift(dataclasses.replace(rec, spec_path=None)) is None
    with_lib = dataclasses.replace(rec, spec={**rec.spec, "lib/pay.saga": "saga pay {}"})
    assert spec_drift(with_lib) == "lib/pay.saga vanished"
    spec_file.write_text(SPEC.replace('"1"', '"2"'))
    assert spec_drift(rec) == "shipment.saga changed"
    spec_file.unlink()
    assert spec_drift(rec) == f"{spec_file} no longer exists"


# ---- --fail-at targets --------------------------------------------------------------------


def test_fail_at_targets_name_steps_inside_sub_sagas(tmp_path: Path) -> None:
    (tmp_path / "pay.saga").write_text(
        textwrap.dedent("""\
        saga pay version "1" {
            step charge { do t.act(tag: "charge") undo t.undo(tag: "charge") }
        }
        saga order version "1" {
            step reserve { do t.act(tag: "reserve") undo t.undo(tag: "reserve") }
            step payment { call pay() }
        }
        """)
    )
    spec = load(tmp_path / "pay.saga", Shop().registry, saga="order")
    assert fail_at_targets(spec) == ["reserve", "payment", "payment/charge"]
    check_fail_at(spec, ["payment/charge", "reserve"])
    with pytest.raises(UnknownStepError) as caught:
        check_fail_at(spec, ["reserve", "reserv"])
    assert caught.value.suggestion == "did you mean 'reserve'?"
    assert str(caught.value) == "saga 'order' has no step 'reserv'; did you mean 'reserve'?"
    with pytest.raises(UnknownStepError, match="its steps: reserve, payment, payment/charge"):
        check_fail_at(spec, ["zzz"])


# ---- resume -------------------------------------------------------------------------------


def test_resume_all_continues_orphans_and_skips_live_runs(spec_file: Path, tmp_path: Path) -> None:
    shop = Shop()
    spec = load(spec_file, shop.registry)
    notes: list[str] = []

    async def body(store: SQLiteStore) -> None:
        await crashed(shop, spec, "pack", store, "orphan")
        live = await crashed(shop, spec, "pack", store, "live")
        assert await store.acquire("live", make_owner(), ttl=3600) is not None  # this process "drives" it
        broken = dataclasses.replace(live, run_id="broken", spec={"shipment.saga": "saga {"})
        await store.create_run(broken)
        shop.gate("pack").set()
        shop.gate("notify").set()
        assert [r.run_id for r in await store.list_runs() if is_orphaned(r)] == ["broken", "orphan"]
        outcomes = {o.run_id: o for o in await resume_all(store, shop.registry, on_note=notes.append)}
        assert set(outcomes) == {"orphan", "live", "broken"}
        done = outcomes["orphan"].state
        assert done is not None and done.status == "completed"
        # The step in flight at the crash is called again, then the saga carries on.
        assert shop.log == ["do pack", "do ship", "do notify"]
        assert outcomes["live"].skipped_by == make_owner() and outcomes["live"].state is None
        assert outcomes["broken"].error is not None and outcomes["broken"].state is None
        assert f"skipping run live: {owner_text(make_owner())} drives it" in notes
        again = await resume_all(store, shop.registry, on_note=notes.append)
        assert {o.run_id for o in again} == {"live", "broken"}  # the orphan has finished

    with_sqlite(tmp_path / "j.db", body)


def test_resume_all_with_nothing_to_do(tmp_path: Path) -> None:
    notes: list[str] = []
    assert with_sqlite(tmp_path / "j.db", lambda s: resume_all(s, Registry(), on_note=notes.append)) == []
    assert notes == ["no unfinished runs to resume"]


def test_resume_run_notes_spec_drift_and_refuses_finished_runs(spec_file: Path, tmp_path: Path) -> None:
    shop = Shop()
    spec = load(spec_file, shop.registry)
    notes: list[str] = []

    async def body(store: SQLiteStore) -> None:
        shop.gate("pack").set()
        await crashed(shop, spec, "notify", store, "r1")
        spec_file.write_text(SPEC.replace("retry attempts 2", "retry attempts 3"))
        shop.gate("notify").set()
        state = await resume_run(store, "r1", shop.registry, on_note=notes.append)
        assert state.status == "completed"
        assert notes == ["shipment.saga changed since run r1 started; resuming with the definition it started with"]
        with pytest.raises(SagaError, match=r"run r1 has already finished \(completed\); there is nothing to resume"):
            await resume_run(store, "r1", shop.registry)
        with pytest.raises(SagaError, match="no run 'nope' in"):
            await resume_run(store, "nope", shop.registry)

    with_sqlite(tmp_path / "j.db", body)


# ---- cancel -------------------------------------------------------------------------------


class ManualClock:
    """A clock that moves only when the cancel's wait loop sleeps; ``on_sleep`` runs at each sleep."""

    def __init__(self, on_sleep: Callable[[], Awaitable[None]] | None = None) -> None:
        self.now = 0.0
        self.sleeps = 0
        self.on_sleep = on_sleep

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds
        if self.on_sleep is not None:
            await self.on_sleep()


def test_cancel_a_finished_run(spec_file: Path, tmp_path: Path) -> None:
    shop = Shop()
    shop.gate("pack").set()
    shop.gate("notify").set()
    spec = load(spec_file, shop.registry)

    async def body(store: SQLiteStore) -> None:
        await sagalang.run(spec, {}, store=store, registry=shop.registry, run_id="done")
        outcome = await cancel_run(store, "done", shop.registry)
        assert outcome.already_finished and outcome.state is not None and outcome.state.status == "completed"
        rec = await store.get_run("done")
        assert rec is not None and not rec.cancel_requested
        with pytest.raises(SagaError, match="no run 'nope' in"):
            await cancel_run(store, "nope", shop.registry)

    with_sqlite(tmp_path / "j.db", body)


def test_cancel_a_run_nobody_drives_compensates_it_here(spec_file: Path, tmp_path: Path) -> None:
    shop = Shop()
    spec = load(spec_file, shop.registry)
    notes: list[str] = []

    async def body(store: SQLiteStore) -> None:
        await crashed(shop, spec, "pack", store, "r")
        outcome = await cancel_run(store, "r", shop.registry, on_note=notes.append)
        assert outcome.state is not None and outcome.state.status == "cancelled"
        assert outcome.no_return is None and not outcome.already_finished
        assert shop.log == ["undo pack", "undo reserve"]  # pack was in flight: its outcome is uncertain
        assert notes == []

    with_sqlite(tmp_path / "j.db", body)


def test_cancel_a_run_nobody_drives_past_its_pivot_goes_forward(spec_file: Path, tmp_path: Path) -> None:
    shop = Shop()
    shop.gate("pack").set()
    spec = load(spec_file, shop.registry)
    notes: list[str] = []

    async def body(store: SQLiteStore) -> None:
        rec = await crashed(shop, spec, "notify", store, "r")
        assert no_return_passed(rec, sagalang.fold(await store.events("r"))) == "ship"
        shop.gate("notify").set()
        outcome = await cancel_run(store, "r", shop.registry, on_note=notes.append)
        assert outcome.state is not None and outcome.state.status == "completed"
        assert outcome.no_return == "ship" and shop.log == ["do notify"]
        assert notes == [
            "cancel requested, but step ship of run r has completed and cannot be undone: "
            "this process carries the run on forward to its end instead of compensating it"
        ]

    with_sqlite(tmp_path / "j.db", body)


def test_cancel_waits_for_the_live_driver(spec_file: Path, tmp_path: Path) -> None:
    shop = Shop()
    spec = load(spec_file, shop.registry)
    notes: list[str] = []

    async def body(store: SQLiteStore) -> None:
        task = await stop_at(shop, spec, "pack", store, "r")
        clock = ManualClock(lambda: _done(task))
        outcome = await cancel_run(store, "r", shop.registry, clock=clock, sleep=clock.sleep, on_note=notes.append)
        assert outcome.state is not None and outcome.state.status == "cancelled"
        assert outcome.driver == make_owner() and (await task).status == "cancelled"
        assert notes == [f"cancel requested; {owner_text(make_owner())} drives run r and will compensate it"]
        assert shop.log == ["do reserve", "do pack", "undo pack", "undo reserve"]

    with_sqlite(tmp_path / "j.db", body)


async def _done(task: asyncio.Task[Any]) -> None:
    await asyncio.wait({task}, timeout=WAIT)


def test_cancel_a_live_run_past_its_pivot_says_it_goes_forward(spec_file: Path, tmp_path: Path) -> None:
    shop = Shop()
    shop.gate("pack").set()
    spec = load(spec_file, shop.registry)
    notes: list[str] = []

    async def body(store: SQLiteStore) -> None:
        task = await stop_at(shop, spec, "notify", store, "r")
        outcome = await cancel_run(store, "r", shop.registry, wait=False, on_note=notes.append)
        assert outcome.state is None and outcome.driver == make_owner() and outcome.no_return == "ship"
        assert notes == [
            "cancel requested, but step ship of run r has completed and cannot be undone: "
            f"{owner_text(make_owner())} carries the run on forward to its end instead of compensating it"
        ]
        shop.gate("notify").set()
        assert (await task).status == "completed"

    with_sqlite(tmp_path / "j.db", body)


def test_cancel_takes_over_when_the_driver_dies_while_it_waits(spec_file: Path, tmp_path: Path) -> None:
    shop = Shop()
    spec = load(spec_file, shop.registry)

    async def body(store: SQLiteStore) -> None:
        await crashed(shop, spec, "pack", store, "r")
        owner = make_owner()
        epoch = await store.acquire("r", owner, ttl=3600)
        assert epoch is not None

        async def driver_dies() -> None:
            await store.release("r", owner, epoch)

        clock = ManualClock(driver_dies)
        outcome = await cancel_run(store, "r", shop.registry, clock=clock, sleep=clock.sleep)
        assert clock.sleeps == 1
        assert outcome.state is not None and outcome.state.status == "cancelled" and outcome.driver is None
        assert shop.log == ["undo pack", "undo reserve"]

    with_sqlite(tmp_path / "j.db", body)


def test_cancel_gives_up_waiting_after_the_timeout(spec_file: Path, tmp_path: Path) -> None:
    shop = Shop()
    spec = load(spec_file, shop.registry)

    async def body(store: SQLiteStore) -> None:
        await crashed(shop, spec, "pack", store, "r")
        assert await store.acquire("r", "other-host:1:1", ttl=3600) is not None  # a driver that never finishes
        clock = ManualClock()
        with pytest.raises(SagaError, match=r"run r did not finish within 3s of the cancel; see `sagalang show r`"):
            await cancel_run(store, "r", shop.registry, timeout=3, poll=0.5, clock=clock, sleep=clock.sleep)
        assert clock.sleeps == 6 and clock.now == 3.0
        rec = await store.get_run("r")
        assert rec is not None and rec.cancel_requested and rec.status == "running"

    with_sqlite(tmp_path / "j.db", body)


# ---- the script of the docs ---------------------------------------------------------------


def test_the_stored_runs_example_of_the_docs(spec_file: Path, tmp_path: Path) -> None:
    """docs/examples/stored_runs.py (shown in docs/operations.md): report, resume orphans, cancel."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "docs" / "examples" / "stored_runs.py"
    loaded = importlib.util.spec_from_file_location("stored_runs_example", path)
    assert loaded is not None and loaded.loader is not None
    example = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(example)
    shop = Shop()
    spec = load(spec_file, shop.registry)

    async def body(store: SQLiteStore) -> None:
        await crashed(shop, spec, "pack", store, "lost")
        await crashed(shop, spec, "pack", store, "held")
        assert await store.acquire("held", make_owner(), ttl=3600) is not None
        spec_file.write_text(SPEC.replace('"1"', '"2"'))
        assert await example.report(store) == [
            "held: running, driven (shipment.saga changed)",
            "lost: running, orphaned (shipment.saga changed)",
        ]
        shop.gate("pack").set()
        shop.gate("notify").set()
        assert await example.resume_orphans(store, shop.registry) == {
            "held": f"driven by {make_owner()}",
            "lost": "completed",
        }
        assert await example.cancel(store, "lost", shop.registry) == "nothing to cancel: it had finished (completed)"
        await store.release("held", make_owner(), 1)
        assert await example.cancel(store, "held", shop.registry) == "cancelled"

    with_sqlite(tmp_path / "j.db", body)
