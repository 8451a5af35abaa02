"""Specs rebuilt from the runs that recorded them, with their plans and diagrams, cached.

A run record keeps the spec source it started with; rebuilding a spec parses
and validates it, and drawing one runs Graphviz's ``dot``. Both run in a
worker thread (the event loop keeps serving) and are kept: specs by hash,
diagrams by what they show (a run's diagram changes only with its journal).
"""

from __future__ import annotations

import asyncio
import html
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

from ..errors import SagaError
from ..journal.base import RunRecord
from ..plan import SagaPlan, plan_saga
from ..render import render
from ..spec import Spec
from ..state import RunState

__all__ = ["LoadedSpec", "Specs", "error_svg"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class _LRU(Generic[K, V]):
    """A small least-recently-used cache whose misses are computed once even when asked for twice at once."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._pending: dict[K, asyncio.Future[V]] = {}

    async def get(self, key: K, make: Callable[[], Awaitable[V]]) -> V:
        if key in self._items:
            self._items.move_to_end(key)
            return self._items[key]
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[V] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            value = await make()
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as err:
            future.set_exception(err)
            future.exception()  # marked as retrieved: there may be no other waiter
            raise
        finally:
            del self._pending[key]
        future.set_result(value)
        self._items[key] = value
        while len(self._items) > self.size:
            self._items.popitem(last=False)
        return value


@dataclass(frozen=True, slots=True)
class LoadedSpec:
    """A run's spec rebuilt from its record, or why it could not be."""

    spec: Spec | None
    error: str | None = None

    @property
    def step_order(self) -> list[str]:
        """The entry saga's steps in source order (empty without a spec)."""
        return [s.name for s in self.spec.saga.steps()] if self.spec is not None else []

    def secret_fields(self) -> tuple[str, ...]:
        """The names of the entry saga's secret input fields."""
        return self.spec.secrets() if self.spec is not None else ()


def _rebuild(rec: RunRecord) -> LoadedSpec:
    try:
        return LoadedSpec(Spec.from_sources(rec.spec, rec.entry, saga=rec.saga or None))
    except (SagaError, OSError, KeyError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return LoadedSpec(None, f"the spec this run recorded cannot be rebuilt: {first}")


def error_svg(message: str) -> bytes:
    """A small SVG that says ``message`` (in place of a diagram that cannot be drawn)."""
    text = html.escape(message if len(message) <= 160 else message[:159] + "…", quote=True)
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="640" height="48" viewBox="0 0 640 48">'
        '<rect width="640" height="48" fill="#fef2f2" stroke="#b91c1c"/>'
        f'<text x="12" y="29" font-family="sans-serif" font-size="13" fill="#7f1d1d">{text}</text></svg>'
    ).encode()


def _draw(loaded: LoadedSpec, state: RunState | None) -> bytes:
    if loaded.spec is None:
        return error_svg(loaded.error or "no spec")
    try:
        out = render(loaded.spec, state, "svg")
    except SagaError as err:
        return error_svg(str(err).splitlines()[0])
    return out if isinstance(out, bytes) else out.encode()


class Specs:
    """The cache of rebuilt specs, plans and diagrams for one server."""

    def __init__(self, specs: int = 32, diagrams: int = 32) -> None:
        # The SVG of a 500-step saga is about 800 KB, so 32 diagrams keep at most some 25 MB.
        self._specs: _LRU[tuple[str, str, str], LoadedSpec] = _LRU(specs)
        self._diagrams: _LRU[tuple[Hashable, ...], bytes] = _LRU(diagrams)
        self._plans: _LRU[tuple[str, str, str], SagaPlan | None] = _LRU(specs)

    async def load(self, rec: RunRecord) -> LoadedSpec:
        """``rec``'s spec (rebuilt once per spec hash, saga and entry file)."""
        return await self._specs.get((rec.spec_hash, rec.saga, rec.entry), lambda: asyncio.to_thread(_rebuild, rec))

    async def run_diagram(self, rec: RunRecord, state: RunState) -> bytes:
        """The SVG of ``rec``'s saga overlaid with ``state`` (redrawn only when the journal grew)."""
        loaded = await self.load(rec)
        key = ("run", rec.run_id, rec.spec_hash, state.last_seq, state.status)
        return await self._diagrams.get(key, lambda: asyncio.to_thread(_draw, loaded, state))

    async def saga_diagram(self, rec: RunRecord) -> bytes:
        """The SVG of the saga ``rec`` ran (no run state)."""
        loaded = await self.load(rec)
        key = ("saga", rec.spec_hash, rec.saga, rec.entry)
        return await self._diagrams.get(key, lambda: asyncio.to_thread(_draw, loaded, None))

    async def plan(self, rec: RunRecord) -> SagaPlan | None:
        """The plan of the saga ``rec`` ran (None when its spec cannot be rebuilt)."""
        loaded = await self.load(rec)

        async def make() -> SagaPlan | None:
            spec = loaded.spec
            if spec is None:
                return None
            return plan_saga(spec.saga, spec.files.get(spec.entry, ""), callees=spec.sagas)

        return await self._plans.get((rec.spec_hash, rec.saga, rec.entry), make)
