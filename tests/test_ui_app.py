"""Every route of ``sagalang ui`` through Starlette's TestClient, over a store of real runs."""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient
from ui_kit import HOSTILE, SECRET, Kit, make_kit

from sagalang.events import Event
from sagalang.journal import open_store, run_with_store
from sagalang.journal.memory import MemoryStore
from sagalang.ui import UIConfig, create_app
from sagalang.ui.actions import OPERATOR_EVENT
from sagalang.ui.urls import act_url, api_run_url, diagram_url, journal_url, live_url, run_url, saga_diagram_url

BASE = "http://127.0.0.1:8765"
TOKEN = "a-token-long-enough-1234"


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> Kit:
    """A store nobody changes: the read-only tests share it."""
    return make_kit(tmp_path_factory.mktemp("ui"))


@pytest.fixture
def fresh_kit(tmp_path: Path) -> Kit:
    """A store of its own, for the tests that act on runs."""
    return make_kit(tmp_path)


def client_for(url: str, **options: Any) -> TestClient:
    options.setdefault("plugins", ())
    return TestClient(create_app(UIConfig(url, **options)), base_url=BASE)


@pytest.fixture(scope="module")
def client(kit: Kit) -> Iterator[TestClient]:
    with client_for(kit.url) as c:
        yield c


@pytest.fixture(scope="module")
def actions_client(kit: Kit) -> Iterator[TestClient]:
    """Actions on, over the shared store: only the confirmation pages are opened, nothing is posted."""
    with client_for(kit.url, allow_actions=True) as c:
        yield c


def stored(kit: Kit, run_id: str) -> tuple[Any, list[Event]]:
    """The run's record and journal, read straight from the store."""

    async def read(store: Any) -> tuple[Any, list[Event]]:
        return await store.get_run(run_id), await store.events(run_id)

    return run_with_store(open_store(kit.url), read)


def run_ids(html: str) -> list[str]:
    """The run ids of a runs table, in order (as the page escaped them)."""
    import html as h

    return [h.unescape(m) for m in re.findall(r'<tr data-run-id="([^"]*)"', html)]


# ---- the runs list --------------------------------------------------------------------------


def test_list_shows_every_run_with_counts_per_status(client: TestClient, kit: Kit) -> None:
    res = client.get("/")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
    assert set(run_ids(res.text)) == set(kit.runs.values())
    for status, n in {"completed": 1, "compensated": 2, "stuck": 1, "aborted": 1, "running": 2}.items():
        assert re.search(rf'data-status="{status}">{status}<span class="n">{n}</span>', res.text), status
    assert "orphaned" in res.text  # the running runs have no live driver
    assert 'id="needs-human"' in res.text


def test_list_is_sorted_by_last_update_and_pages_follow(client: TestClient, kit: Kit) -> None:
    everything = client.get("/api/runs").json()["runs"]
    order = sorted(everything, key=lambda r: (r["updated_at"], r["run_id"]), reverse=True)
    assert [r["run_id"] for r in everything] == [r["run_id"] for r in order]
    seen: list[str] = []
    url = "/?limit=3"
    while url:
        res = client.get(url)
        assert res.status_code == 200
        seen += run_ids(res.text)
        more = re.search(r'href="([^"]*)" id="older"', res.text)
        url = more.group(1).replace("&amp;", "&") if more else ""
    assert seen == [r["run_id"] for r in order]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("status=stuck", {"stuck"}),
        ("status=stuck&status=aborted", {"stuck", "aborted"}),
        ("status=running", {"orphaned", "broken"}),
        ("q=compens", {"compensated"}),
        ("saga=shop&status=compensated", {"compensated", "hostile"}),
        ("from=2000-01-01T00:00", set()),  # every kit run (all of them) is after this
        ("to=2000-01-01", None),
    ],
)
def test_list_filters_come_from_the_url(client: TestClient, kit: Kit, query: str, expected: set[str] | None) -> None:
    res = client.get(f"/?{query}")
    assert res.status_code == 200
    ids = set(run_ids(res.text))
    if expected is None:
        assert ids == set()
    elif expected:
        assert ids == {kit.runs[name] for name in expected}
    else:
        assert ids == set(kit.runs.values())
    # The filter form shows what the URL asked for.
    if query.startswith("q="):
        assert 'name="q" value="compens"' in res.text


@pytest.mark.parametrize(
    ("query", "word"),
    [("status=finished", "status"), ("from=yesterday", "from"), ("after=zzz", "after"), ("limit=0", "limit")],
)
def test_a_bad_filter_is_a_400_naming_it(client: TestClient, query: str, word: str) -> None:
    res = client.get(f"/?{query}")
    assert res.status_code == 400 and f"{word}:" in res.text
    api = client.get(f"/api/runs?{query}")
    assert api.status_code == 400 and api.json()["error"].startswith(f"{word}:")


def test_inbox_lists_stuck_aborted_and_orphaned_runs(client: TestClient, kit: Kit) -> None:
    res = client.get("/inbox")
    assert res.status_code == 200
    stuck = res.text.split('id="inbox-stuck_aborted"')[1].split("</section>")[0]
    orphaned = res.text.split('id="inbox-orphaned"')[1].split("</section>")[0]
    assert set(run_ids(stuck)) == {kit.runs["stuck"], kit.runs["aborted"]}
    assert set(run_ids(orphaned)) == {kit.runs["orphaned"], kit.runs["broken"]}
    api = client.get("/api/inbox").json()
    assert {r["run_id"] for r in api["orphaned"]} == {kit.runs["orphaned"], kit.runs["broken"]}
    assert all(r["orphaned"] for r in api["orphaned"])


# ---- a run ----------------------------------------------------------------------------------


def test_run_page_shows_state_steps_timeline_journal(client: TestClient, kit: Kit) -> None:
    rid = kit.runs["compensated"]
    res = client.get(run_url(rid))
    assert res.status_code == 200
    page = res.text
    assert 'id="status">compensated<' in page
    assert re.search(r'data-step="charge" data-status="failed"', page)
    assert re.search(r'data-step="reserve" data-status="compensated"', page)
    assert re.search(r'data-step="ship" data-status="pending"', page)
    assert "kit.Broken: charge broke: card declined" in page
    assert 'id="undone">reserve<' in page
    assert f'src="{diagram_url(rid, 0)[:-1]}' in page  # the diagram, versioned by the journal's length
    assert '<svg class="timeline"' in page and 'class="undo compensated" data-step="reserve"' in page
    assert page.count('data-kind="') == len(stored(kit, rid)[1])
    assert "hx-trigger" not in page  # a finished run does not refresh


def test_live_runs_refresh_and_finished_ones_stop(client: TestClient, kit: Kit) -> None:
    live = client.get(live_url(kit.runs["orphaned"]))
    assert live.status_code == 200 and live.text.lstrip().startswith('<section id="live"')
    assert f'hx-get="{live_url(kit.runs["orphaned"])}" hx-trigger="every 2000ms" hx-swap="outerHTML"' in live.text
    done = client.get(live_url(kit.runs["completed"]))
    assert "hx-trigger" not in done.text and "<html" not in done.text


def test_journal_filters_by_kind_and_failures(client: TestClient, kit: Kit) -> None:
    rid = kit.runs["aborted"]
    _, events = stored(kit, rid)
    page = client.get(run_url(rid), params={"kind": "compensation.started"}).text
    assert page.count('data-kind="compensation.started"') == sum(e.kind == "compensation.started" for e in events)
    assert 'data-kind="step.started"' not in page
    part = client.get(journal_url(rid), params={"failed": "1"}).text
    kinds = re.findall(r'data-kind="([^"]+)"', part)
    assert kinds and set(kinds) <= {"step.failed", "compensation.failed", "saga.aborted"}
    assert "compensation.failed" in kinds and "<html" not in part


def test_diagrams_are_svg_with_the_run_state(client: TestClient, kit: Kit) -> None:
    rid = kit.runs["compensated"]
    res = client.get(diagram_url(rid, 7))
    assert res.status_code == 200 and res.headers["content-type"] == "image/svg+xml"
    assert res.text.lstrip().startswith(("<?xml", "<svg", "<!--"))
    assert "compensated" in res.text and "reserve" in res.text
    assert "script-src" not in res.headers["content-security-policy"]  # default-src 'none' covers scripts
    plain = client.get(saga_diagram_url(rid))
    assert plain.status_code == 200 and "shop" in plain.text and "(failed at" not in plain.text


def test_a_run_whose_spec_cannot_be_rebuilt_still_shows(client: TestClient, kit: Kit) -> None:
    rid = kit.runs["broken"]
    page = client.get(run_url(rid))
    assert page.status_code == 200 and 'id="spec-error"' in page.text
    svg = client.get(diagram_url(rid))
    assert svg.status_code == 200 and "cannot be rebuilt" in svg.text


def test_unknown_run_is_a_404(client: TestClient) -> None:
    for url in (run_url("nope"), live_url("nope"), diagram_url("nope"), api_run_url("nope")):
        res = client.get(url)
        assert res.status_code == 404, url
    assert client.get(api_run_url("nope")).json() == {"error": "no run 'nope' in this store"}


def test_run_api_mirrors_the_page(client: TestClient, kit: Kit) -> None:
    rid = kit.runs["aborted"]
    body = client.get(api_run_url(rid)).json()
    assert body["run"]["run_id"] == rid and body["run"]["status"] == "aborted"
    assert body["state"]["status"] == "aborted" and body["state"]["input"]["card"] == "***"
    steps = {s["name"]: s for s in body["steps"]}
    assert steps["reserve"]["status"] == "compensation_failed" and steps["charge"]["status"] == "failed"
    assert [e["event"] for e in body["events"]] == [e.kind for e in stored(kit, rid)[1]]
    assert {(b["step"], b["phase"]) for b in body["timeline"]} >= {("reserve", "do"), ("reserve", "undo")}


def test_sagas_page_has_each_saga_with_diagram_and_plan(client: TestClient, kit: Kit) -> None:
    page = client.get("/sagas").text
    assert 'data-saga="shop"' in page and 'data-saga="held"' not in page
    assert 'Point of no return: <span class="mono">ship</span>' in page
    assert "undo charge (if its outcome is uncertain) → reserve" in page
    api = client.get("/api/sagas").json()["sagas"]
    shop = next(s for s in api if s["saga"] == "shop")
    assert shop["runs"] == 6 and shop["plan"]["pivot"] == "ship" and shop["spec_error"] is None
    assert next(s for s in api if s["saga"] != "shop")["spec_error"]


def test_runs_api_has_rows_counts_and_the_next_page(client: TestClient, kit: Kit) -> None:
    body = client.get("/api/runs", params={"limit": 2}).json()
    assert len(body["runs"]) == 2 and body["next"]
    assert set(body["runs"][0]) >= {"run_id", "saga", "status", "created_at", "updated_at", "orphaned"}
    assert "input" not in body["runs"][0]
    assert sum(body["counts"].values()) == len(kit.runs)
    rest = client.get("/api/runs", params={"limit": 50, "after": body["next"]}).json()
    assert len(rest["runs"]) == len(kit.runs) - 2 and rest["next"] is None


# ---- assets and headers ---------------------------------------------------------------------


def test_assets_come_from_the_package(client: TestClient) -> None:
    page = client.get("/").text
    for tag in re.findall(r"<(?:script|link)[^>]*>", page):
        for url in re.findall(r'(?:src|href)="([^"]+)"', tag):
            assert url.startswith("/static/"), tag
            assert client.get(url).status_code == 200
    htmx = client.get("/static/htmx.min.js").text
    vendored = (Path(__file__).parent.parent / "sagalang" / "ui" / "static" / "VENDORED.txt").read_text()
    version = re.search(r"htmx\.org (\S+) from npm", vendored)
    assert version and f'version:"{version.group(1)}"' in htmx and "licence 0BSD" in vendored


def test_every_response_carries_the_security_headers(client: TestClient, kit: Kit) -> None:
    for url in ("/", run_url(kit.runs["completed"]), "/api/runs", "/nope"):
        res = client.get(url)
        csp = res.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp
        assert res.headers["x-content-type-options"] == "nosniff"
        assert res.headers["x-frame-options"] == "DENY" and res.headers["referrer-policy"] == "same-origin"


def test_a_foreign_host_name_is_refused(kit: Kit) -> None:
    with TestClient(create_app(UIConfig(kit.url)), base_url="http://rebound.example") as c:
        assert c.get("/").status_code == 400
    with TestClient(create_app(UIConfig(kit.url)), base_url="http://localhost:8765") as c:
        assert c.get("/").status_code == 200


# ---- the token ------------------------------------------------------------------------------


def test_the_token_guards_everything_but_static_files(kit: Kit) -> None:
    with client_for(kit.url, host="0.0.0.0", token=TOKEN) as c:
        assert c.get("/").status_code == 401
        assert c.get("/api/runs").status_code == 401
        assert c.get("/static/ui.css").status_code == 200
        assert c.get("/?token=wrong-token-000000000").status_code == 401
        assert c.get("/", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
        login = c.get(f"/?status=stuck&token={TOKEN}", follow_redirects=False)
        assert login.status_code == 303 and login.headers["location"] == "/?status=stuck"
        assert TOKEN not in login.headers["set-cookie"] and "httponly" in login.headers["set-cookie"].lower()
        page = c.get("/?status=stuck")  # the cookie lets the browser in from now on
        assert page.status_code == 200 and TOKEN not in page.text


def test_a_token_is_required_off_loopback() -> None:
    assert UIConfig("memory:", host="0.0.0.0").problem() is not None
    assert UIConfig("memory:", host="192.0.2.7", token=TOKEN).problem() is None
    assert UIConfig("memory:", host="::1").problem() is None
    assert "16 characters" in (UIConfig("memory:", token="short").problem() or "")


# ---- hostile data and secrets ---------------------------------------------------------------

# Any of these in a page means hostile text got out of its text node or its attribute.
RAW = ("<script>alert", "<img src=x", "<svg onload", '"><svg', "'><img")


def _pages(kit: Kit) -> list[str]:
    urls = ["/", "/inbox", "/sagas", f"/?q={quote(HOSTILE)}", f"/?saga={quote(HOSTILE)}", f"/?status={quote(HOSTILE)}"]
    urls.append(run_url(HOSTILE))  # a 404 that quotes the id
    for rid in kit.runs.values():
        urls += [run_url(rid), live_url(rid), journal_url(rid), f"{journal_url(rid)}?failed=1", act_url("cancel", rid)]
        urls.append(f"{run_url(rid)}?kind={quote(HOSTILE)}")
    return urls


def test_hostile_ids_outputs_and_errors_are_escaped_everywhere(actions_client: TestClient, kit: Kit) -> None:
    seen_escaped = False
    for url in _pages(kit):
        res = actions_client.get(url)
        assert res.status_code in (200, 400, 404, 409), url
        for raw in RAW:
            assert raw not in res.text, (url, raw)
        seen_escaped = seen_escaped or "&lt;script&gt;alert(1)" in res.text
    assert seen_escaped  # the hostile text was on the pages, escaped
    svgs = [actions_client.get(diagram_url(kit.runs[name])).text for name in ("hostile", "broken")]
    svgs.append(actions_client.get(saga_diagram_url(kit.runs["hostile"])).text)
    assert "&lt;script&gt;alert(&quot;id&quot;)" in svgs[0]  # the run's title names the hostile id, escaped
    for svg in svgs:
        assert "<script" not in svg and "<img" not in svg
    api = actions_client.get(api_run_url(kit.runs["hostile"]))
    assert api.headers["content-type"] == "application/json"
    assert HOSTILE in api.json()["steps"][2]["error"]  # JSON carries the text as it is, for scripts


def test_no_secret_appears_anywhere(actions_client: TestClient, kit: Kit) -> None:
    urls = [*_pages(kit), "/api/runs", "/api/inbox", "/api/sagas"]
    for rid in kit.runs.values():
        urls += [api_run_url(rid), diagram_url(rid), saga_diagram_url(rid)]
    for url in urls:
        body = actions_client.get(url).text
        assert SECRET not in body, url


# ---- actions --------------------------------------------------------------------------------


def test_actions_are_off_by_default(client: TestClient, kit: Kit) -> None:
    rid = kit.runs["orphaned"]
    assert 'id="actions"' not in client.get(run_url(rid)).text
    assert client.get(act_url("cancel", rid)).status_code == 403
    assert client.post(act_url("cancel", rid), data={"reason": "x"}).status_code == 403


def test_a_confirmation_page_offers_the_action_with_a_csrf_token(actions_client: TestClient, kit: Kit) -> None:
    rid = kit.runs["orphaned"]
    page = actions_client.get(run_url(rid)).text
    assert f'id="action-cancel" href="{act_url("cancel", rid)}"' in page
    assert f'id="action-resume" href="{act_url("resume", rid)}"' in page
    confirm = actions_client.get(act_url("cancel", rid))
    assert confirm.status_code == 200 and 'name="csrf_token" value="' in confirm.text
    assert (
        "sagalang_ui_csrf" in confirm.headers["set-cookie"]
        and "samesite=strict" in confirm.headers["set-cookie"].lower()
    )
    done = actions_client.get(act_url("cancel", kit.runs["completed"]))
    assert done.status_code == 409 and "the run has finished (completed)" in done.text
    assert 'id="confirm-form"' not in done.text
    assert actions_client.get(act_url("explode", rid)).status_code == 404
    assert 'id="action-' not in actions_client.get(run_url(kit.runs["completed"])).text


def _csrf(c: TestClient, url: str) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', c.get(url).text)
    assert found
    return found.group(1)


def test_a_post_without_a_valid_csrf_token_is_refused(fresh_kit: Kit) -> None:
    rid = fresh_kit.runs["orphaned"]
    url = act_url("cancel", rid)
    with client_for(fresh_kit.url, allow_actions=True) as c:
        assert c.post(url, data={"reason": "no token"}).status_code == 403
        token = _csrf(c, url)
        assert c.post(url, data={"reason": "x", "csrf_token": "0" * 64}).status_code == 403
        foreign = c.post(url, data={"reason": "x", "csrf_token": token}, headers={"Origin": "http://evil.example"})
        assert foreign.status_code == 403 and "another site" in foreign.text
        assert c.post(url, content=b'{"reason": "x"}', headers={"content-type": "application/json"}).status_code == 415
        missing = c.post(url, data={"reason": "   ", "csrf_token": token})
        assert missing.status_code == 400 and "give a reason" in missing.text
    with client_for(fresh_kit.url, allow_actions=True) as other:  # another server process: another key
        other.cookies.update(c.cookies)
        assert other.post(url, data={"reason": "x", "csrf_token": token}).status_code == 403
    record, events = stored(fresh_kit, rid)
    assert record.status == "running" and not record.cancel_requested
    assert OPERATOR_EVENT not in [e.kind for e in events]


def test_cancel_of_an_orphaned_run_is_journaled_and_compensates_it(fresh_kit: Kit) -> None:
    rid = fresh_kit.runs["orphaned"]
    url = act_url("cancel", rid)
    with client_for(fresh_kit.url, allow_actions=True, plugins=(str(fresh_kit.plugin),)) as c:
        res = c.post(
            url, data={"reason": f"customer called {HOSTILE}", "csrf_token": _csrf(c, url)}, follow_redirects=False
        )
        assert res.status_code == 303 and res.headers["location"] == f"{run_url(rid)}?done=cancel"
        assert not c.portal.call(c.app.state.ui.drivers.wait, 60.0)  # the server drove it to its end
        page = c.get(res.headers["location"]).text
        assert 'id="done">cancel recorded in the journal by ' in page and "customer called &lt;script&gt;" in page
    record, events = stored(fresh_kit, rid)
    assert record.status == "cancelled"
    action = next(e for e in events if e.kind == OPERATOR_EVENT)
    assert action.data["action"] == "cancel" and action.data["reason"] == f"customer called {HOSTILE}"
    assert re.fullmatch(r"[^@\s]+@\S+", action.data["operator"]) and action.data["via"] == "ui"
    kinds = [e.kind for e in events]
    assert kinds.index(OPERATOR_EVENT) < kinds.index("saga.resumed") < kinds.index("saga.cancelled")
    assert ("compensation.succeeded", "reserve") in [(e.kind, e.step) for e in events]


def test_resume_of_an_orphaned_run_carries_it_to_its_end(fresh_kit: Kit) -> None:
    rid = fresh_kit.runs["orphaned"]
    url = act_url("resume", rid)
    with client_for(fresh_kit.url, allow_actions=True, plugins=(str(fresh_kit.plugin),)) as c:
        token = _csrf(c, url)
        res = c.post(url, data={"reason": "the worker crashed", "csrf_token": token}, follow_redirects=False)
        assert res.status_code == 303
        assert not c.portal.call(c.app.state.ui.drivers.wait, 60.0)
        again = c.post(url, data={"reason": "twice", "csrf_token": token})
        assert again.status_code == 409 and "the run has finished (completed)" in again.text
    record, events = stored(fresh_kit, rid)
    assert record.status == "completed"
    resumed = [e.data for e in events if e.kind == OPERATOR_EVENT]
    assert [d["action"] for d in resumed] == ["resume"] and resumed[0]["reason"] == "the worker crashed"


def test_cancel_of_a_run_this_process_drives_interrupts_it(fresh_kit: Kit) -> None:
    """A run live in the server's own process (memory store): cancelled at once, not driven twice."""
    from sagalang.interpreter import run as run_saga
    from sagalang.spec import load

    store = MemoryStore()
    registry = fresh_kit.registry()
    spec = load(fresh_kit.held_spec, registry=registry)
    waiting = threading.Event()

    def listen(ev: Event) -> None:
        if ev.kind == "step.started" and ev.step == "wait":
            waiting.set()

    app = create_app(UIConfig("memory:", allow_actions=True), store=store)
    with TestClient(app, base_url=BASE) as c:
        future = c.portal.start_task_soon(
            lambda: run_saga(spec, {}, store=store, registry=registry, run_id="held-1", listeners=[listen])
        )
        assert waiting.wait(30)
        url = act_url("cancel", "held-1")
        res = c.post(url, data={"reason": "stop it", "csrf_token": _csrf(c, url)}, follow_redirects=False)
        assert res.status_code == 303
        result = future.result(30)
        assert result.status == "cancelled" and not app.state.ui.drivers.driving("held-1")
        events = c.portal.call(store.events, "held-1")
    assert [e.kind for e in events].count("saga.resumed") == 0
    assert next(e for e in events if e.kind == OPERATOR_EVENT).data["reason"] == "stop it"


def test_timeline_bars_follow_attempts_and_undos() -> None:
    from sagalang.ui.timeline import timeline

    def ev(kind: str, t: float, step: str | None = None, attempt: int | None = None, **data: Any) -> Event:
        return Event(kind, "r", 0, t, step, None, attempt, data)

    tl = timeline(
        [
            ev("saga.started", 10.0),
            ev("step.started", 10.0, "a", 1),
            ev("step.failed", 11.0, "a", 1, final=False),
            ev("step.retrying", 11.0, "a", 1),
            ev("step.started", 12.0, "a", 2),
            ev("step.succeeded", 13.0, "a", 2),
            ev("step.started", 13.0, "b", 1),
            ev("step.failed", 14.0, "b", 1, final=True),
            ev("compensation.started", 14.5, "a", 1),
            ev("compensation.succeeded", 15.0, "a", 1),
            ev("step.started", 15.0, "c", 1),
        ]
    )
    bars = [(b.step, b.phase, b.attempt, b.start, b.end, b.outcome) for b in tl.bars]
    assert bars == [
        ("a", "do", 1, 10.0, 11.0, "failed"),
        ("a", "do", 2, 12.0, 13.0, "succeeded"),
        ("b", "do", 1, 13.0, 14.0, "failed"),
        ("a", "undo", 1, 14.5, 15.0, "compensated"),
        ("c", "do", 1, 15.0, 15.0, "running"),
    ]
    assert tl.rows == ("a", "b", "c") and tl.span == 5.0 and tl.x(12.5, 100) == 50.0


def test_store_queries_run_off_a_memory_store_too() -> None:
    store = MemoryStore()
    with TestClient(create_app(UIConfig("memory:"), store=store), base_url=BASE) as c:
        assert c.get("/").status_code == 200 and "No runs." in c.get("/").text
        assert c.get("/sagas").status_code == 200 and c.get("/inbox").status_code == 200
        assert asyncio.iscoroutinefunction(store.query_runs)


@pytest.mark.postgres
def test_the_view_and_its_actions_over_postgresql(pg_url: str, tmp_path: Path) -> None:
    kit = make_kit(tmp_path, hostile=False, url=pg_url)
    with client_for(pg_url, allow_actions=True, plugins=(str(kit.plugin),)) as c:
        listing = c.get("/")
        assert listing.status_code == 200 and set(run_ids(listing.text)) == set(kit.runs.values())
        assert set(run_ids(c.get("/?status=stuck&status=aborted").text)) == {kit.runs["stuck"], kit.runs["aborted"]}
        page = c.get(run_url(kit.runs["compensated"])).text
        assert 'id="undone">reserve<' in page and c.get(diagram_url(kit.runs["compensated"])).status_code == 200
        assert {r["run_id"] for r in c.get("/api/inbox").json()["orphaned"]} == {kit.runs["orphaned"]}
        assert c.get("/sagas").status_code == 200
        url = act_url("cancel", kit.runs["orphaned"])
        res = c.post(url, data={"reason": "over PostgreSQL", "csrf_token": _csrf(c, url)}, follow_redirects=False)
        assert res.status_code == 303
        assert not c.portal.call(c.app.state.ui.drivers.wait, 60.0)
    record, events = stored(kit, kit.runs["orphaned"])
    assert record.status == "cancelled" and events[-1].kind == "saga.cancelled"


@pytest.fixture
def annotate() -> Iterator[str]:
    """An action registered for the test alone: it asks for two fields and sends the operator to another run."""
    from sagalang.ui.actions import ACTIONS, Action, ActionContext, Field, Outcome, register

    async def perform(ctx: ActionContext) -> Outcome:
        await ctx.journal("annotate", run_id="shop-completed")
        return Outcome("annotated", run_id="shop-completed")

    register(
        Action(
            "annotate",
            "Annotate",
            "Write a note about a step into another run's journal.",
            lambda rec, drivers: None if rec.status == "stuck" else "only stuck runs",
            perform,
            fields=(
                Field("step", "Step", choices=lambda rec: ["reserve", "charge"]),
                Field("note", "Note", required=False, multiline=True),
            ),
        )
    )
    try:
        yield "annotate"
    finally:
        del ACTIONS["annotate"]


def test_an_action_with_fields_asks_for_them_and_checks_them(fresh_kit: Kit, annotate: str) -> None:
    url = act_url(annotate, fresh_kit.runs["stuck"])
    with client_for(fresh_kit.url, allow_actions=True) as c:
        page = c.get(url).text
        assert '<select name="step" id="field-step" required>' in page and '<option value="charge">' in page
        assert '<textarea name="note" id="field-note" rows="4">' in page
        assert 'id="action-annotate"' in c.get(run_url(fresh_kit.runs["stuck"])).text
        assert 'id="action-annotate"' not in c.get(run_url(fresh_kit.runs["aborted"])).text
        token = _csrf(c, url)
        wrong = c.post(url, data={"reason": "r", "step": "ship", "csrf_token": token})
        assert wrong.status_code == 400 and "step: &#39;ship&#39; is not one of the choices" in wrong.text
        assert 'value="r"' not in wrong.text and ">r</textarea>" in wrong.text  # the reason is kept
        done = c.post(
            url, data={"reason": "r", "step": "charge", "note": HOSTILE, "csrf_token": token}, follow_redirects=False
        )
        assert done.status_code == 303 and done.headers["location"] == f"{run_url('shop-completed')}?done=annotate"
    _, events = stored(fresh_kit, "shop-completed")
    note = next(e for e in events if e.kind == OPERATOR_EVENT)
    assert note.data["values"] == {"step": "charge", "note": HOSTILE} and note.data["action"] == "annotate"
