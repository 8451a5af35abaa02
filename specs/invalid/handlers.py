"""Handlers the conformance specs (specs/invalid, specs/valid) are checked against.

Load with ``--plugin specs/invalid/handlers.py``; the ``app`` and ``ops``
namespaces are registered, every other namespace is unknown on purpose.
"""

from __future__ import annotations

from typing import Any

from sagalang.plugins import handler


@handler("app.act")
def act(**args: Any) -> dict[str, Any]:
    """A forward action that accepts any argument."""
    return {"id": "act-1", **args}


@handler("app.revert")
def revert(**args: Any) -> None:
    """An undo that accepts any argument."""


@handler("app.reserve")
def reserve(sku: str, qty: int = 1) -> dict[str, Any]:
    """Reserve stock: ``sku`` is required, ``qty`` optional."""
    return {"reservation_id": f"r-{sku}-{qty}"}


@handler("app.release")
def release(reservation: str) -> None:
    """Release a reservation."""


@handler("app.lock")
class Lock:
    """A step object: ``use app.lock(key: ...)`` provides both do and undo."""

    def execute(self, ctx: Any, key: str) -> dict[str, str]:
        """Take the lock."""
        return {"lock": key}

    def compensate(self, ctx: Any, key: str) -> None:
        """Release the lock."""

    def can_compensate(self) -> bool:
        """Locks can always be released."""
        return True


@handler("ops.diagnose")
def diagnose(ctx: Any, failure: Any = None) -> None:
    """A saga-retry analyzer."""
