"""What a :class:`~sagalang.journal.base.RunFilter` selects, written once for every backend.

The SQL stores share the statements built here (each passes its dialect), the
memory store uses :func:`matches` and :func:`order_key`; the three agree on the
order (last update, newest first, ties by run id descending) and on what each
field means.

A listing reads two disjoint parts and merges them in SQL: the quiet runs (every
status but ``running`` and ``compensating``: finished, queued), served in order by
the partial indexes of migration 2 (whose predicate
:data:`~sagalang.journal.migrations.QUIET_PREDICATE` each statement repeats, so
the planner can use them), and the runs being driven, found through
``runs_by_status`` and sorted. A page therefore costs about the same however many
runs have finished, and grows with the number of runs in flight.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ..status import RunStatus
from .base import RunCursor, RunFilter, RunRecord
from .migrations import QUIET_PREDICATE

__all__ = ["HOT_STATES", "count_sql", "matches", "order_key", "saga_counts_sql", "saga_names_sql", "select_sql"]

Dialect = Literal["sqlite", "postgresql"]

_ORDER = "ORDER BY updated_at DESC, run_id DESC"
# The statuses a driver appends in: the runs QUIET_PREDICATE leaves out.
HOT_STATES: tuple[str, ...] = (str(RunStatus.RUNNING), str(RunStatus.COMPENSATING))


def _mark(dialect: Dialect) -> str:
    return "?" if dialect == "sqlite" else "%s"


def _in(column: str, values: tuple[str, ...], mark: str) -> str:
    return f"{column} IN ({', '.join(mark for _ in values)})"


@dataclass(frozen=True, slots=True)
class _Part:
    """One of the two disjoint parts a query reads: its status condition and parameters."""

    quiet: bool
    cond: str
    params: list[Any]


def _parts(where: RunFilter, mark: str) -> list[_Part]:
    """The parts a query reads: the quiet runs and the runs being driven, each if ``where`` can select it."""
    quiet = tuple(s for s in where.statuses if s not in HOT_STATES)
    hot = tuple(s for s in where.statuses if s in HOT_STATES) if where.statuses else HOT_STATES
    parts: list[_Part] = []
    if quiet or not where.statuses:
        parts.append(_Part(True, QUIET_PREDICATE + (f" AND {_in('status', quiet, mark)}" if quiet else ""), [*quiet]))
    if hot:
        parts.append(_Part(False, _in("status", hot, mark), [*hot]))
    return parts


def _rest(where: RunFilter, after: RunCursor | None, dialect: Dialect) -> tuple[str, list[Any]]:
    """The conditions besides the status, each as ``" AND ..."``, with parameters."""
    mark = _mark(dialect)
    sql = ""
    params: list[Any] = []
    if where.saga is not None:
        sql += f" AND saga = {mark}"
        params.append(where.saga)
    if where.id_contains:
        # A plain substring test: no LIKE, so % and _ in the text need no escaping.
        sql += f" AND instr(run_id, {mark}) > 0" if dialect == "sqlite" else f" AND strpos(run_id, {mark}) > 0"
        params.append(where.id_contains)
    if where.updated_from is not None:
        sql += f" AND updated_at >= {mark}"
        params.append(where.updated_from)
    if where.updated_to is not None:
        sql += f" AND updated_at < {mark}"
        params.append(where.updated_to)
    if after is not None:
        sql += f" AND (updated_at, run_id) < ({mark}, {mark})"
        params.extend((after.updated_at, after.run_id))
    return sql, params


def select_sql(
    where: RunFilter, after: RunCursor | None, limit: int, columns: str, dialect: Dialect
) -> tuple[str, list[Any]]:
    """One statement listing up to ``limit`` runs (``columns`` of ``runs``) in the listing order.

    Each part picks the ids of its first ``limit`` runs from an index, so only the
    rows shown are read whole (a run's row holds its spec and input).
    """
    mark = _mark(dialect)
    rest, rest_params = _rest(where, after, dialect)
    picks: list[str] = []
    params: list[Any] = []
    for i, part in enumerate(_parts(where, mark)):
        picks.append(
            f"SELECT run_id FROM (SELECT run_id, updated_at FROM runs WHERE {part.cond}{rest} {_ORDER} LIMIT {mark})"
            f" AS p{i}"
        )
        params.extend([*part.params, *rest_params, limit])
    sql = f"SELECT {columns} FROM runs WHERE run_id IN ({' UNION ALL '.join(picks)}) {_ORDER} LIMIT {mark}"
    return sql, [*params, limit]


def count_sql(where: RunFilter, dialect: Dialect) -> tuple[str, list[Any]]:
    """One statement giving ``(status, count)`` rows for the runs ``where`` selects."""
    mark = _mark(dialect)
    rest, rest_params = _rest(where, None, dialect)
    selects: list[str] = []
    params: list[Any] = []
    for part in _parts(where, mark):
        # SQLite's planner would walk the status index to group (reading every row for its saga).
        hint = " INDEXED BY runs_quiet_by_saga" if dialect == "sqlite" and where.saga and part.quiet else ""
        selects.append(f"SELECT status, count(*) FROM runs{hint} WHERE {part.cond}{rest} GROUP BY status")
        params.extend([*part.params, *rest_params])
    return " UNION ALL ".join(selects), params


def saga_counts_sql(dialect: Dialect) -> tuple[str, list[Any]]:
    """One statement giving ``(saga, count)`` rows, a saga possibly twice (once per part): sum them."""
    mark = _mark(dialect)
    selects: list[str] = []
    params: list[Any] = []
    for part in _parts(RunFilter(), mark):
        selects.append(f"SELECT saga, count(*) FROM runs WHERE {part.cond} GROUP BY saga")
        params.extend(part.params)
    return " UNION ALL ".join(selects), params


def saga_names_sql(dialect: Dialect) -> tuple[str, list[Any]]:
    """One statement giving the distinct saga names, sorted.

    The quiet part hops from name to name through ``runs_quiet_by_saga`` (a read per
    saga, not per run); the runs in flight are few and read whole.
    """
    mark = _mark(dialect)
    quiet, hot = _parts(RunFilter(), mark)
    sql = (
        f"WITH RECURSIVE names(saga) AS ("
        f" SELECT (SELECT min(saga) FROM runs WHERE {quiet.cond})"
        f" UNION ALL SELECT (SELECT min(saga) FROM runs WHERE {quiet.cond} AND saga > names.saga)"
        f" FROM names WHERE names.saga IS NOT NULL)"
        f" SELECT saga FROM names WHERE saga IS NOT NULL"
        f" UNION SELECT saga FROM runs WHERE {hot.cond} ORDER BY saga"
    )
    return sql, [*quiet.params, *hot.params]


def matches(rec: RunRecord, where: RunFilter) -> bool:
    """Whether ``rec`` is selected by ``where`` (the memory store's version of the SQL)."""
    if where.statuses and rec.status not in where.statuses:
        return False
    if where.saga is not None and rec.saga != where.saga:
        return False
    if where.id_contains and where.id_contains not in rec.run_id:
        return False
    if where.updated_from is not None and rec.updated_at < where.updated_from:
        return False
    return where.updated_to is None or rec.updated_at < where.updated_to


def order_key(rec: RunRecord) -> tuple[float, str]:
    """The listing order's key; sort with ``reverse=True`` for newest first."""
    return rec.updated_at, rec.run_id
