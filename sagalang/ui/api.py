"""The JSON API: the pages' data for scripts (``/api/runs``, ``/api/runs/{id}``, ``/api/inbox``, ``/api/sagas``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from ..plan import plans_to_json
from .listing import inbox as load_inbox
from .listing import parse_query, run_row, runs_view
from .pages import load_view, saga_entries, ui_of

__all__ = ["inbox", "run", "runs", "sagas"]


async def runs(request: Request) -> Response:
    """A page of runs with the counts per status (same filters as the list page)."""
    ui = ui_of(request)
    query = parse_query(request.query_params.multi_items(), ui.config.page_size)
    return JSONResponse((await runs_view(ui.queries, query)).to_json())


async def run(request: Request) -> Response:
    """One run: its row, folded state, steps, timeline and journal, redacted."""
    _, view = await load_view(request)
    return JSONResponse(view.to_json())


async def inbox(request: Request) -> Response:
    """The runs that need a person, by section."""
    return JSONResponse((await load_inbox(ui_of(request).queries)).to_json())


async def sagas(request: Request) -> Response:
    """Each saga the store has runs of: how many, its latest run and that version's plan."""
    out = [
        {
            "saga": e.name,
            "runs": e.runs,
            "latest": run_row(e.latest).to_json(),
            "plan": plans_to_json([e.plan])["sagas"][0] if e.plan is not None else None,
            "spec_error": e.loaded.error,
        }
        for e in await saga_entries(ui_of(request))
    ]
    return JSONResponse({"sagas": out})
