"""The example services' shared state: a small SQLite database of effects, plus a query API.

Every side effect a handler applies is one row of ``effects`` keyed by the call's
idempotency key: a repeated call with the same key returns the stored result and
changes nothing; an undo marks the row undone (once) and tolerates "nothing to
undo". An undo that arrives before its forward call leaves a tombstone.

A forward call for a key whose effect was undone is told apart by when it
started: a call that started before the last undo call is a late one (it was in
flight, e.g. timed out, while the saga compensated) and is refused, so an effect
is never applied after its own undo; a call that started after it is a new
attempt of the whole saga (``on failure { retry saga ... }`` runs again under the
same run id, hence the same keys) and applies the effect again as the key's next
*generation*. So each row is one (key, generation).

The database is ``$SAGALANG_EXAMPLES_DB`` (default ``.sagalang/examples.db`` under
the working directory), created on first use. Tests use :func:`effects`,
:func:`violations` and the ``seed_*``/:func:`inject_fault` helpers.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sagalang.context import Context, Failure

__all__ = [
    "DB_ENV",
    "apply",
    "connect",
    "consume_fault",
    "db_path",
    "effect_key",
    "effects",
    "inject_fault",
    "reset",
    "seed_account",
    "seed_capacity",
    "seed_card",
    "seed_stock",
    "transaction",
    "undo",
    "violations",
]

DB_ENV = "SAGALANG_EXAMPLES_DB"

_SCHEMA_VERSION = 2
_SCHEMA = """
CREATE TABLE IF NOT EXISTS effects (
    key        TEXT NOT NULL,      -- the forward call's idempotency key
    generation INTEGER NOT NULL,   -- 1, then 2... when a whole-saga retry applies it again
    saga_id    TEXT NOT NULL,
    step       TEXT NOT NULL,
    item       INTEGER,
    kind       TEXT NOT NULL,      -- the handler that applied it, e.g. inventory.reserve
    args       TEXT NOT NULL,      -- JSON
    result     TEXT,               -- JSON; NULL for a tombstone
    applied    INTEGER NOT NULL,   -- 1 applied, 0 tombstone (undo came first)
    calls      INTEGER NOT NULL,   -- forward calls seen with this key
    undone     INTEGER NOT NULL,   -- times the effect was actually reversed (0 or 1)
    undo_calls INTEGER NOT NULL,   -- undo calls seen with this key
    applied_at REAL,
    undone_at  REAL,
    last_undo_at REAL,             -- when the last undo call for this key arrived
    PRIMARY KEY (key, generation)
);
CREATE TABLE IF NOT EXISTS stock    (sku TEXT PRIMARY KEY, available INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS cards    (card TEXT PRIMARY KEY, declined INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (
    account TEXT PRIMARY KEY, balance REAL NOT NULL, overdraft REAL NOT NULL, closed INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS capacity (resource TEXT PRIMARY KEY, available INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS faults   (handler TEXT PRIMARY KEY, remaining INTEGER NOT NULL, error TEXT NOT NULL);
"""

_DEFAULT_STOCK = 100


def _now() -> float:
    """Wall-clock time (a module function so tests can stand in for it)."""
    return time.time()


_DEFAULT_BALANCE = 1000.0
_DEFAULT_CAPACITY = 20


def db_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The database file: ``path``, else ``$SAGALANG_EXAMPLES_DB``, else ``.sagalang/examples.db``."""
    if path is not None:
        return Path(path)
    env = os.environ.get(DB_ENV)
    return Path(env) if env else Path.cwd() / ".sagalang" / "examples.db"


def connect(path: str | os.PathLike[str] | None = None) -> sqlite3.Connection:
    """An autocommit connection with the schema in place (the file is created on first use)."""
    target = db_path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Several worker threads and processes share the file: wait for locks instead of failing.
    conn = sqlite3.connect(target, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA busy_timeout=30000")
    if conn.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:
        # A demo database from an older layout: start it afresh.
        conn.execute("BEGIN IMMEDIATE")
        if conn.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:
            for table in ("effects", "stock", "cards", "accounts", "capacity", "faults"):
                conn.execute(f"DROP TABLE IF EXISTS {table}")
            # One statement at a time inside the transaction (executescript would commit first).
            plain = re.sub(r"--[^\n]*", "", _SCHEMA)
            for statement in plain.split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        conn.execute("COMMIT")
    return conn


@contextmanager
def transaction(path: str | os.PathLike[str] | None = None) -> Iterator[sqlite3.Connection]:
    """One write transaction (``BEGIN IMMEDIATE``): committed on success, rolled back on error."""
    conn = connect(path)
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
    finally:
        conn.close()


def effect_key(ctx: Context) -> str:
    """The forward call's idempotency key, also when called from its undo.

    The engine hands an undo the same key as the forward call it undoes (including
    the ``#N`` of a later whole-saga attempt); without one, it is rebuilt as
    ``saga_id/step[/item]``.
    """
    if ctx.idempotency_key:
        return ctx.idempotency_key
    key = f"{ctx.saga_id}/{ctx.step}"
    return key if ctx.item is None else f"{key}/{ctx.item}"


def consume_fault(conn: sqlite3.Connection, handler: str) -> None:
    """Raise the injected transient failure for ``handler`` if one is pending."""
    row = conn.execute("SELECT remaining, error FROM faults WHERE handler = ?", (handler,)).fetchone()
    if row is None or row["remaining"] <= 0:
        return
    conn.execute("UPDATE faults SET remaining = remaining - 1 WHERE handler = ?", (handler,))
    # Commit the decrement even though the call fails: the fault is used up.
    conn.execute("COMMIT")
    conn.execute("BEGIN IMMEDIATE")
    raise Failure(row["error"], f"{handler}: injected failure ({row['remaining'] - 1} more)")


def _latest(conn: sqlite3.Connection, key: str) -> sqlite3.Row | None:
    row: sqlite3.Row | None = conn.execute(
        "SELECT * FROM effects WHERE key = ? ORDER BY generation DESC LIMIT 1", (key,)
    ).fetchone()
    return row


def apply(
    ctx: Context,
    kind: str,
    args: dict[str, Any],
    effect: Callable[[sqlite3.Connection], dict[str, Any]],
    path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Apply ``effect`` once per idempotency key and return its result (the stored one on repeats)."""
    started = _now()
    key = effect_key(ctx)
    with transaction(path) as conn:
        consume_fault(conn, kind)
        row = _latest(conn, key)
        generation = 1
        if row is not None:
            where = (row["key"], row["generation"])
            if row["applied"] and not row["undone"]:
                conn.execute("UPDATE effects SET calls = calls + 1 WHERE key = ? AND generation = ?", where)
                result: dict[str, Any] = json.loads(row["result"])
                return result
            if started <= row["last_undo_at"]:
                # In flight while its undo ran: applying it now would leave an effect nobody undoes.
                conn.execute("UPDATE effects SET calls = calls + 1 WHERE key = ? AND generation = ?", where)
                conn.execute("COMMIT")  # keep the count although the call fails
                conn.execute("BEGIN IMMEDIATE")
                raise Failure(
                    "examples.AlreadyCompensated",
                    f"{kind}: the effect for key {key!r} was undone while this call was in flight; not applying it",
                    retryable=False,
                )
            if not row["applied"]:
                # The tombstone of an undo that found nothing: this call is a later attempt's; it takes the row.
                result = effect(conn)
                conn.execute(
                    "UPDATE effects SET kind = ?, args = ?, result = ?, applied = 1, calls = calls + 1, applied_at = ?,"
                    " undone_at = NULL WHERE key = ? AND generation = ?",
                    (kind, _dump(args), _dump(result), _now(), *where),
                )
                return result
            generation = row["generation"] + 1
        result = effect(conn)
        conn.execute(
            "INSERT INTO effects (key, generation, saga_id, step, item, kind, args, result, applied, calls, undone,"
            " undo_calls, applied_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, 1, 0, 0, ?)",
            (key, generation, ctx.saga_id, ctx.step, ctx.item, kind, _dump(args), _dump(result), _now()),
        )
        return result


def undo(
    ctx: Context,
    kind: str,
    reverse: Callable[[sqlite3.Connection, dict[str, Any], dict[str, Any]], None],
    path: str | os.PathLike[str] | None = None,
) -> dict[str, Any]:
    """Reverse the latest effect of this step (at most once); "nothing to undo" is a success.

    ``reverse(conn, args, result)`` receives the forward call's arguments and result.
    """
    key = effect_key(ctx)
    with transaction(path) as conn:
        consume_fault(conn, kind)
        now = _now()
        row = _latest(conn, key)
        if row is None:
            # The forward call never arrived (or has not yet): a tombstone makes a late one refuse.
            conn.execute(
                "INSERT INTO effects (key, generation, saga_id, step, item, kind, args, result, applied, calls,"
                " undone, undo_calls, undone_at, last_undo_at) VALUES (?, 1, ?, ?, ?, ?, '{}', NULL, 0, 0, 0, 1, ?, ?)",
                (key, ctx.saga_id, ctx.step, ctx.item, kind, now, now),
            )
            return {"undone": False, "reason": "nothing to undo"}
        where = (row["key"], row["generation"])
        conn.execute(
            "UPDATE effects SET undo_calls = undo_calls + 1, last_undo_at = ? WHERE key = ? AND generation = ?",
            (now, *where),
        )
        if not row["applied"] or row["undone"]:
            return {"undone": False, "reason": "already undone"}
        reverse(conn, json.loads(row["args"]), json.loads(row["result"]))
        conn.execute("UPDATE effects SET undone = 1, undone_at = ? WHERE key = ? AND generation = ?", (now, *where))
        return {"undone": True}


def _dump(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


# ---- seeding and fault injection (used by tests and demos) --------------------


def inject_fault(
    handler: str, count: int, error: str = "examples.Unavailable", path: str | os.PathLike[str] | None = None
) -> None:
    """Make the next ``count`` calls of ``handler`` fail with the (retryable) error ``error``."""
    with transaction(path) as conn:
        conn.execute(
            "INSERT INTO faults (handler, remaining, error) VALUES (?, ?, ?)"
            " ON CONFLICT(handler) DO UPDATE SET remaining = excluded.remaining, error = excluded.error",
            (handler, count, error),
        )


def seed_stock(sku: str, available: int, path: str | os.PathLike[str] | None = None) -> None:
    """Set the units of ``sku`` in stock (unknown SKUs start with 100)."""
    with transaction(path) as conn:
        conn.execute(
            "INSERT INTO stock (sku, available) VALUES (?, ?)"
            " ON CONFLICT(sku) DO UPDATE SET available = excluded.available",
            (sku, available),
        )


def seed_card(card: str, declined: bool = True, path: str | os.PathLike[str] | None = None) -> None:
    """Mark a card to be declined (or accepted again)."""
    with transaction(path) as conn:
        conn.execute(
            "INSERT INTO cards (card, declined) VALUES (?, ?)"
            " ON CONFLICT(card) DO UPDATE SET declined = excluded.declined",
            (card, int(declined)),
        )


def seed_account(
    account: str,
    balance: float,
    overdraft: float = 0.0,
    closed: bool = False,
    path: str | os.PathLike[str] | None = None,
) -> None:
    """Create or reset a bank account (unknown accounts open with 1000.00 and no overdraft)."""
    with transaction(path) as conn:
        conn.execute(
            "INSERT INTO accounts (account, balance, overdraft, closed) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(account) DO UPDATE SET balance = excluded.balance, overdraft = excluded.overdraft,"
            " closed = excluded.closed",
            (account, balance, overdraft, int(closed)),
        )


def seed_capacity(resource: str, available: int, path: str | os.PathLike[str] | None = None) -> None:
    """Set a bookable resource's free units, e.g. ``seats:Lisbon``, ``rooms:Lisbon``, ``cars:Lisbon``."""
    with transaction(path) as conn:
        conn.execute(
            "INSERT INTO capacity (resource, available) VALUES (?, ?)"
            " ON CONFLICT(resource) DO UPDATE SET available = excluded.available",
            (resource, available),
        )


def reset(path: str | os.PathLike[str] | None = None) -> None:
    """Empty every table (effects, stock, cards, accounts, capacity, faults)."""
    with transaction(path) as conn:
        for table in ("effects", "stock", "cards", "accounts", "capacity", "faults"):
            conn.execute(f"DELETE FROM {table}")


# ---- helpers the handlers share -------------------------------------------------


def take(conn: sqlite3.Connection, table: str, column: str, name: str, amount: int, default: int) -> int | None:
    """Take ``amount`` units of ``name`` if available; returns what is left, or None when short."""
    conn.execute(f"INSERT OR IGNORE INTO {table} ({column}, available) VALUES (?, ?)", (name, default))
    row = conn.execute(f"SELECT available FROM {table} WHERE {column} = ?", (name,)).fetchone()
    if row["available"] < amount:
        return None
    conn.execute(f"UPDATE {table} SET available = available - ? WHERE {column} = ?", (amount, name))
    return int(row["available"] - amount)


def give_back(conn: sqlite3.Connection, table: str, column: str, name: str, amount: int) -> None:
    """Return ``amount`` units of ``name``."""
    conn.execute(f"UPDATE {table} SET available = available + ? WHERE {column} = ?", (amount, name))


def account(conn: sqlite3.Connection, name: str) -> sqlite3.Row:
    """The account row, opened with the default balance on first use."""
    conn.execute(
        "INSERT OR IGNORE INTO accounts (account, balance, overdraft, closed) VALUES (?, ?, 0, 0)",
        (name, _DEFAULT_BALANCE),
    )
    row: sqlite3.Row = conn.execute("SELECT * FROM accounts WHERE account = ?", (name,)).fetchone()
    return row


def card_declined(conn: sqlite3.Connection, card: str) -> bool:
    """Whether ``card`` is marked to decline (4000-0000-0000-0002 always declines, like test cards do)."""
    if card.replace(" ", "").replace("-", "") == "4000000000000002":
        return True
    row = conn.execute("SELECT declined FROM cards WHERE card = ?", (card,)).fetchone()
    return bool(row and row["declined"])


STOCK_DEFAULT = _DEFAULT_STOCK
CAPACITY_DEFAULT = _DEFAULT_CAPACITY


# ---- queries ------------------------------------------------------------------------


def effects(path: str | os.PathLike[str] | None = None, saga_id: str | None = None) -> list[dict[str, Any]]:
    """Every effect row (optionally of one saga), oldest first, with JSON fields decoded.

    Each dict has: key, generation, saga_id, step, item, kind, args, result, status
    (``applied``, ``undone`` or ``tombstone``), calls, undone, undo_calls.
    """
    conn = connect(path)
    try:
        sql = "SELECT * FROM effects"
        params: tuple[Any, ...] = ()
        if saga_id is not None:
            sql += " WHERE saga_id = ? OR saga_id LIKE ?"
            params = (saga_id, saga_id + "/%")
        rows = conn.execute(sql + " ORDER BY rowid", params).fetchall()
    finally:
        conn.close()
    out = []
    for r in rows:
        status = "tombstone" if not r["applied"] else ("undone" if r["undone"] else "applied")
        out.append(
            {
                "key": r["key"],
                "generation": r["generation"],
                "saga_id": r["saga_id"],
                "step": r["step"],
                "item": r["item"],
                "kind": r["kind"],
                "args": json.loads(r["args"]),
                "result": json.loads(r["result"]) if r["result"] is not None else None,
                "status": status,
                "calls": r["calls"],
                "undone": r["undone"],
                "undo_calls": r["undo_calls"],
            }
        )
    return out


def violations(
    completed: Iterable[str], path: str | os.PathLike[str] | None = None, saga_ids: Iterable[str] | None = None
) -> list[str]:
    """Broken invariants: an effect of a saga that did not complete must be undone exactly once;
    the latest effect per key of a completed saga must be kept (earlier generations, from
    attempts rolled back before a whole-saga retry, undone); nothing is undone twice.

    ``completed`` are the saga ids that completed; ``saga_ids`` limits the check (default: all rows).
    Sub-saga effects whose saga id starts with ``PARENT/`` follow their parent.
    """
    done = set(completed)
    wanted = set(saga_ids) if saga_ids is not None else None
    problems: list[str] = []
    rows = effects(path)

    def order(row: dict[str, Any]) -> tuple[str, int, int]:
        # From the second whole-saga attempt on, keys read ``RUN#N/step``: the same step,
        # a later attempt.
        head, _, rest = row["key"].partition("/")
        run, _, n = head.partition("#")
        return f"{run}/{rest}", int(n) if n.isdigit() else 1, row["generation"]

    for e in rows:
        root = e["saga_id"].split("/")[0]
        if wanted is not None and e["saga_id"] not in wanted and root not in wanted:
            continue
        kept = e["saga_id"] in done or root in done
        # An earlier generation belongs to an attempt that was rolled back before the saga was retried.
        base, attempt, generation = order(e)
        latest = not any(order(o)[0] == base and order(o)[1:] > (attempt, generation) for o in rows)
        if e["undone"] > 1:
            problems.append(f"{e['key']}#{e['generation']}: undone {e['undone']} times")
        if e["status"] == "applied" and not kept:
            problems.append(f"{e['key']}: {e['kind']} applied by a saga that did not complete, never undone")
        if e["status"] == "applied" and not latest:
            problems.append(f"{e['key']}#{e['generation']}: applied again by a later attempt without being undone")
        if e["status"] == "undone" and kept and latest:
            problems.append(f"{e['key']}: {e['kind']} undone although its saga completed")
    return problems
