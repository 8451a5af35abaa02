"""The PostgreSQL store against the real server: the Store protocol, leases, fencing, migrations."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import psycopg
import pytest
from conftest import postgres_dsn

from sagalang.cli import main
from sagalang.errors import StoreError
from sagalang.events import Event
from sagalang.journal import open_store, run_with_store
from sagalang.journal.base import RunRecord, StaleEpochError, Store
from sagalang.journal.migrations import LATEST_VERSION
from sagalang.journal.postgres import CHANNEL, PostgresStore

pytestmark = pytest.mark.postgres

T = TypeVar("T")


def run(fn: Callable[[PostgresStore], Awaitable[T]], url: str, **kw: Any) -> T:
    """Open a store on ``url``, run ``fn`` with it, close it."""
    return run_with_store(PostgresStore(url, **kw), fn)


def record(run_id: str, status: str = "queued", **kw: Any) -> RunRecord:
    """A run record with a small spec bundle."""
    base: dict[str, Any] = {
        "run_id": run_id,
        "saga": "demo",
        "entry": "demo.saga",
        "spec": {"demo.saga": 'saga demo version "1" { step a { do x.y() } }'},
        "spec_hash": "sha256:abc",
        "input": {"n": 1, "nested": {"list": [1, 2.5, "x", None, True]}},
        "handlers": ("x.y",),
        "status": status,
    }
    base.update(kw)
    return RunRecord(**base)


def ev(kind: str, step: str | None = None, **data: Any) -> Event:
    """An event for an as-yet unnumbered position."""
    return Event(kind=kind, run_id="", step=step, data=data)


def sql(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run one statement on the test schema and return its rows."""
    with psycopg.connect(url, autocommit=True, application_name="pytest-sagalang") as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def test_open_creates_the_schema_and_round_trips_a_run(pg_url: str) -> None:
    async def go(store: PostgresStore) -> None:
        assert isinstance(store, Store)
        rec, created = await store.create_run(record("r1", spec_path="/specs/demo.saga", extra={"k": [1]}))
        assert created
        got = await store.get_run("r1")
        assert got is not None
        assert got == rec
        assert got.spec == {"demo.saga": 'saga demo version "1" { step a { do x.y() } }'}
        assert got.input == {"n": 1, "nested": {"list": [1, 2.5, "x", None, True]}}
        assert got.handlers == ("x.y",)
        assert got.status == "queued" and got.epoch == 0 and got.owner is None and not got.cancel_requested
        assert got.spec_path == "/specs/demo.saga" and got.extra == {"k": [1]}
        assert got.created_at > 1e9 and got.updated_at >= got.created_at
        assert await store.get_run("nope") is None

    run(go, pg_url)
    assert sql(pg_url, "SELECT max(version) FROM schema_version") == [(LATEST_VERSION,)]


def test_create_run_is_idempotent(pg_url: str) -> None:
    async def go(store: PostgresStore) -> None:
        first, created = await store.create_run(record("same", input={"v": 1}))
        again, created_again = await store.create_run(record("same", input={"v": 2}))
        assert created and not created_again
        assert again == first and again.input == {"v": 1}

    run(go, pg_url)
    assert sql(pg_url, "SELECT count(*) FROM runs") == [(1,)]


def test_list_runs_newest_first_and_by_status(pg_url: str) -> None:
    async def go(store: PostgresStore) -> None:
        for i in range(4):
            await store.create_run(record(f"r{i}", status="queued" if i % 2 else "running", created_at=100.0 + i))
        assert [r.run_id for r in await store.list_runs()] == ["r3", "r2", "r1", "r0"]
        assert [r.run_id for r in await store.list_runs(status="queued")] == ["r3", "r1"]
        assert [r.run_id for r in await store.list_runs(limit=2)] == ["r3", "r2"]
        assert await store.count_by_status() == {"queued": 2, "running": 2}

    run(go, pg_url)


def test_append_numbers_events_and_caches_status(pg_url: str) -> None:
    async def go(store: PostgresStore) -> None:
        await store.create_run(record("r"))
        out = await store.append("r", [ev("saga.started", saga="demo"), ev("step.started", "a")])
        assert [e.seq for e in out] == [1, 2] and all(e.run_id == "r" and e.time > 0 for e in out)
        run_ = await store.get_run("r")
        assert run_ is not None and run_.status == "running"  # queued -> running on the first events
        await store.append("r", [ev("step.succeeded", "a", output={"id": 7})])
        await store.append("r", [ev("saga.completed", output={"id": 7})])
        events = await store.events("r")
        assert [(e.seq, e.kind) for e in events] == [
            (1, "saga.started"),
            (2, "step.started"),
            (3, "step.succeeded"),
            (4, "saga.completed"),
        ]
        assert events[2].data == {"output": {"id": 7}} and events[2].step == "a"
        assert [e.seq for e in await store.events("r", after_seq=2)] == [3, 4]
        done = await store.get_run("r")
        assert done is not None and done.status == "completed"
        # An explicit status wins over the one the events imply.
        await store.create_run(record("s"))
        await store.append("s", [ev("saga.compensating", reason="failure")])
        s = await store.get_run("s")
        assert s is not None and s.status == "compensating"
        await store.append("s", [], status="aborted")
        s = await store.get_run("s")
        assert s is not None and s.status == "aborted"
        with pytest.raises(StoreError, match="unknown run"):
            await store.append("missing", [ev("saga.started")])

    run(go, pg_url)


def test_an_append_is_written_when_the_previous_writers_just_finished(pg_url: str) -> None:
    # A writer task that has finished stays in the writer set until its done-callback
    # runs; an append arriving in that window must still get a writer (it used to hang).
    async def go(store: PostgresStore) -> None:
        await store.create_run(record("w"))

        async def finished() -> None:
            return None

        stale = [asyncio.create_task(finished()) for _ in range(4)]
        await asyncio.gather(*stale)
        store._writers.update(stale)
        out = await asyncio.wait_for(store.append("w", [ev("saga.started", saga="demo")]), timeout=10)
        assert [e.seq for e in out] == [1]

    run(go, pg_url)


def test_concurrent_appends_get_distinct_contiguous_seqs(pg_url: str) -> None:
    async def go(store: PostgresStore) -> None:
        await store.create_run(record("r"))

        async def writer(n: int) -> None:
            for i in range(10):
                await store.append("r", [ev("step.started", f"s{n}", i=i), ev("step.succeeded", f"s{n}", i=i)])

        await asyncio.gather(*(writer(n) for n in range(5)))
        seqs = [e.seq for e in await store.events("r")]
        assert seqs == list(range(1, 101))

    run(go, pg_url, max_size=5)


def test_leases_and_fencing(pg_url: str) -> None:
    async def go(store: PostgresStore) -> None:
        await store.create_run(record("r"))
        e1 = await store.acquire("r", "w1", ttl=0.5)
        assert e1 == 1
        assert await store.acquire("r", "w2", ttl=0.5) is None  # w1's lease is live
        await store.append("r", [ev("saga.started")], epoch=e1)
        assert await store.renew("r", "w1", e1, ttl=0.3)
        await asyncio.sleep(0.5)  # w1's lease expires
        e2 = await store.acquire("r", "w2", ttl=10)
        assert e2 == 2
        assert not await store.renew("r", "w1", e1, ttl=10)  # w1 lost it
        with pytest.raises(StaleEpochError, match="epoch 2"):
            await store.append("r", [ev("step.started", "a")], epoch=e1)
        await store.append("r", [ev("step.started", "a")], epoch=e2)
        events = await store.events("r")
        assert [(e.kind, e.epoch) for e in events] == [("saga.started", 1), ("step.started", 2)]
        # release by a stale owner does nothing; by the holder it frees the run.
        await store.release("r", "w1", e1)
        held = await store.get_run("r")
        assert held is not None and held.owner == "w2"
        await store.release("r", "w2", e2)
        free = await store.get_run("r")
        assert free is not None and free.owner is None and free.lease_until is None and free.epoch == 2
        assert await store.acquire("r", "w3", ttl=1) == 3
        with pytest.raises(StoreError, match="unknown run"):
            await store.acquire("missing", "w1", ttl=1)

    run(go, pg_url)


def test_renew_many_reports_lost_leases_and_cancel_flags(pg_url: str) -> None:
    async def go(store: PostgresStore) -> None:
        for rid in ("a", "b", "c"):
            await store.create_run(record(rid))
        claimed = await store.claim("w1", ttl=30, limit=3)
        epochs = {r.run_id: r.epoch for r in claimed}
        assert set(epochs) == {"a", "b", "c"}
        assert await store.request_cancel("b")
        # c is taken over behind w1's back (an operator forcing it, or an expired lease).
        sql(pg_url, "UPDATE runs SET epoch = epoch + 1, owner = 'w2' WHERE run_id = 'c'")
        held = await store.renew_many("w1", epochs, ttl=30)
        assert held == {"a": False, "b": True}

    run(go, pg_url)


def test_claim_is_disjoint_and_respects_leases(pg_url: str) -> None:
    async def go(store: PostgresStore) -> None:
        for i in range(20):
            await store.create_run(record(f"q{i:02}", created_at=1000.0 + i))
        await store.create_run(record("done", status="completed"))
        a, b, c = await asyncio.gather(
            store.claim("w1", ttl=30, limit=8), store.claim("w2", ttl=30, limit=8), store.claim("w3", ttl=30, limit=8)
        )
        ids = [r.run_id for r in a + b + c]
        assert len(ids) == len(set(ids)) == 20 and "done" not in ids
        assert all(r.epoch == 1 and r.lease_until is not None for r in a + b + c)
        assert {r.owner for r in a} == {"w1"}
        assert await store.claim("w4", ttl=30, limit=5) == []
        # A claim whose reply was lost: the owner gets back runs leased to it that it is not driving.
        again = await store.claim("w1", ttl=30, limit=20, exclude=[r.run_id for r in a[1:]])
        assert [r.run_id for r in again] == [a[0].run_id] and again[0].epoch == 2
        # Expired leases are claimable by anyone; the epoch moves on.
        sql(pg_url, "UPDATE runs SET lease_until = 0 WHERE owner = 'w2'")
        taken = await store.claim("w4", ttl=30, limit=50)
        assert {r.run_id for r in taken} == {r.run_id for r in b}
        assert all(r.epoch == 2 for r in taken)

    run(go, pg_url)


def test_request_cancel_sets_the_flag_and_notifies(pg_url: str) -> None:
    async def go(store: PostgresStore) -> list[str]:
        listener = await store.connect("test-listen")
        try:
            await listener.execute(f"LISTEN {CHANNEL}")
            await store.create_run(record("r"))
            await store.create_run(record("t", status="completed"))
            assert await store.request_cancel("r")
            assert not await store.request_cancel("t")  # terminal
            assert not await store.request_cancel("missing")
            got = await store.get_run("r")
            assert got is not None and got.cancel_requested
            return [n.payload async for n in listener.notifies(timeout=1.0, stop_after=2)]
        finally:
            await listener.close()

    assert run(go, pg_url) == ["queued:r", "cancel:r"]


def test_open_is_safe_when_many_processes_migrate_at_once(pg_url: str) -> None:
    async def go() -> None:
        stores = [PostgresStore(pg_url) for _ in range(6)]
        await asyncio.gather(*(s.open() for s in stores))
        await asyncio.gather(*(s.close() for s in stores))

    asyncio.run(go())
    assert sql(pg_url, "SELECT version FROM schema_version ORDER BY version") == [
        (v,) for v in range(1, LATEST_VERSION + 1)
    ]


def test_a_newer_schema_is_refused(pg_url: str) -> None:
    run(lambda s: s.list_runs(), pg_url)
    sql(
        pg_url,
        "INSERT INTO schema_version (version, description, applied_at) VALUES (%s, 'from the future', 0)",
        (LATEST_VERSION + 1,),
    )
    with pytest.raises(StoreError, match=f"newer sagalang.*version {LATEST_VERSION + 1}"):
        run(lambda s: s.list_runs(), pg_url)


def test_without_auto_migrate_an_empty_database_asks_for_migrate(pg_url: str) -> None:
    with pytest.raises(StoreError, match="sagalang migrate"):
        run(lambda s: s.list_runs(), pg_url, migrate=False)


def test_migrate_command(pg_url: str, runner: Any) -> None:
    res = runner.invoke(main, ["migrate", "--store", pg_url])
    assert res.exit_code == 0, res.output
    assert f"migrated from schema version 0 to {LATEST_VERSION}" in res.output
    res = runner.invoke(main, ["migrate", "--store", pg_url])
    assert res.exit_code == 0 and f"already at schema version {LATEST_VERSION}" in res.output
    sql(pg_url, "INSERT INTO schema_version VALUES (%s, 'future', 0)", (LATEST_VERSION + 5,))
    res = runner.invoke(main, ["migrate", "--store", pg_url])
    assert res.exit_code == 1 and "newer sagalang" in res.output and "Traceback" not in res.output


def test_unreachable_server_is_a_clear_error() -> None:
    store = open_store("postgresql://someone:s3cret@127.0.0.1:1/nowhere")
    assert isinstance(store, PostgresStore)
    with pytest.raises(StoreError) as info:
        asyncio.run(store.open())
    text = str(info.value)
    assert "cannot connect to PostgreSQL at postgresql://someone:***@127.0.0.1:1/nowhere" in text
    assert "s3cret" not in text


def test_store_url_from_the_environment(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGALANG_STORE", pg_url)
    store = open_store()
    assert isinstance(store, PostgresStore) and store.url == pg_url
    alias = open_store(pg_url.replace("postgresql://", "postgres://", 1))
    assert isinstance(alias, PostgresStore)

    async def go() -> None:
        await alias.open()
        try:
            await alias.create_run(record("via-alias"))
            assert await alias.get_run("via-alias") is not None
        finally:
            await alias.close()

    asyncio.run(go())


def test_operations_survive_terminated_connections(pg_url: str) -> None:
    async def go(store: PostgresStore) -> None:
        await store.create_run(record("r"))
        epoch = await store.acquire("r", "w1", ttl=30)
        assert epoch is not None
        for round_ in range(3):
            await store.append("r", [ev("step.started", f"s{round_}")], epoch=epoch)
            killed = sql(
                postgres_dsn(),
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s",
                (store.application_name,),
            )
            assert killed, "the store's pooled connections should be visible in pg_stat_activity"
            await store.append("r", [ev("step.succeeded", f"s{round_}")], epoch=epoch)
        events = await store.events("r")
        assert [e.seq for e in events] == list(range(1, 7))
        assert [e.kind for e in events] == ["step.started", "step.succeeded"] * 3

    run(go, pg_url, application_name="sagalang-test-kill", min_size=2)


def test_hand_back_fences_out_the_old_driver_and_notifies(pg_url: str) -> None:
    async def go(store: PostgresStore) -> list[str]:
        listener = await store.connect("test-listen")
        try:
            await store.create_run(record("r", status="running"))
            await listener.execute(f"LISTEN {CHANNEL}")
            [claimed] = await store.claim("w1", ttl=30, limit=1)
            assert not await store.hand_back("r", "w2", claimed.epoch)  # not the holder
            assert await store.hand_back("r", "w1", claimed.epoch)
            with pytest.raises(StaleEpochError):
                await store.append("r", [ev("step.started", "a")], epoch=claimed.epoch)
            back = await store.get_run("r")
            assert back is not None and back.owner is None and back.epoch == claimed.epoch + 1
            [again] = await store.claim("w2", ttl=30, limit=1)  # at once, no lease to wait for
            assert again.epoch == claimed.epoch + 2
            return [n.payload async for n in listener.notifies(timeout=1.0, stop_after=1)]
        finally:
            await listener.close()

    assert run(go, pg_url) == ["released:r"]


def test_a_dead_local_owner_does_not_block_acquire(pg_url: str) -> None:
    import socket
    import subprocess
    import sys

    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = f"{socket.gethostname()}:{int(child.stdout)}:1"

    async def go(store: PostgresStore) -> None:
        await store.create_run(record("r", status="running"))
        assert await store.acquire("r", dead, ttl=3600) == 1
        assert await store.acquire("r", "elsewhere:1:1", ttl=3600) == 2  # the exited process's lease is void
        assert await store.acquire("r", "other-host:1:1", ttl=3600) is None  # a live remote lease is honoured

    run(go, pg_url)


def test_group_commit_isolates_a_bad_append_from_its_neighbours(pg_url: str) -> None:
    async def go(store: PostgresStore) -> None:
        for rid in ("good", "bad", "stale"):
            await store.create_run(record(rid))
        epoch = await store.acquire("stale", "w1", ttl=30)
        assert epoch is not None
        await store.acquire("stale", "w1", ttl=30)  # now epoch + 1: the first epoch is stale
        results = await asyncio.gather(
            store.append("good", [ev("saga.started")]),
            store.append("bad", [ev("step.succeeded", "a", output="nul \u0000 byte")]),
            store.append("stale", [ev("saga.started")], epoch=epoch),
            store.append("good", [ev("step.started", "a")]),
            return_exceptions=True,
        )
        assert [e.seq for e in results[0]] == [1]  # type: ignore[union-attr]
        assert isinstance(results[1], StoreError) and not isinstance(results[1], StaleEpochError)
        assert isinstance(results[2], StaleEpochError)
        assert [e.seq for e in results[3]] == [2]  # type: ignore[union-attr]
        assert [e.kind for e in await store.events("good")] == ["saga.started", "step.started"]
        assert await store.events("bad") == [] and await store.events("stale") == []

    run(go, pg_url)


def test_create_runs_in_bulk(pg_url: str) -> None:
    async def go(store: PostgresStore) -> None:
        await store.create_run(record("r0"))
        added = await store.create_runs([record(f"r{i}") for i in range(5)])
        assert added == 4
        assert sorted(r.run_id for r in await store.list_runs(status="queued")) == [f"r{i}" for i in range(5)]

    run(go, pg_url)
