"""Journal stores: ``memory:``, ``sqlite:///PATH`` and ``postgresql://...`` URLs."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..errors import StoreError
from .base import (
    RUN_STATES,
    TERMINAL_STATES,
    LeaseHeldError,
    RunCursor,
    RunFilter,
    RunPage,
    RunQueries,
    RunRecord,
    StaleEpochError,
    Store,
)

__all__ = [
    "DEFAULT_STORE_URL",
    "RUN_STATES",
    "TERMINAL_STATES",
    "LeaseHeldError",
    "RunCursor",
    "RunFilter",
    "RunPage",
    "RunQueries",
    "RunRecord",
    "StaleEpochError",
    "Store",
    "default_store_url",
    "open_store",
    "run_with_store",
]

S = TypeVar("S", bound=Store)
T = TypeVar("T")

DEFAULT_STORE_URL = "sqlite:///.sagalang/sagalang.db"


def default_store_url() -> str:
    """``$SAGALANG_STORE`` or the embedded SQLite default under the working directory."""
    return os.environ.get("SAGALANG_STORE") or DEFAULT_STORE_URL


def open_store(url: str | None = None) -> Store:
    """A store for ``url`` (not yet opened: ``await store.open()``)."""
    url = url or default_store_url()
    if url == "memory:" or url.startswith("memory:"):
        from .memory import MemoryStore

        return MemoryStore()
    if url.startswith("sqlite:"):
        from .sqlite import SQLiteStore  # type: ignore[import-not-found,unused-ignore]

        return SQLiteStore(url)  # type: ignore[no-any-return,unused-ignore]
    if url.startswith(("postgresql:", "postgres:")):
        from .postgres import PostgresStore  # type: ignore[import-not-found,unused-ignore]

        return PostgresStore(url)  # type: ignore[no-any-return,unused-ignore]
    raise StoreError(f"unknown store URL {url!r}: use memory:, sqlite:///PATH or postgresql://...")


def run_with_store(store: S, body: Callable[[S], Awaitable[T]]) -> T:
    """Open ``store``, run ``body`` with it in a new event loop, close it (also on error); ``body``'s result.

    For synchronous callers (the CLI, scripts, tests) that need a store for one piece of work.
    """

    async def go() -> T:
        await store.open()
        try:
            return await body(store)
        finally:
            await store.close()

    return asyncio.run(go())
