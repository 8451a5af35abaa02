"""The embedded journal: one SQLite file in WAL mode, with group commit.

``sqlite:///PATH`` (relative to the working directory; ``sqlite:////abs/path``
for an absolute one). Options go in the query string:
``?synchronous=normal|full``, ``?timeout=SECONDS`` (busy timeout),
``?commit=inline|thread`` (where the group commit runs) and ``?cache_mib=N``
(the connection's page cache; SQLite's default is 2 MiB, and a process that
reads many runs, such as ``sagalang ui``, is faster with more).

Durability. ``append`` returns once its transaction has committed. The default
``synchronous=NORMAL`` with WAL writes every commit to the WAL file before
COMMIT returns, so a committed batch survives the death of the process —
SIGKILL, OOM kill, a segfault — because the data is in the OS page cache,
which a process's death does not discard; the file is fsynced at checkpoints.
It does not promise that the last commits survive a power cut or a kernel
crash (the database stays consistent; they are simply lost). ``synchronous=full``
fsyncs the WAL on every commit and survives those too, at about 0.25 ms more
per commit on an SSD. Either way group commit shares that cost.

Group commit. Every write of every saga in the process (appends, new runs,
leases, cancel flags) goes into one queue; a single writer takes all that
are waiting and writes them in ONE transaction, then resolves each waiter
with its result or its own error. The writer runs as a loop callback, so
everything queued during one turn of the event loop shares a commit
(``?commit=thread`` moves it to a dedicated thread instead). One append's
fencing failure does not fail its neighbours; a failed commit (disk full,
I/O error) fails every write of the batch and stores none of them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import json
import os
import sqlite3
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs

from ..errors import StoreError
from ..events import Event
from ..status import status_after
from .base import TERMINAL_STATES, RunCursor, RunFilter, RunPage, RunRecord, StaleEpochError
from .leases import Lease, lease_is_live
from .migrations import migrate_sqlite
from .queries import count_sql, saga_counts_sql, saga_names_sql, select_sql

__all__ = ["SQLiteStore", "parse_sqlite_url"]

T = TypeVar("T")

_RUN_COLUMNS = (
    "run_id, saga, entry, spec_path, spec, spec_hash, input, handlers, status, created_at, updated_at,"
    " owner, lease_until, epoch, cancel_requested, extra"
)
_TERMINAL = tuple(sorted(TERMINAL_STATES))
_TERMINAL_SQL = ", ".join("?" for _ in _TERMINAL)


def parse_sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    """``(path, options)`` of a ``sqlite:///PATH?opt=value`` URL; ``:memory:`` is kept as is."""
    if not url.startswith("sqlite:///"):
        raise StoreError(
            f"invalid SQLite store URL {url!r}: write sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    rest = url[len("sqlite:///") :]
    path, _, query = rest.partition("?")
    if not path:
        raise StoreError(f"invalid SQLite store URL {url!r}: the path is empty")
    options = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    unknown = set(options) - {"synchronous", "timeout", "commit", "cache_mib"}
    if unknown:
        raise StoreError(f"invalid SQLite store URL {url!r}: unknown option(s) {', '.join(sorted(unknown))}")
    sync = options.get("synchronous", "normal").lower()
    if sync not in ("normal", "full", "extra"):
        raise StoreError(f"invalid SQLite store URL {url!r}: synchronous must be normal, full or extra")
    options["synchronous"] = sync
    if options.get("commit", "inline") not in ("inline", "thread"):
        raise StoreError(f"invalid SQLite store URL {url!r}: commit must be inline or thread")
    try:
        if float(options.get("timeout", "5")) < 0:
            raise ValueError
    except ValueError:
        raise StoreError(f"invalid SQLite store URL {url!r}: timeout must be a number of seconds") from None
    if "cache_mib" in options and not (options["cache_mib"].isdigit() and 0 < int(options["cache_mib"]) <= 65536):
        raise StoreError(f"invalid SQLite store URL {url!r}: cache_mib must be a whole number of MiB, 1 to 65536")
    return path, options


@dataclass
class _Append:
    run_id: str
    rows: list[tuple[str, str, float, str | None, int | None, int | None, str]]  # kind..data as stored
    data: list[dict[str, Any]]
    status: str | None
    epoch: int | None
    future: asyncio.Future[Any]


@dataclass
class _Write:
    """Any other write (a run, a lease, a cancel flag): ``fn`` runs inside the batch's transaction.

    ``fn`` must check before it writes (raising StoreError writes nothing), so it
    needs no savepoint of its own.
    """

    fn: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]


class SQLiteStore:
    """The SQLite journal (see the module docstring for durability and group commit)."""

    shared = True

    def __init__(self, url: str) -> None:
        """A store for ``url``; nothing is touched until :meth:`open`."""
        path, options = parse_sqlite_url(url)
        self.url = url
        self.path = path if path == ":memory:" else str(Path(os.path.expanduser(path)).absolute())
        self.synchronous = options["synchronous"]
        self.timeout = float(options.get("timeout", "5"))
        self.cache_mib = int(options["cache_mib"]) if "cache_mib" in options else None
        # Measured (bench/bench_durable.py, /tmp on an SSD): a commit costs ~20 us (normal) or ~250 us
        # (full: one fsync), a hop to a thread ~100 us. Inline commits won in every case measured,
        # for one saga and for 1,000 concurrent ones (they share each commit), so inline is the
        # default; ?commit=thread keeps the loop free during a slow fsync (e.g. a network disk).
        self.inline_commit = options.get("commit", "inline") == "inline"
        self._flush_scheduled = False
        self.transactions = 0  # committed write batches (group commit makes this < writes)
        self.appends = 0  # writes committed (appends and other writes)
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._pending: list[_Append | _Write] = []
        self._writer: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({self.url!r})"

    # -- plumbing ---------------------------------------------------------------------------

    def _error(self, err: BaseException, doing: str) -> StoreError:
        """A clear StoreError for an sqlite3 or OS error."""
        if isinstance(err, StoreError):
            return err
        text = str(err)
        low = text.lower()
        where = self.path
        if "not a database" in low or "malformed" in low or "corrupt" in low:
            hint = "the file is corrupted or not an SQLite database; restore it from a backup or choose another path"
        elif "disk is full" in low or "disk full" in low:
            hint = "the disk is full; free space and retry (nothing of this write was stored)"
        elif "readonly" in low or "read-only" in low or "unable to open" in low or isinstance(err, PermissionError):
            hint = "the location is not writable; check its permissions or choose another path"
        elif "locked" in low or "busy" in low:
            hint = f"another process held the database locked for more than {self.timeout:g}s; retry"
        else:
            hint = "the store cannot be used"
        return StoreError(f"cannot {doing} the journal {where}: {text} ({hint})")

    @staticmethod
    def _rollback(conn: sqlite3.Connection) -> None:
        if conn.in_transaction:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass

    async def _call(self, fn: Callable[[sqlite3.Connection], T], doing: str) -> T:
        conn = self._conn
        if conn is None:
            raise StoreError(f"the journal {self.path} is not open (await store.open() first)")

        def run() -> T:
            try:
                return fn(conn)
            except (sqlite3.Error, OSError) as err:
                self._rollback(conn)
                raise self._error(err, doing) from err

        if self.inline_commit or self._executor is None:
            return run()
        return await asyncio.get_running_loop().run_in_executor(self._executor, run)

    # -- lifecycle --------------------------------------------------------------------------

    async def open(self) -> None:
        """Create the folder and the file if needed, set WAL, migrate the schema."""
        if self._conn is not None:
            return
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreError(
                    f"cannot create the folder of the journal {self.path}: {err.strerror or err} "
                    "(the location is not writable; check its permissions or choose another path)"
                ) from None
            if Path(self.path).is_dir():
                raise StoreError(f"cannot open the journal {self.path}: it is a directory")
            try:
                # Runs hold their input, secrets included (a resume needs them): owner-only access.
                # SQLite gives the -wal and -shm files the same permissions.
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass
            except OSError as err:
                raise StoreError(
                    f"cannot create the journal {self.path}: {err.strerror or err} "
                    "(the location is not writable; check its permissions or choose another path)"
                ) from None
        if not self.inline_commit:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sagalang-sqlite")

        def connect() -> sqlite3.Connection:
            try:
                conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False)
            except sqlite3.Error as err:
                raise self._error(err, "open") from err
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if self.path != ":memory:" and str(mode).lower() != "wal":
                    raise StoreError(f"cannot open the journal {self.path}: WAL mode is unavailable ({mode})")
                conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
                if self.cache_mib is not None:
                    conn.execute(f"PRAGMA cache_size = -{self.cache_mib * 1024}")  # negative: KiB
                conn.execute("PRAGMA foreign_keys = ON")
                migrate_sqlite(conn, self.path)
            except BaseException as err:
                conn.close()
                if isinstance(err, sqlite3.Error | OSError):
                    raise self._error(err, "open") from err
                raise
            return conn

        try:
            if self._executor is None:
                self._conn = connect()
            else:
                self._conn = await asyncio.get_running_loop().run_in_executor(self._executor, connect)
        except BaseException:
            if self._executor is not None:
                self._executor.shutdown(wait=False)
                self._executor = None
            raise

    async def close(self) -> None:
        """Wait for queued appends to commit, then close the file."""
        if self._writer is not None and not self._writer.done():
            await asyncio.shield(self._writer)
        while self._flush_scheduled:  # an inline flush is queued on the loop
            await asyncio.sleep(0)
        conn, self._conn = self._conn, None
        if conn is not None:
            if self._executor is not None:
                await asyncio.get_running_loop().run_in_executor(self._executor, conn.close)
            else:
                conn.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    async def __aenter__(self) -> SQLiteStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- runs -------------------------------------------------------------------------------

    @staticmethod
    def _record(row: Sequence[Any]) -> RunRecord:
        return RunRecord(
            run_id=row[0],
            saga=row[1],
            entry=row[2],
            spec_path=row[3],
            spec=json.loads(row[4]),
            spec_hash=row[5],
            input=json.loads(row[6]),
            handlers=tuple(json.loads(row[7])),
            status=row[8],
            created_at=row[9],
            updated_at=row[10],
            owner=row[11],
            lease_until=row[12],
            epoch=row[13],
            cancel_requested=bool(row[14]),
            extra=json.loads(row[15]),
        )

    async def create_run(self, record: RunRecord) -> tuple[RunRecord, bool]:
        """Insert ``record``; if its id exists, return the existing run and False."""
        now = time.time()
        try:
            params = (
                record.run_id,
                record.saga,
                record.entry,
                record.spec_path,
                json.dumps(dict(record.spec), sort_keys=True),
                record.spec_hash,
                json.dumps(dict(record.input), sort_keys=True),
                json.dumps(list(record.handlers)),
                record.status,
                record.created_at or now,
                record.updated_at or record.created_at or now,
                record.owner,
                record.lease_until,
                record.epoch,
                int(record.cancel_requested),
                json.dumps(dict(record.extra), sort_keys=True),
            )
        except (TypeError, ValueError) as err:
            raise StoreError(
                f"run {record.run_id}: its spec, input or extra data is not JSON-serialisable: {err}"
            ) from None

        stored = dataclasses.replace(record, created_at=params[9], updated_at=params[10])

        def insert(conn: sqlite3.Connection) -> tuple[RunRecord, bool]:
            cur = conn.execute(
                f"INSERT OR IGNORE INTO runs ({_RUN_COLUMNS}) VALUES ({', '.join('?' for _ in params)})", params
            )
            if cur.rowcount == 1:
                return stored, True
            row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (record.run_id,)).fetchone()
            return self._record(row), False

        return await self._write(insert)

    async def get_run(self, run_id: str) -> RunRecord | None:
        """One run, or None."""

        def get(conn: sqlite3.Connection) -> RunRecord | None:
            row = conn.execute(f"SELECT {_RUN_COLUMNS} FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            return None if row is None else self._record(row)

        return await self._call(get, "read")

    async def list_runs(self, status: str | None = None, limit: int | None = None) -> list[RunRecord]:
        """Runs, newest first, optionally only those in ``status``."""
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        params: list[Any] = []
        if status is not None:
            sql += " WHERE status = ?"
            params.append(status)
        sql += " ORDER BY created_at DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))

        def select(conn: sqlite3.Connection) -> list[RunRecord]:
            return [self._record(r) for r in conn.execute(sql, params)]

        return await self._call(select, "read")

    async def query_runs(self, where: RunFilter, limit: int, after: RunCursor | None = None) -> RunPage:
        """Up to ``limit`` runs matching ``where`` after ``after``, last updated first (indexed reads)."""
        sql, params = select_sql(where, after, int(limit) + 1, _RUN_COLUMNS, "sqlite")

        def select(conn: sqlite3.Connection) -> RunPage:
            rows = conn.execute(sql, params).fetchall()
            page = tuple(self._record(r) for r in rows[:limit])
            more = len(rows) > limit and bool(page)
            return RunPage(page, RunCursor(page[-1].updated_at, page[-1].run_id) if more else None)

        return await self._call(select, "read")

    async def count_runs(self, where: RunFilter) -> dict[str, int]:
        """How many runs matching ``where`` are in each status."""
        sql, params = count_sql(where, "sqlite")

        def select(conn: sqlite3.Connection) -> dict[str, int]:
            return {status: int(n) for status, n in conn.execute(sql, params)}

        return await self._call(select, "read")

    async def saga_counts(self) -> dict[str, int]:
        """How many runs of each saga the store holds."""

        sql, params = saga_counts_sql("sqlite")

        def select(conn: sqlite3.Connection) -> dict[str, int]:
            counts: dict[str, int] = {}
            for saga, n in conn.execute(sql, params):
                counts[saga] = counts.get(saga, 0) + int(n)
            return counts

        return await self._call(select, "read")

    async def saga_names(self) -> list[str]:
        """The names of the sagas the store has runs of, sorted."""
        sql, params = saga_names_sql("sqlite")

        def select(conn: sqlite3.Connection) -> list[str]:
            return [name for (name,) in conn.execute(sql, params)]

        return await self._call(select, "read")

    # -- the journal ------------------------------------------------------------------------

    async def append(
        self, run_id: str, events: Sequence[Event], status: str | None = None, epoch: int | None = None
    ) -> list[Event]:
        """Append ``events`` (seq assigned here) and optionally update the cached status; durable on return.

        With ``epoch`` given, the write fails with StaleEpochError unless it is
        the run's current epoch (fencing).
        """
        now = time.time()
        rows: list[tuple[str, str, float, str | None, int | None, int | None, str]] = []
        datas: list[dict[str, Any]] = []
        for ev in events:
            datas.append(dict(ev.data))
            try:
                data = json.dumps(datas[-1], separators=(",", ":"))
            except (TypeError, ValueError) as err:
                raise StoreError(f"run {run_id}: the data of event {ev.kind} is not JSON-serialisable: {err}") from None
            rows.append((ev.kind, run_id, ev.time or now, ev.step, ev.item, ev.attempt, data))
        if self._conn is None:
            raise StoreError(f"the journal {self.path} is not open (await store.open() first)")
        future: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        self._enqueue(_Append(run_id, rows, datas, status, epoch, future))
        return await future

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn`` in the next group-committed transaction; its result once committed."""
        if self._conn is None:
            raise StoreError(f"the journal {self.path} is not open (await store.open() first)")
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._enqueue(_Write(fn, future))
        return await future

    def _enqueue(self, item: _Append | _Write) -> None:
        self._pending.append(item)
        if not self._flush_scheduled:
            # Everything queued until the flush runs shares its transaction. A queued write
            # commits even if its caller is cancelled meanwhile; the caller just is not told.
            self._flush_scheduled = True
            loop = asyncio.get_running_loop()
            if self.inline_commit:
                loop.call_soon(self._flush_inline)
            else:
                self._writer = loop.create_task(self._write_loop())

    @staticmethod
    def _resolve(batch: list[_Append | _Write], results: Sequence[Any]) -> None:
        for item, result in zip(batch, results):
            if item.future.done():  # its caller was cancelled
                continue
            if isinstance(result, Exception):
                item.future.set_exception(result)
            else:
                item.future.set_result(result)

    def _flush_inline(self) -> None:
        """Commit everything queued on the loop's thread (a loop callback)."""
        batch, self._pending = self._pending, []
        self._flush_scheduled = False
        conn = self._conn
        if conn is None:
            error = StoreError(f"the journal {self.path} was closed before the append was written")
            self._resolve(batch, [error] * len(batch))
            return
        try:
            results: Sequence[Any] = self._commit(conn, batch)
        except (sqlite3.Error, OSError) as err:  # a failed commit fails every append of the batch
            self._rollback(conn)
            results = [self._error(err, "write to")] * len(batch)
        self._resolve(batch, results)

    async def _write_loop(self) -> None:
        """The single writer (thread mode): commit everything queued, resolve the waiters, repeat."""
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    results: Sequence[Any] = await self._call(functools.partial(self._commit, batch=batch), "write to")
                except Exception as err:  # a failed commit fails every append of the batch
                    results = [err] * len(batch)
                self._resolve(batch, results)
        finally:
            self._flush_scheduled = False

    def _commit(self, conn: sqlite3.Connection, batch: list[_Append | _Write]) -> list[Any]:
        """Write a batch in one transaction (on the store's thread, or inline on the loop).

        Each item's result is its value or its own StoreError; an sqlite error
        aborts the whole transaction (the caller fails every item).
        """
        results: list[Any] = []
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        for item in batch:
            if isinstance(item, _Write):
                try:
                    results.append(item.fn(conn))
                except StoreError as err:
                    results.append(err)
                continue
            n = len(item.rows)
            # Like every store: when the caller does not say, the events imply the status (the fold stays the truth).
            status = item.status or status_after(row[0] for row in item.rows)
            # One statement numbers the events, updates the status cache and checks the fence.
            row = conn.execute(
                "UPDATE runs SET last_seq = last_seq + ?, status = COALESCE(?, status), updated_at = ?"
                " WHERE run_id = ? AND (? IS NULL OR epoch = ?) RETURNING epoch, last_seq",
                (n, status, now, item.run_id, item.epoch, item.epoch),
            ).fetchone()
            if row is None:
                results.append(self._refusal(conn, item))
                continue
            epoch, last = row
            first = last - n
            out: list[Event] = []
            params = []
            for i, (kind, run_id, t, step, itm, attempt, data) in enumerate(item.rows):
                params.append((run_id, first + i + 1, kind, t, step, itm, attempt, data, epoch))
                out.append(Event(kind, run_id, first + i + 1, t, step, itm, attempt, item.data[i], epoch))
            if params:
                conn.executemany(
                    "INSERT INTO events (run_id, seq, kind, time, step, item, attempt, data, epoch)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    params,
                )
            results.append(out)
        conn.execute("COMMIT")
        self.transactions += 1
        self.appends += len(batch)
        return results

    def _refusal(self, conn: sqlite3.Connection, item: _Append) -> StoreError:
        """Why an append matched no run: the run is unknown, or the writer's epoch is stale."""
        row = conn.execute("SELECT epoch FROM runs WHERE run_id = ?", (item.run_id,)).fetchone()
        if row is None:
            return StoreError(f"cannot append to run {item.run_id}: no such run in {self.path}")
        return StaleEpochError(
            f"run {item.run_id}: a write with lease epoch {item.epoch} was refused; the run's current "
            f"epoch is {row[0]} (another process took the run over)"
        )

    async def events(self, run_id: str, after_seq: int = 0) -> list[Event]:
        """The run's events with ``seq > after_seq``, in order."""

        def select(conn: sqlite3.Connection) -> list[Event]:
            rows = conn.execute(
                "SELECT kind, run_id, seq, time, step, item, attempt, data, epoch FROM events"
                " WHERE run_id = ? AND seq > ? ORDER BY seq",
                (run_id, after_seq),
            )
            return [Event(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8]) for r in rows]

        return await self._call(select, "read")

    # -- cancel -----------------------------------------------------------------------------

    async def request_cancel(self, run_id: str) -> bool:
        """Flag the run for cancellation; False if it is unknown or already terminal."""

        def flag(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE runs SET cancel_requested = 1, updated_at = ?"
                f" WHERE run_id = ? AND status NOT IN ({_TERMINAL_SQL})",
                (time.time(), run_id, *_TERMINAL),
            )
            return cur.rowcount == 1

        return await self._write(flag)

    async def cancel_requested(self, run_id: str) -> bool:
        """Whether someone asked to cancel the run (cheap: the driving process polls it)."""

        def read(conn: sqlite3.Connection) -> bool:
            row = conn.execute("SELECT cancel_requested FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            return bool(row and row[0])

        return await self._call(read, "read")

    # -- leases -----------------------------------------------------------------------------

    async def acquire(self, run_id: str, owner: str, ttl: float) -> int | None:
        """Take the run's lease; returns the new epoch, or None if another live owner holds it.

        A lease is free when it has expired, when ``owner`` holds it already, or
        when its holder is a process on this host that has exited.
        """

        def take(conn: sqlite3.Connection) -> int | None:
            row = conn.execute("SELECT owner, lease_until, epoch FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:
                raise StoreError(f"cannot take the lease of run {run_id}: no such run in {self.path}")
            holder, until, epoch = row
            now = time.time()
            if holder != owner and lease_is_live(Lease(holder, until), now):
                return None
            conn.execute(
                "UPDATE runs SET owner = ?, lease_until = ?, epoch = ?, updated_at = ? WHERE run_id = ?",
                (owner, now + ttl, epoch + 1, now, run_id),
            )
            return int(epoch) + 1

        return await self._write(take)

    async def renew(self, run_id: str, owner: str, epoch: int, ttl: float) -> bool:
        """Extend the lease; False if it was lost (another epoch took over)."""

        def extend(conn: sqlite3.Connection) -> bool:
            cur = conn.execute(
                "UPDATE runs SET lease_until = ? WHERE run_id = ? AND owner = ? AND epoch = ?",
                (time.time() + ttl, run_id, owner, epoch),
            )
            return cur.rowcount == 1

        return await self._write(extend)

    async def release(self, run_id: str, owner: str, epoch: int) -> None:
        """Give the lease up (a no-op when it was lost already)."""

        def drop(conn: sqlite3.Connection) -> None:
            conn.execute(
                "UPDATE runs SET owner = NULL, lease_until = NULL WHERE run_id = ? AND owner = ? AND epoch = ?",
                (run_id, owner, epoch),
            )

        await self._write(drop)

    # -- inspection -------------------------------------------------------------------------

    async def schema_version(self) -> int:
        """The schema version recorded in the file."""

        def read(conn: sqlite3.Connection) -> int:
            return int(conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0])

        return await self._call(read, "read")

    def options(self) -> Mapping[str, Any]:
        """The effective connection options (for ``sagalang`` diagnostics and docs)."""
        return {"path": self.path, "synchronous": self.synchronous, "timeout": self.timeout, "journal_mode": "wal"}
