"""The runs list and the "needs a human" inbox: filters read from the URL, store queries, rows.

Filters live in the query string (``status``, ``saga``, ``q`` for id text,
``from``/``to`` for the last update, ``after`` for the page), so a filtered
view is a link. Pages are keyset-paginated by last update, newest first.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from ..journal.base import RUN_STATES, RunCursor, RunFilter, RunPage, RunQueries, RunRecord
from ..journal.queries import HOT_STATES
from ..operations import is_orphaned

__all__ = [
    "INBOX",
    "MAX_LIMIT",
    "InboxSection",
    "ListQuery",
    "QueryError",
    "RunRow",
    "RunsView",
    "inbox",
    "parse_query",
    "run_row",
    "runs_view",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# How many runs in flight the inbox examines for orphans (newest update first).
ORPHAN_SCAN = 1000


class QueryError(ValueError):
    """A filter in the URL that cannot be read; its message names the parameter."""


def _parse_time(name: str, text: str) -> float:
    """``2024-05-01``, ``2024-05-01T12:30`` (the form's datetime-local) or Unix seconds, in local time."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise QueryError(f"{name}: {text!r} is not a date and time (write 2024-05-01T12:30)") from None


@dataclass(frozen=True, slots=True)
class ListQuery:
    """A runs listing as the URL asks for it."""

    statuses: tuple[str, ...] = ()
    saga: str | None = None
    q: str | None = None
    time_from: str | None = None
    time_to: str | None = None
    after: RunCursor | None = None
    limit: int = DEFAULT_LIMIT

    def filter(self) -> RunFilter:
        """The store filter (the ``from``/``to`` texts read as times)."""
        return RunFilter(
            statuses=self.statuses,
            saga=self.saga,
            id_contains=self.q,
            updated_from=_parse_time("from", self.time_from) if self.time_from else None,
            updated_to=_parse_time("to", self.time_to) if self.time_to else None,
        )

    def params(self, **changes: Any) -> str:
        """The query string of this listing with ``changes`` applied (``None`` drops a parameter)."""
        q = dataclasses.replace(self, **changes)
        items: list[tuple[str, str]] = [("status", s) for s in q.statuses]
        for key, value in (("saga", q.saga), ("q", q.q), ("from", q.time_from), ("to", q.time_to)):
            if value:
                items.append((key, value))
        if q.after is not None:
            items.append(("after", q.after.encode()))
        if q.limit != DEFAULT_LIMIT:
            items.append(("limit", str(q.limit)))
        return urlencode(items)


def parse_query(items: Iterable[tuple[str, str]], default_limit: int = DEFAULT_LIMIT) -> ListQuery:
    """A :class:`ListQuery` from the URL's query parameters (unknown ones are ignored)."""
    statuses: list[str] = []
    one: dict[str, str] = {}
    for key, value in items:
        value = value.strip()
        if key == "status":
            statuses.extend(s for s in value.split(",") if s)
        elif value:
            one[key] = value
    unknown = [s for s in statuses if s not in RUN_STATES]
    if unknown:
        raise QueryError(f"status: {unknown[0]!r} is not a run status (one of {', '.join(RUN_STATES)})")
    after = None
    if "after" in one:
        try:
            after = RunCursor.decode(one["after"])
        except ValueError:
            raise QueryError("after: not a page position (follow the page links)") from None
    try:
        limit = int(one.get("limit", default_limit))
    except ValueError:
        raise QueryError(f"limit: {one['limit']!r} is not a number") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise QueryError(f"limit: must be between 1 and {MAX_LIMIT}")
    query = ListQuery(tuple(dict.fromkeys(statuses)), one.get("saga"), one.get("q"), one.get("from"), one.get("to"))
    query = dataclasses.replace(query, after=after, limit=limit)
    query.filter()  # reports a bad time now
    return query


@dataclass(frozen=True, slots=True)
class RunRow:
    """One run in a listing: what the list shows and the JSON API returns (never its input)."""

    run_id: str
    saga: str
    status: str
    created_at: float
    updated_at: float
    orphaned: bool
    cancel_requested: bool
    owner: str | None
    lease_until: float | None
    spec_hash: str

    def to_json(self) -> dict[str, Any]:
        """The row as a JSON object."""
        return dataclasses.asdict(self)


def run_row(rec: RunRecord) -> RunRow:
    """The listing row of ``rec``."""
    return RunRow(
        rec.run_id,
        rec.saga,
        rec.status,
        rec.created_at,
        rec.updated_at,
        is_orphaned(rec),
        rec.cancel_requested,
        rec.owner,
        rec.lease_until,
        rec.spec_hash,
    )


@dataclass(frozen=True, slots=True)
class RunsView:
    """A page of the runs list: its rows, the counts per status under the other filters, the sagas."""

    query: ListQuery
    rows: tuple[RunRow, ...]
    counts: dict[str, int]
    sagas: tuple[str, ...]
    next: RunCursor | None

    @property
    def total(self) -> int:
        """Runs matching every filter but the status."""
        return sum(self.counts.values())

    def to_json(self) -> dict[str, Any]:
        """The page as the JSON API returns it."""
        return {
            "runs": [r.to_json() for r in self.rows],
            "counts": self.counts,
            "next": self.next.encode() if self.next is not None else None,
        }


def _ordered_counts(counts: dict[str, int]) -> dict[str, int]:
    known = {s: counts[s] for s in RUN_STATES if s in counts}
    return known | {s: n for s, n in sorted(counts.items()) if s not in known}


async def runs_view(store: RunQueries, query: ListQuery) -> RunsView:
    """One page of the runs list."""
    where = query.filter()
    page = await store.query_runs(where, query.limit, query.after)
    counts = await store.count_runs(dataclasses.replace(where, statuses=()))
    sagas = tuple(await store.saga_names())
    return RunsView(query, tuple(run_row(r) for r in page.runs), _ordered_counts(counts), sagas, page.next)


# ---- the inbox -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class InboxSection:
    """One kind of run that needs a person, and how to find them."""

    key: str
    title: str
    explain: str
    load: Callable[[RunQueries, int], Awaitable[RunPage]]


async def _needs_redrive(store: RunQueries, limit: int) -> RunPage:
    return await store.query_runs(RunFilter(statuses=("stuck", "aborted")), limit)


async def _orphans(store: RunQueries, limit: int) -> RunPage:
    """Runs in flight whose driver is gone, among the most recently updated ones."""
    found: list[RunRecord] = []
    after: RunCursor | None = None
    scanned = 0
    while len(found) < limit and scanned < ORPHAN_SCAN:
        page = await store.query_runs(RunFilter(statuses=HOT_STATES), min(200, ORPHAN_SCAN - scanned), after)
        found.extend(r for r in page.runs if is_orphaned(r))
        scanned += len(page.runs)
        if page.next is None:
            break
        after = page.next
    return RunPage(tuple(found[:limit]))


# Further kinds (runs waiting on an event) are one entry each.
INBOX: tuple[InboxSection, ...] = (
    InboxSection(
        "stuck_aborted",
        "Stuck and aborted",
        "A step after the point of no return failed for good (stuck), or an undo did (aborted): the run stays "
        "there until a person fixes the cause.",
        _needs_redrive,
    ),
    InboxSection(
        "orphaned",
        "Orphaned",
        "The run is in flight but no live process drives it (its process died): resume it.",
        _orphans,
    ),
)


@dataclass(frozen=True, slots=True)
class InboxView:
    """Every inbox section with its runs."""

    sections: tuple[tuple[InboxSection, tuple[RunRow, ...]], ...] = field(default=())

    @property
    def total(self) -> int:
        """Runs listed in all sections."""
        return sum(len(rows) for _, rows in self.sections)

    def to_json(self) -> dict[str, Any]:
        """The inbox as the JSON API returns it."""
        return {s.key: [r.to_json() for r in rows] for s, rows in self.sections}


async def inbox(store: RunQueries, limit: int = 100) -> InboxView:
    """The runs that need a person, section by section."""
    sections = []
    for section in INBOX:
        page = await section.load(store, limit)
        sections.append((section, tuple(run_row(r) for r in page.runs)))
    return InboxView(tuple(sections))
