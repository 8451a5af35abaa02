"""Helpers for the interpreter tests: a handler kit that records every call, and spec loading."""

from __future__ import annotations

import asyncio
import textwrap
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from sagalang.context import Context, Failure
from sagalang.events import Event
from sagalang.interpreter import RunResult, run
from sagalang.journal.memory import MemoryStore
from sagalang.plugins import Registry
from sagalang.spec import Spec, load


class Kit:
    """Handlers ``t.act``/``t.undo`` (and friends) that log what happened, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []
        self.contexts: list[Context] = []
        self.fail: dict[str, int] = {}  # tag -> how many more calls fail
        self.fail_with: dict[str, BaseException] = {}
        self.sleep: dict[str, float] = {}
        self.undo_fail: dict[str, int] = {}
        self.undo_sleep: dict[str, float] = {}
        self.running = 0
        self.max_running = 0
        self.threads: list[str] = []
        self.registry = Registry()
        kit = self

        async def act(ctx: Context, tag: str, value: Any = None) -> Any:
            kit.contexts.append(ctx)
            kit.log.append(("do", tag))
            kit.running += 1
            kit.max_running = max(kit.max_running, kit.running)
            try:
                if tag in kit.sleep:
                    await asyncio.sleep(kit.sleep[tag])
                if kit.fail.get(tag, 0) > 0:
                    kit.fail[tag] -= 1
                    raise kit.fail_with.get(tag) or Failure("t.Broken", f"{tag} broke")
            finally:
                kit.running -= 1
            kit.log.append(("done", tag))
            return {"id": f"{tag}-id", "value": value}

        async def undo(ctx: Context, tag: str, ref: Any = None) -> None:
            kit.contexts.append(ctx)
            kit.log.append(("undo", tag))
            if tag in kit.undo_sleep:
                await asyncio.sleep(kit.undo_sleep[tag])
            if kit.undo_fail.get(tag, 0) > 0:
                kit.undo_fail[tag] -= 1
                raise Failure("t.UndoBroken", f"undo of {tag} broke")

        def sync_act(tag: str) -> dict[str, str]:
            kit.threads.append(threading.current_thread().name)
            kit.log.append(("do", tag))
            return {"id": tag}

        async def bad(tag: str) -> object:
            kit.log.append(("do", tag))
            return object()

        self.registry.add("t.act", act)
        self.registry.add("t.undo", undo)
        self.registry.add("t.sync", sync_act)
        self.registry.add("t.bad", bad)

    def did(self, kind: str) -> list[str]:
        """Tags of the calls of one kind (``do``, ``done``, ``undo``), in order."""
        return [tag for k, tag in self.log if k == kind]


def spec_of(tmp_path: Path, text: str, registry: Registry, name: str = "s.saga") -> Spec:
    """Write ``text`` as a spec file and load it (validated against ``registry``)."""
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load(path, registry)


def step(name: str, *, undo: bool = True, extra: str = "", head: str = "step") -> str:
    """A ``t.act`` step (with a ``t.undo`` undo unless ``undo=False``)."""
    u = f' undo t.undo(tag: "{name}")' if undo else ""
    return f'{head} {name} {{ do t.act(tag: "{name}"){u} {extra} }}'


async def go(
    spec: Spec, kit: Kit, data: dict[str, Any] | None = None, *, store: MemoryStore | None = None, **kw: Any
) -> tuple[RunResult, list[Event]]:
    """Run ``spec`` on a memory store; the result and every journaled event."""
    store = store or MemoryStore()
    result = await run(spec, data or {}, store=store, registry=kit.registry, **kw)
    return result, await store.events(result.run_id)


def kinds(events: Iterable[Event], step: str | None = None) -> list[str]:
    """``kind:step`` of each event (only ``step``'s when given)."""
    return [f"{e.kind}:{e.step}" if e.step else e.kind for e in events if step is None or e.step == step]
