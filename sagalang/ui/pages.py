"""The HTML pages and the parts of them that refresh: each handler reads the store and renders a template."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from ..events import Event
from ..journal.base import RunFilter, RunRecord
from ..plan import SagaPlan
from .actions import ACTIONS, MAX_REASON, OPERATOR_EVENT, Action, ActionContext, ActionRefused, available, operator_id
from .listing import inbox, parse_query, runs_view
from .runview import JournalFilter, RunView, build_run_view, folded, redacted_events
from .security import CSRF_FIELD
from .specs import LoadedSpec
from .urls import run_url

if TYPE_CHECKING:
    from .app import UI

__all__ = [
    "SagaEntry",
    "confirm_action",
    "do_action",
    "inbox_page",
    "journal_part",
    "live_part",
    "load_view",
    "run_diagram",
    "run_page",
    "runs_page",
    "saga_diagram",
    "saga_entries",
    "sagas_page",
    "ui_of",
]

MAX_FORM = 16 * 1024
log = logging.getLogger("sagalang.ui")


def ui_of(request: Request) -> UI:
    """The server's parts, from the request's application."""
    ui: UI = request.app.state.ui
    return ui


async def _record(request: Request) -> RunRecord:
    run_id = request.path_params["run_id"]
    rec = await ui_of(request).store.get_run(run_id)
    if rec is None:
        raise HTTPException(404, f"no run {run_id!r} in this store")
    return rec


def _journal_filter(request: Request) -> JournalFilter:
    kinds = tuple(k for k in request.query_params.getlist("kind") if k)
    return JournalFilter(kinds, request.query_params.get("failed") in ("1", "on", "true"))


async def load_view(request: Request) -> tuple[RunRecord, RunView]:
    """The run the path names, folded and redacted for its page."""
    ui = ui_of(request)
    rec = await _record(request)
    events = await ui.store.events(rec.run_id)
    loaded = await ui.specs.load(rec)
    return rec, build_run_view(rec, events, loaded, _journal_filter(request))


# ---- lists ----------------------------------------------------------------------------------


async def runs_page(request: Request) -> Response:
    """The runs list: counts per status, filters, one page of runs."""
    ui = ui_of(request)
    query = parse_query(request.query_params.multi_items(), ui.config.page_size)
    view = await runs_view(ui.queries, query)
    return ui.page(request, "runs.html", view=view, query=query)


async def inbox_page(request: Request) -> Response:
    """The runs that need a person."""
    ui = ui_of(request)
    return ui.page(request, "inbox.html", inbox=await inbox(ui.queries))


@dataclass(frozen=True, slots=True)
class SagaEntry:
    """A saga the store has runs of: how many, its latest run, and that run's spec and plan."""

    name: str
    runs: int
    latest: RunRecord
    loaded: LoadedSpec
    plan: SagaPlan | None


async def saga_entries(ui: UI) -> list[SagaEntry]:
    """Every saga the store has runs of, by name."""
    counts = await ui.queries.saga_counts()
    out = []
    for name in sorted(counts):
        page = await ui.queries.query_runs(RunFilter(saga=name), 1)
        if page.runs:
            latest = page.runs[0]
            out.append(SagaEntry(name, counts[name], latest, await ui.specs.load(latest), await ui.specs.plan(latest)))
    return out


async def sagas_page(request: Request) -> Response:
    """Every saga the store has runs of, with the diagram and the plan of its latest version."""
    ui = ui_of(request)
    return ui.page(request, "sagas.html", sagas=await saga_entries(ui))


# ---- one run --------------------------------------------------------------------------------


def _last_action(events: Sequence[Event]) -> Event | None:
    return next((ev for ev in reversed(events) if ev.kind == OPERATOR_EVENT), None)


async def run_page(request: Request) -> Response:
    """A run: diagram, steps, timeline, input and output, journal; actions when they are on."""
    ui = ui_of(request)
    rec, view = await load_view(request)
    actions = available(rec, ui.drivers) if ui.config.allow_actions else []
    done = _last_action(view.events) if request.query_params.get("done") else None
    return ui.page(request, "run.html", rec=rec, view=view, actions=actions, done=done)


async def live_part(request: Request) -> Response:
    """The part of a run's page that refreshes while the run is live."""
    ui = ui_of(request)
    rec, view = await load_view(request)
    actions = available(rec, ui.drivers) if ui.config.allow_actions else []
    return ui.page(request, "_live.html", rec=rec, view=view, actions=actions)


async def journal_part(request: Request) -> Response:
    """A run's journal table, filtered by the query string."""
    ui = ui_of(request)
    _, view = await load_view(request)
    return ui.page(request, "_journal.html", view=view)


async def run_diagram(request: Request) -> Response:
    """The run's diagram: the saga drawn with the run's state over it (SVG)."""
    ui = ui_of(request)
    rec = await _record(request)
    loaded = await ui.specs.load(rec)
    events = redacted_events(rec, await ui.store.events(rec.run_id), loaded)
    state = folded(rec, events, loaded.step_order)
    return Response(await ui.specs.run_diagram(rec, state), media_type="image/svg+xml")


async def saga_diagram(request: Request) -> Response:
    """The diagram of the saga a run ran (SVG)."""
    ui = ui_of(request)
    return Response(await ui.specs.saga_diagram(await _record(request)), media_type="image/svg+xml")


# ---- actions --------------------------------------------------------------------------------


def _action(request: Request) -> Action:
    if not ui_of(request).config.allow_actions:
        raise HTTPException(403, "actions are off: start the server with `sagalang ui --allow-actions`")
    action = ACTIONS.get(request.path_params["action"])
    if action is None:
        raise HTTPException(404, f"no action {request.path_params['action']!r} (known: {', '.join(ACTIONS)})")
    return action


def _confirm(
    request: Request,
    rec: RunRecord,
    status: int = 200,
    error: str | None = None,
    form: dict[str, str] | None = None,
) -> Response:
    ui = ui_of(request)
    action = _action(request)
    cookie = ui.guard.csrf_cookie(request)
    refusal = action.refusal(rec, ui.drivers)
    response = ui.page(
        request,
        "confirm.html",
        status_code=409 if refusal and status == 200 else status,
        rec=rec,
        action=action,
        refusal=refusal,
        error=error,
        form=form or {},
        csrf_field=CSRF_FIELD,
        csrf=ui.guard.csrf_token(cookie),
        max_reason=MAX_REASON,
    )
    ui.guard.set_csrf_cookie(response, cookie)
    return response


async def confirm_action(request: Request) -> Response:
    """The confirmation page of an action: what it will do, a reason to give, a button."""
    _action(request)
    return _confirm(request, await _record(request))


async def _form(request: Request) -> dict[str, str]:
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        raise HTTPException(415, "send the action's form (application/x-www-form-urlencoded)")
    body = await request.body()
    if len(body) > MAX_FORM:
        raise HTTPException(413, "the form is too large")
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20)
    return {k: v[-1] for k, v in fields.items()}


async def do_action(request: Request) -> Response:
    """Perform an action confirmed on its page (CSRF-checked, journaled with operator and reason)."""
    ui = ui_of(request)
    action = _action(request)
    form = await _form(request)
    problem = ui.guard.csrf_problem(request, form.get(CSRF_FIELD))
    if problem is not None:
        raise HTTPException(403, problem)
    rec = await _record(request)
    reason = " ".join(form.get("reason", "").split())
    form["reason"] = reason[:MAX_REASON]
    if not reason or len(reason) > MAX_REASON:
        why = "give a reason" if not reason else f"the reason is longer than {MAX_REASON} characters"
        return _confirm(request, rec, 400, why, form)
    values, wrong = action.read(rec, form)
    if wrong is not None:
        return _confirm(request, rec, 400, wrong, form)
    if action.refusal(rec, ui.drivers) is not None:
        return _confirm(request, rec, 409)
    client = request.client.host if request.client else None
    context = ActionContext(ui.store, rec, operator_id(), reason, client, ui.drivers, values)
    try:
        outcome = await action.perform(context)
    except ActionRefused as err:
        return _confirm(request, rec, 409, str(err))
    log.info("run %s: %s by %s: %s", rec.run_id, action.name, context.operator, outcome.message)
    return RedirectResponse(f"{run_url(outcome.run_id or rec.run_id)}?done={action.name}", status_code=303)
