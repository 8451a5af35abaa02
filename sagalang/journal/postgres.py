"""The PostgreSQL store (``postgresql://...``): one journal shared by workers on many hosts.

Runs and events live in the tables of the shared versioned schema
(:mod:`sagalang.journal.migrations`); the store applies missing migrations on
first use under an advisory lock, so workers starting together do not race.

Every journal write is one transaction that first bumps the run's
``last_seq`` with ``UPDATE runs ... WHERE run_id = %s AND epoch = %s`` — the
fencing check and the sequence allocation in one statement, which also locks
the run's row so appends of one run are serialised. Zero rows updated means
another process took the run over: :class:`StaleEpochError`, nothing written.

Lease times come from the database clock (``clock_timestamp()``), so hosts
with skewed clocks still agree on when a lease has expired. Submissions,
cancel requests and handed-back runs are announced with ``NOTIFY
sagalang_runs`` so idle workers wake at once.

Connections are pooled (psycopg 3 + psycopg_pool); each carries an
``application_name`` starting with ``sagalang`` so operators can find them in
``pg_stat_activity``. A lost connection (server restart, terminated backend)
is retried with backoff; an append whose commit outcome is unknown is checked
against the journal before it is retried, so no event is written twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import logging
import random
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, TypeVar

from ..errors import StoreError
from ..events import Event
from ..status import ACTIVE_RUN_STATUSES, status_after
from .base import TERMINAL_STATES, RunCursor, RunFilter, RunPage, RunRecord, StaleEpochError
from .leases import owner_is_dead
from .migrations import LATEST_VERSION, SCHEMA_VERSION_DDL, check_version, pending
from .queries import count_sql, saga_counts_sql, saga_names_sql, select_sql

try:  # psycopg is the optional extra `sagalang[postgres]`
    import psycopg
    from psycopg.types.json import Jsonb
    from psycopg_pool import AsyncConnectionPool, PoolTimeout
except ImportError:  # pragma: no cover - exercised only without the extra
    psycopg = None  # type: ignore[assignment]

__all__ = ["ACTIVE_STATES", "CHANNEL", "PostgresStore", "migrate_postgres", "redact"]

log = logging.getLogger("sagalang.journal.postgres")

CHANNEL = "sagalang_runs"  # NOTIFY channel: "queued:ID", "cancel:ID", "released:ID"
ACTIVE_STATES = ACTIVE_RUN_STATUSES
_NOW = "extract(epoch FROM clock_timestamp())"
# One key for every sagalang database: migrations of one database never run twice at once.
_MIGRATE_LOCK = 0x5A6A_1A06
_RUN_COLUMNS = (
    "run_id, saga, entry, spec, spec_hash, input, handlers, status, created_at, updated_at,"
    " owner, lease_until, epoch, cancel_requested, spec_path, extra"
)
_EVENT_COLUMNS = "kind, run_id, seq, time, step, item, attempt, data, epoch"
_WRITERS = 2  # group-commit batches in flight per store

T = TypeVar("T")


def redact(url: str) -> str:
    """``url`` without its password, for messages and logs."""
    if "@" not in url or "://" not in url:
        return url
    scheme, _, rest = url.partition("://")
    creds, _, host = rest.rpartition("@")
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}{':***' if ':' in creds else ''}@{host}"


def _require_driver() -> None:
    if psycopg is None:
        raise StoreError("the PostgreSQL store needs psycopg 3: pip install 'sagalang[postgres]'")


def _row_to_run(row: Sequence[Any]) -> RunRecord:
    return RunRecord(
        run_id=row[0],
        saga=row[1],
        entry=row[2],
        spec=dict(row[3]),
        spec_hash=row[4],
        input=row[5],
        handlers=tuple(row[6]),
        status=row[7],
        created_at=float(row[8]),
        updated_at=float(row[9]),
        owner=row[10],
        lease_until=None if row[11] is None else float(row[11]),
        epoch=int(row[12]),
        cancel_requested=bool(row[13]),
        spec_path=row[14],
        extra=dict(row[15]),
    )


def _row_to_event(row: Sequence[Any]) -> Event:
    return Event(
        kind=row[0],
        run_id=row[1],
        seq=int(row[2]),
        time=float(row[3]),
        step=row[4],
        item=row[5],
        attempt=row[6],
        data=row[7] if row[7] is not None else {},
        epoch=int(row[8]),
    )


async def migrate_postgres(conn: Any, where: str) -> int:
    """Bring the database of ``conn`` (autocommit) to the latest schema version; returns it.

    The migrations run in one transaction holding an advisory lock, so two
    workers opening a fresh database at once apply them exactly once.
    """
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
        await conn.execute(SCHEMA_VERSION_DDL["postgresql"])
        cur = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        row = await cur.fetchone()
        current = int(row[0]) if row else 0
        check_version(current, where)
        for migration in pending(current):
            for statement in migration.postgresql:
                await conn.execute(statement)
            await conn.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (%s, %s, %s)",
                (migration.version, migration.description, time.time()),
            )
            log.info("%s: applied journal schema version %d (%s)", where, migration.version, migration.description)
    return LATEST_VERSION


@dataclasses.dataclass(eq=False)
class _Append:
    """One caller's append, waiting for the group-commit writer."""

    run_id: str
    events: tuple[Event, ...]
    status: str | None
    epoch: int | None
    future: asyncio.Future[list[Event]]


class PostgresStore:
    """Runs and journals in PostgreSQL, shared by any number of processes and hosts."""

    shared = True

    def __init__(
        self,
        url: str,
        *,
        min_size: int = 1,
        max_size: int = 8,
        application_name: str = "sagalang",
        retry_for: float = 60.0,
        connect_timeout: float = 10.0,
        migrate: bool = True,
    ) -> None:
        self.url = url
        self.min_size = min_size
        self.max_size = max(max_size, min_size)
        self.application_name = application_name
        self.retry_for = retry_for  # how long an operation keeps retrying a lost connection
        self.connect_timeout = connect_timeout
        self.auto_migrate = migrate
        self._pool: Any = None
        self._queue: list[_Append] = []
        self._writers: set[asyncio.Task[None]] = set()
        self.where = redact(url)

    # ---- connections -------------------------------------------------------

    def _conninfo(self) -> str:
        # postgres:// is libpq's alias; keep the user's URL otherwise untouched.
        return "postgresql://" + self.url.split("://", 1)[1] if self.url.startswith("postgres://") else self.url

    async def connect(self, suffix: str = "", autocommit: bool = True) -> Any:
        """A new connection outside the pool (migrations, LISTEN); the caller closes it."""
        _require_driver()
        name = self.application_name + (f"-{suffix}" if suffix else "")
        try:
            return await psycopg.AsyncConnection.connect(
                self._conninfo(),
                autocommit=autocommit,
                application_name=name,
                connect_timeout=max(1, int(self.connect_timeout)),
            )
        except psycopg.Error as err:
            raise StoreError(f"cannot connect to PostgreSQL at {self.where}: {_first_line(err)}") from None

    async def announcements(self) -> AsyncIterator[str]:
        """NOTIFY payloads of the runs channel; first ``""`` once listening (see :class:`WorkerStore`)."""
        conn = await self.connect("listen")
        try:
            try:
                await conn.execute(f"LISTEN {CHANNEL}")
                yield ""
                async for note in conn.notifies():
                    yield note.payload
            except psycopg.Error as err:
                raise StoreError(f"lost the LISTEN connection to {self.where}: {_first_line(err)}") from None
        finally:
            with contextlib.suppress(Exception):
                await conn.close()

    async def open(self) -> None:
        """Connect, create or migrate the schema (refusing a newer one), start the pool."""
        if self._pool is not None:
            return
        _require_driver()
        conn = await self.connect("migrate")
        try:
            if self.auto_migrate:
                await migrate_postgres(conn, self.where)
            else:
                await self._check_schema(conn)
        except psycopg.Error as err:
            raise StoreError(f"cannot prepare the journal in {self.where}: {_first_line(err)}") from None
        finally:
            await conn.close()
        pool = AsyncConnectionPool(
            self._conninfo(),
            min_size=self.min_size,
            max_size=self.max_size,
            open=False,
            kwargs={"autocommit": True, "application_name": self.application_name},
            # No check on checkout: psycopg_pool backs off for seconds after each failed check, so a
            # pool full of connections killed by a restart would stall; _with_conn retries instead.
            timeout=self.connect_timeout,
            name=self.application_name,
        )
        try:
            await pool.open(wait=True, timeout=self.connect_timeout)
        except PoolTimeout:
            await pool.close()
            raise StoreError(f"cannot connect to PostgreSQL at {self.where}: connection pool timed out") from None
        self._pool = pool

    async def _check_schema(self, conn: Any) -> int:
        cur = await conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
        row = await cur.fetchone()
        if not row or not row[0]:
            raise StoreError(f"{self.where} has no sagalang journal yet: run `sagalang migrate --store URL`")
        cur = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
        row = await cur.fetchone()
        found = int(row[0]) if row else 0
        check_version(found, self.where)
        if found < LATEST_VERSION:
            raise StoreError(
                f"{self.where} has journal schema version {found}, this sagalang needs {LATEST_VERSION}: "
                "run `sagalang migrate --store URL`"
            )
        return found

    async def migrate(self) -> tuple[int, int]:
        """Apply missing migrations; returns (version before, version after)."""
        conn = await self.connect("migrate")
        try:
            before = 0
            cur = await conn.execute("SELECT to_regclass('schema_version') IS NOT NULL")
            row = await cur.fetchone()
            if row and row[0]:
                cur = await conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version")
                row = await cur.fetchone()
                before = int(row[0]) if row else 0
            after = await migrate_postgres(conn, self.where)
        except psycopg.Error as err:
            raise StoreError(f"cannot migrate the journal in {self.where}: {_first_line(err)}") from None
        finally:
            await conn.close()
        return before, after

    async def close(self) -> None:
        """Finish the appends in flight, then close the pool."""
        if self._writers:
            await asyncio.gather(*self._writers, return_exceptions=True)
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _with_conn(self, fn: Callable[[Any], Awaitable[T]], what: str) -> T:
        """Run ``fn(conn)`` on a pooled connection, retrying lost connections with backoff."""
        if self._pool is None:
            await self.open()
        deadline = time.monotonic() + self.retry_for
        delay = 0.02
        while True:
            try:
                async with self._pool.connection() as conn:
                    return await fn(conn)
            except (psycopg.OperationalError, PoolTimeout) as err:
                # Server restart, terminated backend, network blip: the pool replaces the connection.
                if time.monotonic() + delay > deadline:
                    raise StoreError(f"lost the connection to {self.where} while {what}: {_first_line(err)}") from None
                log.warning("%s: connection lost while %s (%s); retrying", self.where, what, _first_line(err))
                # After a server restart every idle pooled connection is dead: drop them all at once
                # rather than finding them one failed operation at a time.
                with contextlib.suppress(Exception):
                    await self._pool.check()
                await asyncio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 2, 2.0)
            except psycopg.Error as err:
                raise StoreError(f"{self.where}: {what} failed: {_first_line(err)}") from None

    # ---- runs ----------------------------------------------------------------

    async def create_run(self, record: RunRecord) -> tuple[RunRecord, bool]:
        """Insert ``record``; if its id exists, return the existing run and False.

        A run created ``queued`` is announced on the ``sagalang_runs`` channel.
        """

        async def go(conn: Any) -> tuple[RunRecord, bool]:
            async with conn.transaction():
                cur = await conn.execute(
                    f"INSERT INTO runs (run_id, saga, entry, spec, spec_hash, input, handlers, status,"
                    f" created_at, updated_at, owner, lease_until, epoch, cancel_requested, spec_path, extra)"
                    f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, COALESCE(%s, {_NOW}), {_NOW},"
                    f" %s, %s, %s, %s, %s, %s)"
                    f" ON CONFLICT (run_id) DO NOTHING RETURNING {_RUN_COLUMNS}",
                    (
                        record.run_id,
                        record.saga,
                        record.entry,
                        Jsonb(dict(record.spec)),
                        record.spec_hash,
                        Jsonb(record.input),
                        Jsonb(list(record.handlers)),
                        record.status,
                        record.created_at or None,
                        record.owner,
                        record.lease_until,
                        record.epoch,
                        record.cancel_requested,
                        record.spec_path,
                        Jsonb(dict(record.extra)),
                    ),
                )
                row = await cur.fetchone()
                if row is not None:
                    if record.status == "queued":
                        await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, "queued:" + record.run_id))
                    return _row_to_run(row), True
                cur = await conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = %s", (record.run_id,))
                row = await cur.fetchone()
                if row is None:  # deleted between the two statements; vanishingly rare
                    raise StoreError(f"run {record.run_id!r} vanished while being created")
                return _row_to_run(row), False

        return await self._with_conn(go, f"creating run {record.run_id}")

    async def create_runs(self, records: Sequence[RunRecord]) -> int:
        """Insert many runs in one transaction (one NOTIFY); existing ids are skipped. Returns how many were new."""
        if not records:
            return 0

        async def go(conn: Any) -> int:
            async with conn.transaction(), conn.cursor() as cur:
                await cur.executemany(
                    f"INSERT INTO runs (run_id, saga, entry, spec, spec_hash, input, handlers, status,"
                    f" created_at, updated_at, epoch, cancel_requested, spec_path, extra)"
                    f" VALUES (%s, %s, %s, %s, %s, %s, %s, %s, {_NOW}, {_NOW}, 0, FALSE, %s, %s)"
                    f" ON CONFLICT (run_id) DO NOTHING",
                    [
                        (
                            r.run_id,
                            r.saga,
                            r.entry,
                            Jsonb(dict(r.spec)),
                            r.spec_hash,
                            Jsonb(r.input),
                            Jsonb(list(r.handlers)),
                            r.status,
                            r.spec_path,
                            Jsonb(dict(r.extra)),
                        )
                        for r in records
                    ],
                )
                added = max(0, int(cur.rowcount))
                if any(r.status == "queued" for r in records):
                    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, "queued:*"))
                return added

        return await self._with_conn(go, f"creating {len(records)} runs")

    async def get_run(self, run_id: str) -> RunRecord | None:
        """One run, or None."""

        async def go(conn: Any) -> RunRecord | None:
            cur = await conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = %s", (run_id,))
            row = await cur.fetchone()
            return None if row is None else _row_to_run(row)

        return await self._with_conn(go, f"reading run {run_id}")

    async def list_runs(self, status: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first, optionally only those in ``status``."""

        async def go(conn: Any) -> list[RunRecord]:
            sql = f"SELECT {_RUN_COLUMNS} FROM runs"
            params: list[Any] = []
            if status is not None:
                sql += " WHERE status = %s"
                params.append(status)
            sql += " ORDER BY created_at DESC, run_id DESC"
            if limit is not None:
                sql += " LIMIT %s"
                params.append(limit)
            cur = await conn.execute(sql, params)
            return [_row_to_run(r) for r in await cur.fetchall()]

        return await self._with_conn(go, "listing runs")

    async def count_by_status(self) -> dict[str, int]:
        """How many runs are in each status (for monitoring and tests)."""
        return await self.count_runs(RunFilter())

    async def query_runs(self, where: RunFilter, limit: int, after: RunCursor | None = None) -> RunPage:
        """Up to ``limit`` runs matching ``where`` after ``after``, last updated first (indexed reads)."""
        sql, params = select_sql(where, after, int(limit) + 1, _RUN_COLUMNS, "postgresql")

        async def go(conn: Any) -> RunPage:
            cur = await conn.execute(sql, params)
            rows = await cur.fetchall()
            page = tuple(_row_to_run(r) for r in rows[:limit])
            more = len(rows) > limit and bool(page)
            return RunPage(page, RunCursor(page[-1].updated_at, page[-1].run_id) if more else None)

        return await self._with_conn(go, "listing runs")

    async def count_runs(self, where: RunFilter) -> dict[str, int]:
        """How many runs matching ``where`` are in each status."""
        sql, params = count_sql(where, "postgresql")

        async def go(conn: Any) -> dict[str, int]:
            cur = await conn.execute(sql, params)
            return {r[0]: int(r[1]) for r in await cur.fetchall()}

        return await self._with_conn(go, "counting runs")

    async def saga_counts(self) -> dict[str, int]:
        """How many runs of each saga the store holds."""
        sql, params = saga_counts_sql("postgresql")

        async def go(conn: Any) -> dict[str, int]:
            cur = await conn.execute(sql, params)
            counts: dict[str, int] = {}
            for saga, n in await cur.fetchall():
                counts[saga] = counts.get(saga, 0) + int(n)
            return counts

        return await self._with_conn(go, "counting runs")

    async def saga_names(self) -> list[str]:
        """The names of the sagas the store has runs of, sorted."""
        sql, params = saga_names_sql("postgresql")

        async def go(conn: Any) -> list[str]:
            cur = await conn.execute(sql, params)
            return [r[0] for r in await cur.fetchall()]

        return await self._with_conn(go, "listing sagas")

    # ---- the journal ---------------------------------------------------------

    async def append(
        self, run_id: str, events: Sequence[Event], status: str | None = None, epoch: int | None = None
    ) -> list[Event]:
        """Append ``events`` (seq assigned here) and optionally update the cached status; durable on return.

        With ``epoch`` given, the write fails with StaleEpochError unless it is
        the run's current epoch (fencing); the check and the insert are one transaction.

        Group commit: appends of every run of this process that arrive while a
        commit is in flight are written together in the next transaction, so one
        WAL flush serves many of them. One append's fencing failure does not fail
        its neighbours.
        """
        if not events and status is None:
            return []
        now = time.time()
        # Times are fixed before the first attempt, so a retry can recognise its own events.
        batch = tuple(ev if ev.time else dataclasses.replace(ev, time=now) for ev in events)
        # Like every store: when the caller does not say, the events imply the status (the fold stays the truth).
        new_status = status if status is not None else status_after(ev.kind for ev in batch)
        pending = _Append(run_id, batch, new_status, epoch, asyncio.get_running_loop().create_future())
        self._queue.append(pending)
        # Up to _WRITERS batches in flight: one is sent while another waits for its WAL flush.
        # Count only writers still running: a finished writer stays in the set until its
        # done-callback runs, and counting it could leave this append with no writer at all.
        if sum(1 for t in self._writers if not t.done()) < _WRITERS:
            task = asyncio.create_task(self._write_appends(), name="sagalang-pg-writer")
            self._writers.add(task)
            task.add_done_callback(self._writers.discard)
        try:
            return await pending.future
        except asyncio.CancelledError:
            # Not yet taken by the writer: it is never written. Taken: it lands (or not) with its batch.
            if pending in self._queue:
                self._queue.remove(pending)
            raise

    async def _write_appends(self) -> None:
        """The writer: one transaction per batch of waiting appends, until none wait."""
        while self._queue:
            group, self._queue = self._queue, []
            # Row locks in run_id order (stable: one run's appends keep theirs), so two
            # batches in flight never wait for each other in a cycle.
            group = sorted((p for p in group if not p.future.done()), key=lambda p: p.run_id)
            if not group:
                continue
            attempt = 0

            async def go(conn: Any, group: list[_Append] = group) -> None:
                nonlocal attempt
                attempt += 1
                await self._write_group(conn, group, retry=attempt > 1)

            try:
                await self._with_conn(go, f"appending to {len(group)} run(s)")
            except StoreError:
                if len(group) == 1:
                    self._fail(group, sys.exc_info()[1])
                    continue
                # One bad append (say, text PostgreSQL cannot store) must not fail its neighbours:
                # the batch rolled back, so write each on its own.
                for one in group:
                    attempt = 0

                    async def single(conn: Any, one: _Append = one) -> None:
                        nonlocal attempt
                        attempt += 1
                        await self._write_group(conn, [one], retry=attempt > 1)

                    try:
                        await self._with_conn(single, f"appending to run {one.run_id}")
                    except StoreError as err:
                        self._fail([one], err)
            except BaseException as err:
                self._fail(group, err)
                raise

    @staticmethod
    def _fail(group: list[_Append], err: BaseException | None) -> None:
        for p in group:
            if not p.future.done():
                p.future.set_exception(err if isinstance(err, Exception) else StoreError("append interrupted"))

    async def _write_group(self, conn: Any, group: list[_Append], retry: bool) -> None:
        results: list[tuple[_Append, list[Event] | BaseException]] = []
        todo = group
        if retry:
            # The previous attempt's commit may have landed before the connection died.
            todo = []
            for p in group:
                landed = await self._landed(conn, p.run_id, p.events) if p.events else None
                if landed is not None:
                    results.append((p, landed))
                else:
                    todo.append(p)
        rows: list[tuple[Any, ...]] = []
        async with conn.transaction():
            # Pipeline mode: every fencing UPDATE of the batch goes out in one round trip.
            cursors = []
            async with conn.pipeline() as pipe:
                for p in todo:
                    n = len(p.events)
                    cur = conn.cursor()
                    await cur.execute(
                        f"UPDATE runs SET last_seq = last_seq + %s,"
                        f" status = COALESCE(%s, CASE WHEN status = 'queued' AND %s > 0 THEN 'running'"
                        f" ELSE status END), updated_at = {_NOW}"
                        f" WHERE run_id = %s AND (%s::bigint IS NULL OR epoch = %s) RETURNING last_seq",
                        (n, p.status, n, p.run_id, p.epoch, p.epoch),
                    )
                    cursors.append(cur)
                await pipe.sync()
            for p, cur in zip(todo, cursors):
                row = await cur.fetchone()
                if row is None:
                    cur = await conn.execute("SELECT epoch FROM runs WHERE run_id = %s", (p.run_id,))
                    found = await cur.fetchone()
                    if found is None:
                        results.append((p, StoreError(f"unknown run {p.run_id!r}")))
                    else:
                        results.append(
                            (p, StaleEpochError(f"run {p.run_id!r} is now driven by epoch {found[0]}, not {p.epoch}"))
                        )
                    continue
                n = len(p.events)
                first = int(row[0]) - n + 1
                out = [
                    dataclasses.replace(
                        ev, seq=first + i, run_id=p.run_id, epoch=p.epoch if p.epoch is not None else ev.epoch
                    )
                    for i, ev in enumerate(p.events)
                ]
                rows.extend(
                    (ev.kind, ev.run_id, ev.seq, ev.time, ev.step, ev.item, ev.attempt, Jsonb(dict(ev.data)), ev.epoch)
                    for ev in out
                )
                results.append((p, out))
            if rows:
                async with conn.cursor() as c:
                    await c.executemany(
                        f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows
                    )
        # Committed: now every waiter learns its outcome.
        for p, res in results:
            if p.future.done():
                continue
            if isinstance(res, BaseException):
                p.future.set_exception(res)
            else:
                p.future.set_result(res)

    async def _landed(self, conn: Any, run_id: str, batch: Sequence[Event]) -> list[Event] | None:
        """After a lost commit: the batch's stored events if it was written, else None."""
        cur = await conn.execute(
            f"SELECT {_EVENT_COLUMNS} FROM events WHERE run_id = %s AND time = ANY(%s) ORDER BY seq",
            (run_id, sorted({ev.time for ev in batch})),
        )
        stored = [_row_to_event(r) for r in await cur.fetchall()]
        want = [(ev.kind, ev.step, ev.item, ev.attempt, ev.time) for ev in batch]
        for start in range(len(stored) - len(batch) + 1):
            window = stored[start : start + len(batch)]
            if [(e.kind, e.step, e.item, e.attempt, e.time) for e in window] == want and all(
                b.seq == a.seq + 1 for a, b in itertools.pairwise(window)
            ):
                return window
        return None

    async def events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        """The run's events with ``seq > after_seq``, in order."""

        async def go(conn: Any) -> list[Event]:
            cur = await conn.execute(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE run_id = %s AND seq > %s ORDER BY seq",
                (run_id, after_seq),
            )
            return [_row_to_event(r) for r in await cur.fetchall()]

        return await self._with_conn(go, f"reading the journal of run {run_id}")

    # ---- cancel and leases ---------------------------------------------------

    async def request_cancel(self, run_id: str) -> bool:
        """Flag the run for cancellation and notify its worker; False if unknown or terminal."""

        async def go(conn: Any) -> bool:
            async with conn.transaction():
                cur = await conn.execute(
                    f"UPDATE runs SET cancel_requested = TRUE, updated_at = {_NOW}"
                    f" WHERE run_id = %s AND status <> ALL(%s) RETURNING run_id",
                    (run_id, list(TERMINAL_STATES)),
                )
                if await cur.fetchone() is None:
                    return False
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, "cancel:" + run_id))
                return True

        return await self._with_conn(go, f"cancelling run {run_id}")

    async def cancel_requested(self, run_id: str) -> bool:
        """Whether the run is flagged for cancellation (one indexed read)."""

        async def go(conn: Any) -> bool:
            cur = await conn.execute("SELECT cancel_requested FROM runs WHERE run_id = %s", (run_id,))
            row = await cur.fetchone()
            return bool(row and row[0])

        result: bool = await self._with_conn(go, f"reading run {run_id}")
        return result

    async def acquire(self, run_id: str, owner: str, ttl: float) -> int | None:
        """Take the run's lease; returns the new epoch, or None if another live owner holds it.

        A lease is free when it has expired, when ``owner`` holds it already, or
        when its holder is a process on this host that has exited.
        """

        async def go(conn: Any) -> int | None:
            cur = await conn.execute(
                f"UPDATE runs SET owner = %s, lease_until = {_NOW} + %s, epoch = epoch + 1, updated_at = {_NOW}"
                f" WHERE run_id = %s AND (owner IS NULL OR owner = %s OR lease_until IS NULL OR lease_until < {_NOW})"
                f" RETURNING epoch",
                (owner, ttl, run_id, owner),
            )
            row = await cur.fetchone()
            if row is not None:
                return int(row[0])
            cur = await conn.execute("SELECT owner, epoch FROM runs WHERE run_id = %s", (run_id,))
            held = await cur.fetchone()
            if held is None:
                raise StoreError(f"unknown run {run_id!r}")
            if held[0] is None or not owner_is_dead(held[0]):
                return None
            # The holder was a process on this host that has exited: no need to wait for its lease.
            cur = await conn.execute(
                f"UPDATE runs SET owner = %s, lease_until = {_NOW} + %s, epoch = epoch + 1, updated_at = {_NOW}"
                f" WHERE run_id = %s AND owner = %s AND epoch = %s RETURNING epoch",
                (owner, ttl, run_id, held[0], held[1]),
            )
            row = await cur.fetchone()
            return None if row is None else int(row[0])

        return await self._with_conn(go, f"taking the lease of run {run_id}")

    async def renew(self, run_id: str, owner: str, epoch: int, ttl: float) -> bool:
        """Extend the lease; False if it was lost (another epoch took over)."""
        held = await self.renew_many(owner, {run_id: epoch}, ttl)
        return run_id in held

    async def renew_many(self, owner: str, leases: Mapping[str, int], ttl: float) -> dict[str, bool]:
        """Extend several leases in one statement: {run_id: cancel_requested} of those still held."""
        if not leases:
            return {}
        ids = list(leases)
        epochs = [leases[i] for i in ids]

        async def go(conn: Any) -> dict[str, bool]:
            cur = await conn.execute(
                f"UPDATE runs r SET lease_until = {_NOW} + %s FROM unnest(%s::text[], %s::bigint[]) AS l(run_id, epoch)"
                f" WHERE r.run_id = l.run_id AND r.epoch = l.epoch AND r.owner = %s"
                f" RETURNING r.run_id, r.cancel_requested",
                (ttl, ids, epochs, owner),
            )
            return {r[0]: bool(r[1]) for r in await cur.fetchall()}

        return await self._with_conn(go, "renewing leases")

    async def release(self, run_id: str, owner: str, epoch: int) -> None:
        """Give the lease up; an unfinished run is announced so another worker takes it at once."""

        async def go(conn: Any) -> None:
            async with conn.transaction():
                cur = await conn.execute(
                    f"UPDATE runs SET owner = NULL, lease_until = NULL, updated_at = {_NOW}"
                    f" WHERE run_id = %s AND epoch = %s AND owner = %s RETURNING status",
                    (run_id, epoch, owner),
                )
                row = await cur.fetchone()
                if row is not None and row[0] not in TERMINAL_STATES:
                    await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, "released:" + run_id))

        await self._with_conn(go, f"releasing run {run_id}")

    async def hand_back(self, run_id: str, owner: str, epoch: int) -> bool:
        """Give an unfinished run to whoever claims next, fencing out this owner's in-flight writes.

        Unlike :meth:`release`, the epoch moves on: anything the old driver still
        has in flight fails with StaleEpochError instead of racing the next driver.
        """

        async def go(conn: Any) -> bool:
            async with conn.transaction():
                cur = await conn.execute(
                    f"UPDATE runs SET owner = NULL, lease_until = NULL, epoch = epoch + 1, updated_at = {_NOW}"
                    f" WHERE run_id = %s AND epoch = %s AND owner = %s AND status <> ALL(%s) RETURNING run_id",
                    (run_id, epoch, owner, list(TERMINAL_STATES)),
                )
                if await cur.fetchone() is None:
                    return False
                await conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, "released:" + run_id))
                return True

        return await self._with_conn(go, f"handing back run {run_id}")

    async def claim(self, owner: str, ttl: float, limit: int, exclude: Iterable[str] = ()) -> list[RunRecord]:
        """Take up to ``limit`` runs that need a driver: queued, or in flight with a free or expired lease.

        ``FOR UPDATE SKIP LOCKED`` lets concurrent workers claim disjoint runs
        without waiting for each other; each claimed run's epoch is bumped (the
        fencing token its driver writes with). Runs already leased to ``owner``
        but not in ``exclude`` (its active runs) are claimed again, so a claim
        whose reply was lost with a connection is not stranded until its lease expires.
        """
        if limit <= 0:
            return []
        skip = list(exclude)

        async def go(conn: Any) -> list[RunRecord]:
            cur = await conn.execute(
                f"WITH c AS (SELECT run_id FROM runs"
                f" WHERE status = ANY(%s) AND (lease_until IS NULL OR lease_until < {_NOW} OR owner = %s)"
                f" AND run_id <> ALL(%s)"
                f" ORDER BY created_at, run_id LIMIT %s FOR UPDATE SKIP LOCKED)"
                f" UPDATE runs r SET owner = %s, lease_until = {_NOW} + %s, epoch = r.epoch + 1, updated_at = {_NOW}"
                f" FROM c WHERE r.run_id = c.run_id"
                f" RETURNING {', '.join('r.' + c.strip() for c in _RUN_COLUMNS.split(','))}",
                (list(ACTIVE_STATES), owner, skip, limit, owner, ttl),
            )
            return sorted((_row_to_run(r) for r in await cur.fetchall()), key=lambda r: (r.created_at, r.run_id))

        return await self._with_conn(go, "claiming runs")


def _first_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    return text.splitlines()[0]
