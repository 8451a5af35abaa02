"""The Starlette application: its parts, its routes and its life (open the store, close it)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..errors import StoreError
from ..journal import open_store
from ..journal.base import RunQueries, Store
from ..journal.postgres import redact as redact_url
from . import api, pages, text, urls
from .actions import Drivers
from .config import UIConfig, is_loopback
from .listing import QueryError
from .security import LOOPBACK_HOSTS, Guard
from .specs import Specs

__all__ = ["UI", "create_app"]

HERE = Path(__file__).resolve().parent


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value is escaped, in text and in attributes alike
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        when=text.when,
        duration=text.duration,
        compact=text.compact,
        error_text=text.error_text,
        pretty=text.pretty,
        shown_path=text.shown_path,
    )
    env.globals.update({name: getattr(urls, name) for name in urls.__all__})
    env.globals["timezone"] = text.timezone_name
    return env


# The list reads indexes and run rows all over a large file: SQLite's default 2 MiB page cache
# halved its speed at 100,000 runs (bench/bench_ui.py).
READING_CACHE_MIB = 64


def reading_url(url: str) -> str:
    """``url`` with a page cache fit for a reader of many runs, when it is SQLite and sets none itself."""
    if not url.startswith("sqlite:") or "cache_mib=" in url:
        return url
    return url + ("&" if "?" in url else "?") + f"cache_mib={READING_CACHE_MIB}"


class UI:
    """One server's parts: its store, caches, guard, background drivers and templates."""

    def __init__(self, config: UIConfig, store: Store | None = None) -> None:
        self.config = config
        self.store = store if store is not None else open_store(reading_url(config.store_url))
        self.store_label = redact_url(config.store_url if store is None else store.url)
        self.guard = Guard(config.token)
        self.specs = Specs()
        self.templates = _environment()
        self._registry: Any = None
        self.drivers = Drivers(self.store, self.registry)

    @property
    def queries(self) -> RunQueries:
        """The store's listing queries (every store sagalang ships has them)."""
        if not isinstance(self.store, RunQueries):
            raise StoreError(f"the store {self.store_label} cannot list runs for the web view")
        return self.store

    def registry(self) -> Any:
        """The handler registry actions drive runs with (discovered on first use)."""
        if self._registry is None:
            from ..plugins import Registry

            self._registry = Registry.discover(self.config.plugins)
        return self._registry

    def page(self, request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        """Render template ``name`` (autoescaped) with the parts every page shows."""
        base = {"request": request, "ui": self, "actions_on": self.config.allow_actions}
        html = self.templates.get_template(name).render(**base, **context)
        return HTMLResponse(html, status_code=status_code)


async def _error_page(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    return pages.ui_of(request).page(request, "error.html", status_code=status, status=status, message=message)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return await _error_page(request, exc.status_code, str(exc.detail))


async def _query_error(request: Request, exc: Exception) -> Response:
    return await _error_page(request, 400, str(exc))


async def _store_error(request: Request, exc: Exception) -> Response:
    return await _error_page(request, 503, f"the store cannot be read: {exc}")


def _routes() -> list[Route | Mount]:
    return [
        Route("/", pages.runs_page),
        Route("/inbox", pages.inbox_page),
        Route("/sagas", pages.sagas_page),
        Route("/runs/{run_id:path}", pages.run_page),
        Route("/live/{run_id:path}", pages.live_part),
        Route("/journal/{run_id:path}", pages.journal_part),
        Route("/diagram/{run_id:path}", pages.run_diagram),
        Route("/saga-diagram/{run_id:path}", pages.saga_diagram),
        Route("/act/{action}/{run_id:path}", pages.confirm_action, methods=["GET"]),
        Route("/act/{action}/{run_id:path}", pages.do_action, methods=["POST"]),
        Route("/api/runs", api.runs),
        Route("/api/runs/{run_id:path}", api.run),
        Route("/api/inbox", api.inbox),
        Route("/api/sagas", api.sagas),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]


def create_app(config: UIConfig, store: Store | None = None) -> Starlette:
    """The web view of ``config.store_url`` (or of ``store``, opened and closed with the app)."""
    ui = UI(config, store)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await ui.store.open()
        try:
            yield
        finally:
            await ui.drivers.close()
            await ui.store.close()

    middleware = [Middleware(BaseHTTPMiddleware, dispatch=ui.guard.check)]
    if is_loopback(config.host) and config.token is None:
        # No token: only a loopback Host header is answered (a rebound DNS name is not).
        hosts = [*LOOPBACK_HOSTS, config.host.strip("[]")]
        middleware.insert(0, Middleware(TrustedHostMiddleware, allowed_hosts=hosts))
    app = Starlette(
        routes=_routes(),
        middleware=middleware,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, QueryError: _query_error, StoreError: _store_error},
    )
    app.state.ui = ui
    return app
