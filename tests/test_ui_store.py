"""The listing queries the web view needs, on every store: filters, counts per status, keyset pages."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sagalang.journal import RUN_STATES, RunCursor, RunFilter, RunQueries, RunRecord, open_store
from sagalang.journal.base import Store
from sagalang.journal.migrations import LATEST_VERSION, MIGRATIONS, QUIET_PREDICATE
from sagalang.journal.queries import HOT_STATES, count_sql, select_sql
from sagalang.journal.sqlite import _RUN_COLUMNS

# (run id, saga, status, updated_at): ids chosen so that % and _ matter for the id filter.
RUNS = [
    ("order-001", "order", "completed", 100.0),
    ("order-002", "order", "compensated", 110.0),
    ("order-003", "order", "running", 120.0),
    ("trip_004", "trip", "stuck", 130.0),
    ("trip_005", "trip", "aborted", 140.0),
    ("trip%006", "trip", "running", 150.0),
    ("bank-007", "bank", "queued", 160.0),
    ("bank-008", "bank", "compensating", 170.0),
    ("bank-009", "bank", "completed", 170.0),  # the same update time as bank-008: ordered by id
    ("bank-010", "bank", "cancelled", 180.0),
]


def _record(run_id: str, saga: str, status: str, updated: float) -> RunRecord:
    return RunRecord(
        run_id=run_id,
        saga=saga,
        entry=f"{saga}.saga",
        spec={f"{saga}.saga": "saga x { }"},
        spec_hash="h",
        input={"card": "4111-secret"},
        status=status,
        created_at=updated - 50,
        updated_at=updated,
    )


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "memory":
        yield "memory:"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'journal.db'}"
    else:
        yield request.getfixturevalue("pg_url")


def with_runs(url: str, body: Callable[[Any], Awaitable[Any]]) -> Any:
    """Open a store at ``url`` holding RUNS (with exactly their update times), run ``body`` with it."""

    async def go() -> Any:
        store = open_store(url)
        await store.open()
        try:
            for run in RUNS:
                await store.create_run(_record(*run))
            if url.startswith("postgresql"):
                # PostgreSQL stamps updated_at from its own clock: set the times this test orders by.
                conn = await store.connect()  # type: ignore[attr-defined]
                try:
                    for run_id, _, _, updated in RUNS:
                        await conn.execute("UPDATE runs SET updated_at = %s WHERE run_id = %s", (updated, run_id))
                finally:
                    await conn.close()
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(go())


EXPECTED_ORDER = [r[0] for r in sorted(RUNS, key=lambda r: (r[3], r[0]), reverse=True)]


def _ids(runs: Any) -> list[str]:
    return [r.run_id for r in runs]


def test_every_store_offers_the_queries(store_url: str) -> None:
    assert isinstance(open_store(store_url), RunQueries)


def test_pages_walk_every_run_once_newest_update_first(store_url: str) -> None:
    async def walk(store: Any) -> list[str]:
        seen: list[str] = []
        after = None
        while True:
            page = await store.query_runs(RunFilter(), 3, after)
            assert len(page.runs) <= 3
            seen.extend(_ids(page.runs))
            if page.next is None:
                return seen
            assert page.next == RunCursor(page.runs[-1].updated_at, page.runs[-1].run_id)
            after = RunCursor.decode(page.next.encode())  # as a link carries it

    assert with_runs(store_url, walk) == EXPECTED_ORDER


def test_a_page_that_ends_exactly_has_no_next(store_url: str) -> None:
    page = with_runs(store_url, lambda s: s.query_runs(RunFilter(), len(RUNS)))
    assert _ids(page.runs) == EXPECTED_ORDER and page.next is None
    page = with_runs(store_url, lambda s: s.query_runs(RunFilter(statuses=("stuck",)), 1))
    assert _ids(page.runs) == ["trip_004"] and page.next is None


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        (RunFilter(statuses=("running",)), ["trip%006", "order-003"]),
        (RunFilter(statuses=("stuck", "aborted")), ["trip_005", "trip_004"]),
        (RunFilter(statuses=("completed", "compensating")), ["bank-009", "bank-008", "order-001"]),
        (RunFilter(saga="bank"), ["bank-010", "bank-009", "bank-008", "bank-007"]),
        (RunFilter(saga="trip", statuses=("running",)), ["trip%006"]),
        (RunFilter(id_contains="_"), ["trip_005", "trip_004"]),
        (RunFilter(id_contains="%"), ["trip%006"]),
        (RunFilter(id_contains="-00"), ["bank-009", "bank-008", "bank-007", "order-003", "order-002", "order-001"]),
        (RunFilter(updated_from=120.0, updated_to=150.0), ["trip_005", "trip_004", "order-003"]),
        (RunFilter(updated_from=170.0), ["bank-010", "bank-009", "bank-008"]),
        (RunFilter(statuses=("queued",), saga="order"), []),
    ],
)
def test_filters_select_runs_and_keep_the_order(store_url: str, where: RunFilter, expected: list[str]) -> None:
    page = with_runs(store_url, lambda s: s.query_runs(where, 50))
    assert _ids(page.runs) == expected


def test_a_cursor_continues_after_its_run_even_on_a_tie(store_url: str) -> None:
    page = with_runs(store_url, lambda s: s.query_runs(RunFilter(saga="bank"), 2, RunCursor(170.0, "bank-009")))
    assert _ids(page.runs) == ["bank-008", "bank-007"] and page.next is None


def test_counts_per_status_follow_the_filters(store_url: str) -> None:
    everything = with_runs(store_url, lambda s: s.count_runs(RunFilter()))
    assert everything == {
        "completed": 2,
        "compensated": 1,
        "running": 2,
        "stuck": 1,
        "aborted": 1,
        "queued": 1,
        "compensating": 1,
        "cancelled": 1,
    }
    assert with_runs(store_url, lambda s: s.count_runs(RunFilter(saga="bank"))) == {
        "queued": 1,
        "compensating": 1,
        "completed": 1,
        "cancelled": 1,
    }
    assert with_runs(store_url, lambda s: s.count_runs(RunFilter(statuses=("running", "stuck"), saga="trip"))) == {
        "running": 1,
        "stuck": 1,
    }
    assert with_runs(store_url, lambda s: s.count_runs(RunFilter(id_contains="zzz"))) == {}


def test_saga_counts_and_names(store_url: str) -> None:
    assert with_runs(store_url, lambda s: s.saga_counts()) == {"order": 3, "trip": 3, "bank": 4}
    assert with_runs(store_url, lambda s: s.saga_names()) == ["bank", "order", "trip"]


def test_cursor_text_round_trips_and_rejects_other_text() -> None:
    cursor = RunCursor(1714567890.123456, "odd_id/with spaces_and_underscores")
    assert RunCursor.decode(cursor.encode()) == cursor
    for bad in ("", "nope", "nan_x", "inf_x", "12"):
        with pytest.raises(ValueError):
            RunCursor.decode(bad)


# ---- the SQL behind it ----------------------------------------------------------------------


def test_the_quiet_predicate_leaves_out_exactly_the_statuses_a_driver_writes_in() -> None:
    conn = sqlite3.connect(":memory:")
    quiet = {
        s for s in RUN_STATES if conn.execute(f"SELECT {QUIET_PREDICATE} FROM (SELECT ? AS status)", (s,)).fetchone()[0]
    }
    assert quiet == set(RUN_STATES) - set(HOT_STATES)
    # A status sagalang adds later (say, waiting) is quiet unless it is added to HOT_STATES.
    assert conn.execute(f"SELECT {QUIET_PREDICATE} FROM (SELECT 'waiting' AS status)").fetchone()[0] == 1


def _plan(conn: sqlite3.Connection, sql: str, params: list[Any]) -> str:
    return " | ".join(row[-1] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))


@pytest.fixture
def sqlite_db(tmp_path: Path) -> Path:
    path = tmp_path / "journal.db"
    with_runs(f"sqlite:///{path}", lambda s: asyncio.sleep(0))
    return path


@pytest.mark.parametrize(
    "where",
    [
        RunFilter(),
        RunFilter(statuses=("stuck",)),
        RunFilter(saga="bank"),
        RunFilter(updated_from=120.0),
        RunFilter(statuses=("completed",), saga="bank"),
    ],
)
def test_sqlite_reads_quiet_runs_from_the_partial_indexes(sqlite_db: Path, where: RunFilter) -> None:
    conn = sqlite3.connect(sqlite_db)
    for sql, params in (
        select_sql(where, RunCursor(175.0, "z"), 11, _RUN_COLUMNS, "sqlite"),
        count_sql(where, "sqlite"),
    ):
        plan = _plan(conn, sql, params)
        assert "runs_quiet_by_" in plan, plan
        # No part reads the whole table: every read of `runs` goes through an index.
        assert "SCAN runs" not in plan.replace("SCAN runs USING COVERING INDEX", "covered"), plan


def test_opening_a_version_1_journal_adds_the_listing_indexes(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, description TEXT, applied_at REAL)")
    for statement in MIGRATIONS[0].sqlite:
        conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (1, 'runs, events', 0)")
    conn.execute(
        f"INSERT INTO runs ({_RUN_COLUMNS}) VALUES ('old-1', 's', 'e', NULL, '{{}}', 'h', '{{}}', '[]', 'completed',"
        " 1.0, 2.0, NULL, NULL, 0, 0, '{}')"
    )
    conn.commit()
    conn.close()

    async def body(store: Store) -> tuple[Any, ...]:
        assert isinstance(store, RunQueries)
        page = await store.query_runs(RunFilter(statuses=("completed",)), 5)
        return await store.schema_version(), _ids(page.runs)  # type: ignore[attr-defined]

    from sagalang.journal import run_with_store

    version, ids = run_with_store(open_store(f"sqlite:///{path}"), body)
    assert version == LATEST_VERSION and ids == ["old-1"]
    names = {r[0] for r in sqlite3.connect(path).execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert {"runs_quiet_by_update", "runs_quiet_by_status", "runs_quiet_by_saga"} <= names


def test_appending_to_a_run_in_flight_writes_no_more_pages_for_the_listing_indexes(tmp_path: Path) -> None:
    """The listing indexes cost a run in flight nothing: its appends dirty as many WAL pages with them as without.

    (A plain index on updated_at would add a page to every commit: the control at the end shows it.)
    """
    from sagalang.events import Event

    path = tmp_path / "journal.db"

    async def body(store: Any) -> list[float]:
        for i in range(300):
            await store.create_run(_record(f"done-{i:04d}", "order", "completed", 100.0 + i))
        await store.create_run(_record("live", "order", "running", 1000.0))
        pages = []
        for change in (
            "",
            "DROP INDEX runs_quiet_by_update; DROP INDEX runs_quiet_by_status; DROP INDEX runs_quiet_by_saga",
            "CREATE INDEX plain_by_update ON runs (updated_at, run_id)",
        ):
            side = sqlite3.connect(path)
            side.executescript(change)
            side.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            side.close()
            for _ in range(40):
                await store.append("live", [Event("step.started", "live", step="a", attempt=1, data={"k": "v"})])
            frames = (path.with_name(path.name + "-wal").stat().st_size - 32) / (4096 + 24)
            pages.append(frames / 40)
        return pages

    from sagalang.journal import run_with_store

    with_indexes, without, plain = run_with_store(open_store(f"sqlite:///{path}"), body)
    assert with_indexes == without
    assert plain >= without + 1


def test_a_sqlite_store_takes_a_page_cache_size(tmp_path: Path) -> None:
    from sagalang.errors import StoreError
    from sagalang.journal import run_with_store
    from sagalang.journal.sqlite import SQLiteStore
    from sagalang.ui.app import reading_url

    async def cache_kib(store: Any) -> int:
        return int(store._conn.execute("PRAGMA cache_size").fetchone()[0])

    url = f"sqlite:///{tmp_path / 'j.db'}"
    assert run_with_store(SQLiteStore(url + "?cache_mib=8"), cache_kib) == -8 * 1024
    assert run_with_store(SQLiteStore(url), cache_kib) == -2000  # SQLite's own default
    for bad in ("0", "x", "1.5", "100000"):
        with pytest.raises(StoreError, match="cache_mib must be a whole number"):
            SQLiteStore(f"{url}?cache_mib={bad}")
    # The web view reads with a larger cache, unless the URL says otherwise.
    assert reading_url(url) == url + "?cache_mib=64"
    assert reading_url(url + "?timeout=2") == url + "?timeout=2&cache_mib=64"
    assert reading_url(url + "?cache_mib=4") == url + "?cache_mib=4"
    assert reading_url("memory:") == "memory:"
