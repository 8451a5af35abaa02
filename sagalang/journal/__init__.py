"""Journal stores: ``memory:``, ``sqlite:///PATH`` and ``postgresql://...`` URLs."""

from __future__ import annotations

import os

from ..errors import StoreError
from .base import RUN_STATES, TERMINAL_STATES, LeaseHeldError, RunRecord, StaleEpochError, Store

__all__ = [
    "DEFAULT_STORE_URL",
    "RUN_STATES",
    "TERMINAL_STATES",
    "LeaseHeldError",
    "RunRecord",
    "StaleEpochError",
    "Store",
    "default_store_url",
    "open_store",
]

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
