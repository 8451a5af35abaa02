"""``sagalang ui`` in a real browser: Playwright drives Debian's Chromium against a real server process.

The server is ``sagalang ui`` in a subprocess on a free port; the tests wait for
it by polling the port. Without Chromium (or Playwright) the tests are skipped,
except under CI=true, where that is a failure. With
``SAGALANG_UI_SCREENSHOTS=DIR`` the screenshots land in DIR (``make
ui-screenshots`` writes the documentation's); otherwise in a temporary folder.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from ui_kit import Kit, make_kit

from sagalang.journal import open_store, run_with_store
from sagalang.operations import lease_is_live
from sagalang.render import STATUS_FILL
from sagalang.ui.actions import OPERATOR_EVENT

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SAGALANG = [sys.executable, "-m", "sagalang"]
T = TypeVar("T")


def off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Call ``fn`` in a thread of its own: Playwright's sync API keeps an event loop running in this one."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def _unavailable(why: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"{why} (under CI=true the browser tests must run: `make test` installs chromium)")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed")
    if not Path(CHROMIUM).exists():
        _unavailable(f"no browser at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    errors: list[str] = []
    pg.on("pageerror", lambda err: errors.append(str(err)))
    pg.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    try:
        yield pg
    finally:
        context.close()
    # No script error and no refused resource (a CSP violation is a console error).
    assert errors == []


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = os.environ.get("SAGALANG_UI_SCREENSHOTS")
    folder = Path(where) if where else tmp_path_factory.mktemp("shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for_port(port: int, proc: subprocess.Popen[str], deadline: float = 60.0) -> None:
    """Poll until the server accepts connections (or its process ended, or time ran out)."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"sagalang ui exited with {proc.returncode}: {proc.communicate()[1]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"sagalang ui did not listen on port {port} within {deadline:g}s")


def _serve(kit: Kit) -> Iterator[tuple[Kit, str]]:
    port = _free_port()
    proc = subprocess.Popen(
        # A store URL relative to the kit's folder, as a user would type it (the screenshots show it).
        [
            *SAGALANG,
            "ui",
            "--store",
            "sqlite:///journal.db",
            "--port",
            str(port),
            "--allow-actions",
            "--plugin",
            str(kit.plugin),
        ],
        cwd=kit.folder,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SAGALANG_UI_TOKEN": ""},
    )
    try:
        _wait_for_port(port, proc)
        yield kit, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.communicate(timeout=60)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kit, str]]:
    """The kit's runs (not the hostile ones) and ``sagalang ui --allow-actions`` over them: (kit, base URL).

    The tests share it: the only one that changes the store adds and cancels a run of its own.
    """
    yield from _serve(off_loop(make_kit, tmp_path_factory.mktemp("served"), False))


@pytest.fixture(scope="module")
def hostile_served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Kit, str]]:
    """The same with the hostile runs too."""
    yield from _serve(off_loop(make_kit, tmp_path_factory.mktemp("hostile")))


def _rows(page: Any) -> list[str]:
    return [
        str(r) for r in page.locator("#runs tbody tr[data-run-id]").evaluate_all("rs => rs.map(r => r.dataset.runId)")
    ]


def test_the_list_opens_and_filters(served: tuple[Kit, str], page: Any, shots: Path) -> None:
    kit, base = served
    page.goto(base + "/?saga=shop")
    assert set(_rows(page)) == set(kit.runs.values())
    page.screenshot(path=str(shots / "ui-runs.png"))
    page.click('#status-tabs a[data-status="stuck"]')
    page.wait_for_url("**/?status=stuck&saga=shop")
    assert _rows(page) == [kit.runs["stuck"]]
    page.click('#status-tabs a[data-status=""]')
    page.fill('#filters input[name="q"]', "compens")
    page.click('#filters button[type="submit"]')
    page.wait_for_url("**q=compens**")
    assert _rows(page) == [kit.runs["compensated"]]
    assert page.input_value('#filters input[name="q"]') == "compens"  # the filter stays in the URL and the form


def test_a_failed_run_shows_its_undone_steps_on_its_diagram(served: tuple[Kit, str], page: Any, shots: Path) -> None:
    kit, base = served
    page.goto(base + "/?status=compensated&saga=shop")
    page.click(f'#runs tr[data-run-id="{kit.runs["compensated"]}"] a')
    page.wait_for_selector("#status")
    assert page.inner_text("#status") == "compensated"
    assert page.inner_text("#undone") == "reserve"
    assert page.get_attribute('#steps tr[data-step="reserve"]', "data-status") == "compensated"
    assert page.get_attribute('#steps tr[data-step="charge"]', "data-status") == "failed"
    page.wait_for_function("() => document.querySelector('#diagram').complete")
    assert page.evaluate("document.querySelector('#diagram').naturalWidth") > 100  # the SVG loaded
    page.screenshot(path=str(shots / "ui-run-compensated.png"), full_page=True)
    # Open the diagram itself: the undone step is drawn in the colour of a compensated step.
    page.goto(base + str(page.get_attribute("#diagram", "src")))
    fill = page.evaluate(
        """() => [...document.querySelectorAll('g.node')]
                 .find(g => g.querySelector('title').textContent === 's_reserve')
                 .querySelector('path, polygon').getAttribute('fill')"""
    )
    assert fill == STATUS_FILL["compensated"][0]


def test_the_inbox_and_the_sagas_page(served: tuple[Kit, str], page: Any, shots: Path) -> None:
    kit, base = served
    page.goto(base + "/")
    page.click("#nav-inbox")
    page.wait_for_selector("#inbox-orphaned")
    assert kit.runs["orphaned"] in page.inner_text("#inbox-orphaned")
    assert kit.runs["stuck"] in page.inner_text("#inbox-stuck_aborted")
    page.screenshot(path=str(shots / "ui-inbox.png"))
    page.click("#nav-sagas")
    page.wait_for_selector('section[data-saga="shop"] img')
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    page.screenshot(path=str(shots / "ui-sagas.png"), full_page=True)


def _journal(kit: Kit, run_id: str) -> tuple[Any, list[Any]]:
    async def read(store: Any) -> tuple[Any, list[Any]]:
        return await store.get_run(run_id), await store.events(run_id)

    return off_loop(run_with_store, open_store(kit.url), read)


def _wait_until_live(kit: Kit, run_id: str, proc: subprocess.Popen[str], deadline: float = 60.0) -> None:
    """Poll the store until the held run's blocking step started under a live lease."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()
        rec, events = _journal(kit, run_id)
        if (
            rec is not None
            and lease_is_live(rec)
            and any(e.kind == "step.started" and e.step == "wait" for e in events)
        ):
            return
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not start its blocking step within {deadline:g}s")


def test_cancelling_a_live_run_from_the_browser(served: tuple[Kit, str], page: Any, shots: Path) -> None:
    kit, base = served
    run_id = "held-live"
    driver = subprocess.Popen(
        [*SAGALANG, "run", str(kit.held_spec), "--store", kit.url, "--plugin", str(kit.plugin), "--id", run_id],
        cwd=kit.folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        _wait_until_live(kit, run_id, driver)
        page.goto(f"{base}/runs/{run_id}")  # this page is never reloaded: what it shows later came by polling
        assert page.inner_text("#status") == "running"
        assert page.get_attribute("#live", "hx-trigger") == "every 2000ms"  # it refreshes while live
        actor = page.context.new_page()
        actor.goto(f"{base}/runs/{run_id}")
        actor.click("#action-cancel")
        actor.wait_for_selector("#confirm-form")
        actor.fill("#reason", "the customer withdrew the order")
        actor.screenshot(path=str(shots / "ui-confirm-cancel.png"))
        actor.click("#confirm")
        actor.wait_for_selector("#done")
        assert "the customer withdrew the order" in actor.inner_text("#done")
        # The driving process notices the request and compensates; the first page follows by itself.
        page.wait_for_function("() => document.querySelector('#status').textContent === 'cancelled'", timeout=60_000)
        assert page.get_attribute("#live", "hx-trigger") is None  # and stops refreshing
        assert page.get_attribute('#steps tr[data-step="prepare"]', "data-status") == "compensated"
        actor.goto(f"{base}/runs/{run_id}?done=cancel")
        actor.screenshot(path=str(shots / "ui-run-cancelled.png"), full_page=True)
        _, err = driver.communicate(timeout=60)
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert driver.returncode == 1, err  # `sagalang run` of a cancelled run
    rec, events = _journal(kit, run_id)
    assert rec.status == "cancelled"
    action = next(e for e in events if e.kind == OPERATOR_EVENT)
    assert action.data["action"] == "cancel" and action.data["reason"] == "the customer withdrew the order"
    kinds = [(e.kind, e.step) for e in events]
    assert ("compensation.succeeded", "prepare") in kinds and kinds[-1] == ("saga.cancelled", None)
    assert "saga.resumed" not in [k for k, _ in kinds]  # the process that drove it compensated it


def test_pages_work_with_the_network_cut(served: tuple[Kit, str], browser: Any) -> None:
    """Every asset comes from the server: with every other host blocked, nothing is missed."""
    kit, base = served
    context = browser.new_context()
    asked: list[str] = []

    def route(r: Any) -> None:
        asked.append(r.request.url)
        if r.request.url.startswith(base):
            r.continue_()
        else:
            r.abort()

    context.route("**/*", route)
    pg = context.new_page()
    try:
        for url in ("/", f"/runs/{kit.runs['aborted']}", "/sagas", "/inbox"):
            pg.goto(base + url)
            pg.wait_for_load_state("networkidle")
        assert pg.evaluate("typeof htmx") == "object"  # the vendored htmx ran
    finally:
        context.close()
    assert asked and all(u.startswith(base) for u in asked)


def test_hostile_text_runs_nothing_in_the_browser(hostile_served: tuple[Kit, str], page: Any) -> None:
    """Hostile run ids, outputs and errors on every page: no dialog opens, no script runs (the page fixture
    fails on any script error)."""
    kit, base = hostile_served
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(base + "/")
    hostile = page.locator(f'#runs tr[data-run-id="{kit.runs["hostile"].replace(chr(34), chr(92) + chr(34))}"] a')
    assert hostile.inner_text() == kit.runs["hostile"]  # shown as text
    hostile.click()
    page.wait_for_selector("#status")
    assert page.inner_text("#run-id") == kit.runs["hostile"]
    for url in ("/inbox", "/sagas", f"/runs/{kit.runs['broken']}", f"/act/cancel/{kit.runs['orphaned']}"):
        page.goto(base + url)
        page.wait_for_load_state("networkidle")
    assert dialogs == []
