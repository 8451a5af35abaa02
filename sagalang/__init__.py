"""sagalang: a declarative language for sagas and the engine that runs them."""

from __future__ import annotations

__all__: list[str] = []
