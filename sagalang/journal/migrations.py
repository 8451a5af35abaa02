"""The journal's versioned schema, shared by the SQLite and PostgreSQL stores.

Each :class:`Migration` carries the statements for both dialects, so the two
backends keep the same tables, columns and version numbers. A store records
every applied version in ``schema_version``; it applies the missing ones in
one transaction on open and refuses a database written by a newer sagalang
(its schema may mean things this version does not know).
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from ..errors import StoreError

__all__ = [
    "LATEST_VERSION",
    "MIGRATIONS",
    "QUIET_PREDICATE",
    "SCHEMA_VERSION_DDL",
    "Migration",
    "check_version",
    "migrate_sqlite",
    "pending",
]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: what it adds and its statements per dialect."""

    version: int
    description: str
    sqlite: tuple[str, ...]
    postgresql: tuple[str, ...]


# Created before any migration runs, so a store can read the version first.
SCHEMA_VERSION_DDL = {
    "sqlite": (
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at REAL NOT NULL)"
    ),
    "postgresql": (
        "CREATE TABLE IF NOT EXISTS schema_version ("
        " version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
    ),
}

_V1_SQLITE = (
    # spec/input/handlers/extra hold JSON text; status caches the fold of the journal;
    # last_seq lets an append number its events without scanning them.
    """CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        saga TEXT NOT NULL,
        entry TEXT NOT NULL,
        spec_path TEXT,
        spec TEXT NOT NULL,
        spec_hash TEXT NOT NULL,
        input TEXT NOT NULL,
        handlers TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        owner TEXT,
        lease_until REAL,
        epoch INTEGER NOT NULL DEFAULT 0,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        extra TEXT NOT NULL DEFAULT '{}',
        last_seq INTEGER NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX runs_by_created ON runs (created_at DESC)",
    "CREATE INDEX runs_by_status ON runs (status, created_at DESC)",
    # The primary key is the journal's order; WITHOUT ROWID stores events clustered by run.
    """CREATE TABLE events (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        seq INTEGER NOT NULL,
        kind TEXT NOT NULL,
        time REAL NOT NULL,
        step TEXT,
        item INTEGER,
        attempt INTEGER,
        data TEXT NOT NULL,
        epoch INTEGER NOT NULL,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID""",
)

_V1_POSTGRES = (
    """CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        saga TEXT NOT NULL,
        entry TEXT NOT NULL,
        spec_path TEXT,
        spec JSONB NOT NULL,
        spec_hash TEXT NOT NULL,
        input JSONB NOT NULL,
        handlers JSONB NOT NULL,
        status TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
        owner TEXT,
        lease_until DOUBLE PRECISION,
        epoch BIGINT NOT NULL DEFAULT 0,
        cancel_requested BOOLEAN NOT NULL DEFAULT FALSE,
        extra JSONB NOT NULL DEFAULT '{}'::jsonb,
        last_seq BIGINT NOT NULL DEFAULT 0
    )""",
    "CREATE INDEX runs_by_created ON runs (created_at DESC)",
    "CREATE INDEX runs_by_status ON runs (status, created_at DESC)",
    # Workers claim runs whose lease is free or expired (FOR UPDATE SKIP LOCKED).
    "CREATE INDEX runs_by_lease ON runs (status, lease_until)",
    """CREATE TABLE events (
        run_id TEXT NOT NULL REFERENCES runs (run_id),
        seq BIGINT NOT NULL,
        kind TEXT NOT NULL,
        time DOUBLE PRECISION NOT NULL,
        step TEXT,
        item INTEGER,
        attempt INTEGER,
        data JSONB NOT NULL,
        epoch BIGINT NOT NULL,
        PRIMARY KEY (run_id, seq)
    )""",
)

# Listings by last update (the web view's runs list). updated_at changes with every append,
# and an index holding it costs every append an index write (on SQLite one more WAL page
# per commit). So these indexes hold only the runs no process is appending to: finished,
# queued (and any other status but the two a driver writes in), and a run being driven
# pays nothing; the few runs in flight are found through runs_by_status. A query must
# repeat QUIET_PREDICATE word for word (sagalang.journal.queries does) for the planner
# to use these indexes.
QUIET_PREDICATE = "(status <> 'running' AND status <> 'compensating')"
_V2_INDEXES = (
    f"CREATE INDEX runs_quiet_by_update ON runs (updated_at, run_id, status, saga) WHERE {QUIET_PREDICATE}",
    f"CREATE INDEX runs_quiet_by_status ON runs (status, updated_at, run_id) WHERE {QUIET_PREDICATE}",
    f"CREATE INDEX runs_quiet_by_saga ON runs (saga, updated_at, run_id, status) WHERE {QUIET_PREDICATE}",
)

MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "runs, events", _V1_SQLITE, _V1_POSTGRES),
    Migration(2, "indexes for listing runs by last update", _V2_INDEXES, _V2_INDEXES),
)
LATEST_VERSION = MIGRATIONS[-1].version


def pending(current: int) -> list[Migration]:
    """The migrations a database at version ``current`` still needs, oldest first."""
    return [m for m in MIGRATIONS if m.version > current]


def check_version(found: int, where: str) -> None:
    """Refuse a database whose schema is newer than this sagalang knows."""
    if found > LATEST_VERSION:
        raise StoreError(
            f"{where} was written by a newer sagalang (journal schema version {found}); "
            f"this sagalang supports schema versions up to {LATEST_VERSION}: upgrade sagalang to use this store"
        )


def migrate_sqlite(conn: sqlite3.Connection, where: str) -> int:
    """Bring an SQLite journal (autocommit connection) to the latest version; returns it.

    All pending migrations run in one IMMEDIATE transaction, so two processes
    opening a fresh store at once do not both apply them.
    """
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if tables and "schema_version" not in tables:
        raise StoreError(
            f"{where} is an SQLite database but not a sagalang journal (it has tables {', '.join(sorted(tables))}); "
            "choose another path with --store or $SAGALANG_STORE"
        )
    if "schema_version" in tables:
        found = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0]
        check_version(int(found), where)
        if found == LATEST_VERSION:
            return LATEST_VERSION
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(SCHEMA_VERSION_DDL["sqlite"])
        current = int(conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()[0])
        check_version(current, where)
        for migration in pending(current):
            for statement in migration.sqlite:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, description, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.description, time.time()),
            )
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return LATEST_VERSION
