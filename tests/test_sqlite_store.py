"""The SQLite journal: appends, runs, leases and fencing, group commit, schema, failures, SIGKILL."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from sagalang.errors import StoreError
from sagalang.events import Event
from sagalang.journal import open_store, run_with_store
from sagalang.journal.base import LeaseHeldError, RunRecord, StaleEpochError, Store
from sagalang.journal.leases import hold, lease_held_error, make_owner, owner_is_dead
from sagalang.journal.migrations import LATEST_VERSION
from sagalang.journal.sqlite import SQLiteStore, parse_sqlite_url

T = TypeVar("T")


def arun(coro: Awaitable[T]) -> T:
    """Run one coroutine to completion."""

    async def wrap() -> T:
        return await coro

    return asyncio.run(wrap())


def record(run_id: str = "r1", **kw: Any) -> RunRecord:
    """A run record with a small spec."""
    base: dict[str, Any] = {
        "run_id": run_id,
        "saga": "order",
        "entry": "order.saga",
        "spec": {"order.saga": "saga order version '1' {}"},
        "spec_hash": "abc",
        "input": {"sku": "A-1", "qty": 2},
        "handlers": ("inventory.reserve", "inventory.release"),
    }
    base.update(kw)
    return RunRecord(**base)


def ev(kind: str, run_id: str = "r1", **kw: Any) -> Event:
    """An event to append."""
    return Event(kind, run_id, **kw)


def with_store(url: str, body: Callable[[SQLiteStore], Awaitable[T]]) -> T:
    """Open a store, run ``body``, close it."""
    return run_with_store(SQLiteStore(url), body)


@pytest.fixture
def url(tmp_path: Path) -> str:
    """A fresh store URL under the test's folder."""
    return f"sqlite:///{tmp_path}/store/journal.db"


# -- URLs ----------------------------------------------------------------------------------


def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:///.sagalang/sagalang.db")
    assert isinstance(store, SQLiteStore)
    assert store.path == str(tmp_path / ".sagalang" / "sagalang.db")
    assert SQLiteStore("sqlite:////abs/x.db").path == "/abs/x.db"
    assert parse_sqlite_url("sqlite:///a.db?synchronous=FULL")[1]["synchronous"] == "full"
    assert SQLiteStore("sqlite:///a.db?commit=thread").inline_commit is False
    assert SQLiteStore("sqlite:///a.db").inline_commit is True
    monkeypatch.setenv("SAGALANG_STORE", f"sqlite:///{tmp_path}/env.db")
    env_store = open_store()
    assert isinstance(env_store, SQLiteStore)
    assert env_store.path == str(tmp_path / "env.db")


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("sqlite://x.db", "sqlite:///relative"),
        ("sqlite:///", "path is empty"),
        ("sqlite:///x.db?sync=full", "unknown option"),
        ("sqlite:///x.db?synchronous=off", "synchronous must be"),
        ("sqlite:///x.db?timeout=abc", "timeout must be"),
        ("sqlite:///x.db?commit=later", "commit must be"),
    ],
)
def test_bad_urls(bad: str, words: str) -> None:
    with pytest.raises(StoreError, match=words):
        SQLiteStore(bad)


def test_implements_store_protocol(url: str) -> None:
    assert isinstance(SQLiteStore(url), Store)


# -- runs and the journal --------------------------------------------------------------------


def test_append_assigns_contiguous_seq_and_persists(url: str, tmp_path: Path) -> None:
    async def body(store: SQLiteStore) -> None:
        rec, created = await store.create_run(record())
        assert created and rec.status == "running" and rec.created_at > 0
        first = await store.append("r1", [ev("saga.started", data={"input": {"sku": "A-1"}})])
        assert [e.seq for e in first] == [1]
        more = await store.append(
            "r1",
            [ev("step.started", step="reserve", attempt=1), ev("step.succeeded", step="reserve", data={"id": 7})],
            status="compensating",
        )
        assert [e.seq for e in more] == [2, 3]
        assert more[1].data == {"id": 7} and more[1].time > 0
        assert await store.append("r1", []) == []

    with_store(url, body)

    async def check(store: SQLiteStore) -> None:
        events = await store.events("r1")
        assert [(e.seq, e.kind, e.step) for e in events] == [
            (1, "saga.started", None),
            (2, "step.started", "reserve"),
            (3, "step.succeeded", "reserve"),
        ]
        assert events[1].attempt == 1 and events[2].data == {"id": 7}
        assert [e.seq for e in await store.events("r1", after_seq=2)] == [3]
        rec = await store.get_run("r1")
        assert rec is not None and rec.status == "compensating"
        assert rec.spec == {"order.saga": "saga order version '1' {}"}
        assert rec.input == {"sku": "A-1", "qty": 2}
        assert rec.handlers == ("inventory.reserve", "inventory.release")
        assert await store.get_run("nope") is None
        assert await store.events("nope") == []

    with_store(url, check)  # a second store instance: the data is on disk


def test_create_run_is_idempotent(url: str) -> None:
    async def body(store: SQLiteStore) -> None:
        first, created = await store.create_run(record(input={"qty": 1}))
        again, created2 = await store.create_run(record(input={"qty": 99}, spec_hash="other"))
        assert created and not created2
        assert again.input == {"qty": 1} and again.spec_hash == "abc"
        assert again == first

    with_store(url, body)


def test_append_to_unknown_run_and_unserialisable_data(url: str) -> None:
    async def body(store: SQLiteStore) -> None:
        await store.create_run(record())
        with pytest.raises(StoreError, match="no such run"):
            await store.append("ghost", [ev("saga.started", "ghost")])
        with pytest.raises(StoreError, match="not JSON-serialisable"):
            await store.append("r1", [ev("step.succeeded", data={"x": object()})])
        with pytest.raises(StoreError, match="not JSON-serialisable"):
            await store.create_run(record("r2", input={"x": {1, 2}}))
        assert await store.events("r1") == []
        assert await store.get_run("r2") is None

    with_store(url, body)


def test_list_runs_newest_first_with_filter(url: str) -> None:
    async def body(store: SQLiteStore) -> None:
        for i, status in enumerate(["completed", "running", "compensated", "running"]):
            await store.create_run(record(f"r{i}", status=status, created_at=1000.0 + i))
        assert [r.run_id for r in await store.list_runs()] == ["r3", "r2", "r1", "r0"]
        assert [r.run_id for r in await store.list_runs(status="running")] == ["r3", "r1"]
        assert [r.run_id for r in await store.list_runs(limit=2)] == ["r3", "r2"]
        await store.append("r3", [ev("saga.completed", "r3")], status="completed")
        assert [r.run_id for r in await store.list_runs(status="completed")] == ["r3", "r0"]

    with_store(url, body)


def test_cancel_flag_is_seen_by_another_connection(url: str) -> None:
    async def body(store: SQLiteStore) -> None:
        await store.create_run(record())
        await store.create_run(record("done", status="completed"))
        other = SQLiteStore(url)
        await other.open()
        try:
            assert not await store.cancel_requested("r1")
            assert await other.request_cancel("r1")
            assert await store.cancel_requested("r1")
            rec = await store.get_run("r1")
            assert rec is not None and rec.cancel_requested
            assert not await other.request_cancel("done")  # terminal already
            assert not await other.request_cancel("ghost")
            assert not await store.cancel_requested("ghost")
        finally:
            await other.close()

    with_store(url, body)


# -- leases and fencing ----------------------------------------------------------------------


def test_leases_epochs_and_fencing(url: str) -> None:
    async def body(store: SQLiteStore) -> None:
        await store.create_run(record())
        e1 = await store.acquire("r1", "hostA:1:x", ttl=60)
        assert e1 == 1
        assert await store.acquire("r1", "hostB:2:y", ttl=60) is None  # live lease of another owner
        assert await store.acquire("r1", "hostA:1:x", ttl=60) == 2  # the owner itself: re-acquire bumps
        assert not await store.renew("r1", "hostA:1:x", 1, ttl=60)  # epoch 1 is gone
        assert await store.renew("r1", "hostA:1:x", 2, ttl=60)
        await store.append("r1", [ev("saga.started")], epoch=2)
        with pytest.raises(StaleEpochError, match="epoch 1 was refused; the run's current epoch is 2"):
            await store.append("r1", [ev("step.started", step="x")], epoch=1)
        # A stale append does not fail the good ones committed with it.
        results = await asyncio.gather(
            store.append("r1", [ev("step.started", step="a")], epoch=2),
            store.append("r1", [ev("step.started", step="zombie")], epoch=1),
            store.append("r1", [ev("step.started", step="b")], epoch=2),
            return_exceptions=True,
        )
        assert isinstance(results[1], StaleEpochError)
        assert [e.step for e in await store.events("r1")] == [None, "a", "b"]
        assert [e.seq for e in await store.events("r1")] == [1, 2, 3]
        assert all(e.epoch == 2 for e in await store.events("r1"))
        await store.release("r1", "hostA:1:x", 2)
        rec = await store.get_run("r1")
        assert rec is not None and rec.owner is None and rec.epoch == 2
        assert await store.acquire("r1", "hostB:2:y", ttl=0.05) == 3
        await asyncio.sleep(0.1)  # B's lease expires
        assert await store.acquire("r1", "hostC:3:z", ttl=60) == 4
        with pytest.raises(StoreError, match="no such run"):
            await store.acquire("ghost", "hostC:3:z", ttl=60)

    with_store(url, body)


def _python(code: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, **kw)


def test_dead_local_owner_releases_its_lease_at_once(url: str) -> None:
    dead = _python("from sagalang.journal.leases import make_owner; print(make_owner())").stdout.strip()
    assert owner_is_dead(dead)
    assert not owner_is_dead(make_owner())
    assert not owner_is_dead("some-other-host:1:1")  # other hosts are trusted until expiry
    code = "from sagalang.journal.leases import make_owner; print(make_owner(), flush=True); input()"
    with subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as sleeper:
        assert sleeper.stdout is not None
        alive = sleeper.stdout.readline().strip()
        assert not owner_is_dead(alive)

        async def body(store: SQLiteStore) -> None:
            await store.create_run(record())
            await store.create_run(record("r2"))
            assert await store.acquire("r1", dead, ttl=3600) == 1
            assert await store.acquire("r1", "me:1:1", ttl=60) == 2  # the dead owner's lease is free
            assert await store.acquire("r2", alive, ttl=3600) == 1
            assert await store.acquire("r2", "me:1:1", ttl=60) is None  # a live one is not
            rec = await store.get_run("r2")
            assert rec is not None
            message = str(lease_held_error("r2", rec.owner, rec.lease_until))
            assert f"run r2 is being driven by process {sleeper.pid} on host" in message
            assert "try again after its lease expires at" in message

        try:
            with_store(url, body)
        finally:
            sleeper.kill()


def test_two_processes_race_for_one_lease(url: str) -> None:
    with_store(url, lambda s: s.create_run(record()))
    code = f"""
        import asyncio, sys, time
        from sagalang.journal.sqlite import SQLiteStore
        async def main():
            s = SQLiteStore({url!r}); await s.open()
            while time.time() < float(sys.argv[1]): await asyncio.sleep(0.001)
            print(await s.acquire("r1", sys.argv[2], ttl=60)); await s.close()
        asyncio.run(main())
    """
    start = str(time.time() + 1.0)
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code), start, f"racer{i}:1:1"], stdout=subprocess.PIPE, text=True
        )
        for i in range(2)
    ]
    outs = sorted(p.communicate(timeout=30)[0].strip() for p in procs)
    assert outs == ["1", "None"]


# -- group commit ----------------------------------------------------------------------------


@pytest.mark.parametrize("options", ["", "?commit=thread", "?synchronous=full"])
def test_group_commit_shares_transactions(url: str, options: str) -> None:
    runs, per_run = 40, 5

    async def body(store: SQLiteStore) -> None:
        for i in range(runs):
            await store.create_run(record(f"r{i}"))
        before = store.transactions

        async def saga(i: int) -> None:
            for k in range(per_run):
                await store.append(f"r{i}", [ev("step.started", f"r{i}", step=f"s{k}")])

        await asyncio.gather(*(saga(i) for i in range(runs)))
        commits = store.transactions - before
        # Each round of appends of the concurrent sagas shares one transaction.
        assert commits <= per_run * 2, commits
        assert store.appends >= runs * per_run
        for i in range(runs):
            assert [e.seq for e in await store.events(f"r{i}")] == list(range(1, per_run + 1))
        # Concurrent appends to ONE run still get contiguous, distinct seqs.
        out = await asyncio.gather(*(store.append("r0", [ev("step.retrying", step="x")] * 2) for _ in range(50)))
        seqs = sorted(e.seq for batch in out for e in batch)
        assert seqs == list(range(per_run + 1, per_run + 101))

    with_store(url + options, body)


def test_close_flushes_queued_appends(url: str) -> None:
    async def go() -> None:
        store = SQLiteStore(url)
        await store.open()
        await store.create_run(record())
        tasks = [asyncio.ensure_future(store.append("r1", [ev("step.started", step=f"s{i}")])) for i in range(10)]
        await asyncio.sleep(0)
        await store.close()
        await asyncio.gather(*tasks)

    asyncio.run(go())
    assert len(with_store(url, lambda s: s.events("r1"))) == 10


# -- schema and migrations -------------------------------------------------------------------


def test_fresh_store_records_its_schema_version(url: str, tmp_path: Path) -> None:
    assert with_store(url, lambda s: s.schema_version()) == LATEST_VERSION
    db = tmp_path / "store" / "journal.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"runs", "events", "schema_version", "runs_by_status", "runs_by_created"} <= names
    assert db.stat().st_mode & 0o777 == 0o600  # runs hold their input, secrets included
    assert with_store(url, lambda s: s.schema_version()) == LATEST_VERSION  # reopening migrates nothing


def test_newer_schema_is_refused(url: str, tmp_path: Path) -> None:
    with_store(url, lambda s: s.create_run(record()))
    db = tmp_path / "store" / "journal.db"
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 'from the future', 0)", (LATEST_VERSION + 41,))
    with pytest.raises(StoreError) as info:
        with_store(url, lambda s: s.list_runs())
    message = str(info.value)
    assert f"schema version {LATEST_VERSION + 41}" in message
    assert f"up to {LATEST_VERSION}" in message and "upgrade sagalang" in message


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "effects.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE effects (key TEXT)")
    with pytest.raises(StoreError, match="not a sagalang journal"):
        with_store(f"sqlite:///{db}", lambda s: s.list_runs())


# -- broken environments ---------------------------------------------------------------------


def test_not_a_database(tmp_path: Path) -> None:
    db = tmp_path / "junk.db"
    db.write_bytes(b"this is not an SQLite file at all" * 200)
    with pytest.raises(StoreError, match=r"junk\.db.*not a database.*corrupted"):
        with_store(f"sqlite:///{db}", lambda s: s.list_runs())


def test_corrupted_pages(url: str, tmp_path: Path) -> None:
    async def fill(store: SQLiteStore) -> None:
        for i in range(30):
            await store.create_run(record(f"r{i}", input={"pad": "x" * 3000}))

    with_store(url, fill)
    db = tmp_path / "store" / "journal.db"
    with sqlite3.connect(db) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw = bytearray(db.read_bytes())
    page = 4096
    for off in range(2 * page, len(raw), page):  # scribble over every page but the schema's
        raw[off : off + 64] = b"\xff" * 64
    db.write_bytes(bytes(raw))
    with pytest.raises(StoreError, match=r"malformed|not a database|corrupt"):
        with_store(url, lambda s: s.list_runs())


def test_location_that_cannot_be_created(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(StoreError, match=r"cannot create the folder.*not writable"):
        with_store(f"sqlite:///{tmp_path}/afile/sub/journal.db", lambda s: s.list_runs())
    (tmp_path / "adir.db").mkdir()
    with pytest.raises(StoreError, match="is a directory"):
        with_store(f"sqlite:///{tmp_path}/adir.db", lambda s: s.list_runs())


@pytest.fixture
def readonly_dir(tmp_path: Path) -> Iterator[tuple[Path, Callable[[], None]]]:
    """A folder and a function that makes it read-only (a remounted tmpfs when running as root)."""
    target = tmp_path / "ro"
    target.mkdir()
    if os.geteuid() != 0:
        yield target, lambda: target.chmod(0o555)
        target.chmod(0o755)
        return
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(target)], capture_output=True).returncode:
        pytest.skip("running as root and cannot mount a tmpfs to make a read-only folder")
    try:
        yield target, lambda: subprocess.run(["mount", "-o", "remount,ro", str(target)], check=True)
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def test_read_only_location(readonly_dir: tuple[Path, Callable[[], None]]) -> None:
    folder, make_readonly = readonly_dir
    url = f"sqlite:///{folder}/journal.db"
    with_store(url, lambda s: s.create_run(record()))
    make_readonly()
    with pytest.raises(StoreError, match=r"journal\.db.*not writable|readonly|read-only"):
        with_store(f"sqlite:///{folder}/new/journal.db", lambda s: s.list_runs())

    async def write(store: SQLiteStore) -> None:
        await store.append("r1", [ev("saga.started")])

    with pytest.raises(StoreError, match="journal"):
        with_store(url, write)


def test_disk_full_writes_nothing_half(url: str) -> None:
    async def body(store: SQLiteStore) -> None:
        await store.create_run(record())
        await store.append("r1", [ev("saga.started")])
        assert store._conn is not None
        pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
        store._conn.execute(f"PRAGMA max_page_count = {pages + 2}")  # the "disk" holds two more pages
        big = [ev("step.succeeded", step=f"s{i}", data={"blob": "x" * 4000}) for i in range(10)]
        with pytest.raises(StoreError, match=r"disk is full.*nothing of this write was stored"):
            await store.append("r1", big, status="completed")
        assert [e.seq for e in await store.events("r1")] == [1]
        rec = await store.get_run("r1")
        assert rec is not None and rec.status == "running"
        store._conn.execute("PRAGMA max_page_count = 1000000")
        again = await store.append("r1", [ev("step.started", step="s0")])
        assert [e.seq for e in again] == [2]  # numbering continues without a gap

    with_store(url, body)


def test_tiny_filesystem_fills_up(tmp_path: Path) -> None:
    target = tmp_path / "tiny"
    target.mkdir()
    if (
        os.geteuid() != 0
        or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(target)], capture_output=True
        ).returncode
    ):
        pytest.skip("needs root and tmpfs mounts to make a tiny filesystem")
    try:

        async def body(store: SQLiteStore) -> int:
            await store.create_run(record())
            written = 0
            with pytest.raises(StoreError, match=r"disk is full|disk I/O error"):
                for i in range(1000):
                    await store.append("r1", [ev("step.succeeded", step=f"s{i}", data={"blob": "x" * 3000})])
                    written += 1
            return written

        written = with_store(f"sqlite:///{target}/journal.db", body)
        assert written > 0
        events = with_store(f"sqlite:///{target}/journal.db", lambda s: s.events("r1"))
        assert [e.seq for e in events] == list(range(1, written + 1))  # every acknowledged append is there
    finally:
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


# -- durability under SIGKILL ----------------------------------------------------------------


@pytest.mark.parametrize("options", ["", "?synchronous=full"])
def test_acknowledged_appends_survive_sigkill(url: str, options: str) -> None:
    """A child appends (alone and in concurrent groups), reports each acknowledged seq, then SIGKILLs itself."""
    with_store(url, lambda s: s.create_run(record()))
    code = f"""
        import asyncio, os, signal, sys
        from sagalang.events import Event
        from sagalang.journal.sqlite import SQLiteStore
        async def main():
            s = SQLiteStore({url + options!r}); await s.open()
            for i in range(20):
                out = await s.append("r1", [Event("step.started", "r1", step=f"s{{i}}")])
                print(out[-1].seq, flush=True)
            outs = await asyncio.gather(*(s.append("r1", [Event("step.retrying", "r1", step="g")]) for _ in range(30)))
            print(max(o[-1].seq for o in outs), flush=True)
            os.kill(os.getpid(), signal.SIGKILL)
        asyncio.run(main())
    """
    proc = _python(code, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    acknowledged = [int(x) for x in proc.stdout.split()]
    assert acknowledged[-1] == 50
    events = with_store(url, lambda s: s.events("r1"))
    assert [e.seq for e in events] == list(range(1, 51))
    assert json.dumps([e.to_json() for e in events])  # readable after the crash


def test_an_empty_versioned_file_is_migrated(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:  # a store whose creation stopped before any migration ran
        conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT, applied_at REAL)")
    assert with_store(f"sqlite:///{db}", lambda s: s.schema_version()) == LATEST_VERSION
    assert with_store(f"sqlite:///{db}", lambda s: s.create_run(record()))[1]


def test_hold_fences_a_driver_whose_lease_was_taken_over(url: str) -> None:
    async def body(store: SQLiteStore) -> None:
        await store.create_run(record())
        async with hold(store, "r1", owner="slow:1:1", ttl=0.05) as epoch:
            await store.append("r1", [ev("saga.started")], epoch=epoch)
            time.sleep(0.2)  # the process stalls (no renewals run) past its lease's expiry ...
            taken = await store.acquire("r1", "fast:2:2", ttl=60)  # ... and another one takes the run over
            assert taken == epoch + 1
            with pytest.raises(StaleEpochError):
                await store.append("r1", [ev("step.started", step="late")], epoch=epoch)
        rec = await store.get_run("r1")
        assert rec is not None and rec.owner == "fast:2:2"  # the stale driver's release changed nothing
        assert [e.kind for e in await store.events("r1")] == ["saga.started"]
        with pytest.raises(LeaseHeldError, match="run r1 is being driven by process 2 on host fast; try again after"):
            async with hold(store, "r1", owner="third:3:3"):
                pass

    with_store(url, body)
