"""Resume: a crash after every journal append, then fold + continue; and a real SIGKILL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sagalang.context import Context
from sagalang.events import TERMINAL_EVENTS, Event
from sagalang.interpreter import resume, run
from sagalang.journal.memory import MemoryStore
from sagalang.plugins import Registry
from sagalang.spec import load

SPEC = """
saga order {
    input { items: list[string] }
    step reserve { do fx.do(tag: "reserve") undo fx.undo(tag: "reserve") }
    parallel {
        step charge { do fx.do(tag: "charge") undo fx.undo(tag: "charge") }
        step pack for it in input.items limit 2 { do fx.do(tag: it) undo fx.undo(tag: it) }
    }
    step pay { call payment() }
    pivot step ship { do fx.do(tag: "ship") }
    output { shipped: ship.tag }
}

saga payment {
    step auth { do fx.do(tag: "auth") undo fx.undo(tag: "auth") }
    step capture { do fx.do(tag: "capture") undo fx.undo(tag: "capture") }
}
"""


class Effects:
    """Idempotent handlers: an effect per idempotency key, as a real service would keep."""

    def __init__(self, present: set[str] | None = None) -> None:
        self.present: set[str] = set(present or ())
        self.registry = Registry()
        fx = self

        async def do(ctx: Context, tag: str) -> dict[str, str]:
            fx.present.add(ctx.idempotency_key)
            return {"tag": tag}

        async def undo(ctx: Context, tag: str) -> None:
            fx.present.discard(ctx.idempotency_key)

        self.registry.add("fx.do", do)
        self.registry.add("fx.undo", undo)


def _spec(tmp_path: Path, registry: Registry) -> Any:
    path = tmp_path / "order.saga"
    path.write_text(textwrap.dedent(SPEC))
    return load(path, registry, saga="order")


async def _crashed_copy(store: MemoryStore, run_id: str, k: int) -> tuple[MemoryStore, list[Event]]:
    """A store holding the run as a crash right after its k-th append would have left it."""
    rec = await store.get_run(run_id)
    assert rec is not None
    events = (await store.events(run_id))[:k]
    copy = MemoryStore()
    await copy.create_run(rec)
    await copy.append(run_id, events)
    return copy, events


def _effects_at_crash(events: list[Event], fail_at: tuple[str, ...]) -> set[str]:
    """Worst case: every started handler took effect, every started undo too (injected failures never run)."""
    present: set[str] = set()
    for ev in events:
        key = ev.data.get("idempotency_key") if ev.kind == "step.started" else None
        if key and not ev.data.get("items") and not ev.data.get("saga") and ev.step not in fail_at:
            present.add(key)
        if ev.kind == "compensation.started":
            present.discard(f"{ev.run_id}/{ev.step}" + (f"/{ev.item}" if ev.item is not None else ""))
    return present


@pytest.mark.parametrize("fail_at", [(), ("ship",), ("pay/capture",), ("pack",)])
def test_crash_after_every_append_then_resume(tmp_path: Path, fail_at: tuple[str, ...]) -> None:
    async def main() -> None:
        fx = Effects()
        spec = _spec(tmp_path, fx.registry)
        store = MemoryStore()
        whole = await run(spec, {"items": ["a", "b", "c"]}, store=store, registry=fx.registry, fail_at=fail_at)
        expected = whole.status
        assert expected == ("completed" if not fail_at else "compensated")
        full = await store.events(whole.run_id)
        for k in range(1, len(full)):
            copy, head = await _crashed_copy(store, whole.run_id, k)
            again = Effects(_effects_at_crash(head, fail_at))
            result = await resume(whole.run_id, store=copy, registry=again.registry, fail_at=fail_at)
            where = f"crash after event {k} ({head[-1].kind} {head[-1].step or ''})"
            assert result.status == expected, where
            if expected == "completed":
                assert result.output == {"shipped": "ship"}, where
                assert again.present == fx.present, where
            else:
                # Every effect was undone, including those of steps in flight at the crash.
                assert again.present == set(), where
            events = await copy.events(whole.run_id)
            assert [e.seq for e in events] == list(range(1, len(events) + 1)), where
            assert events[k].kind == "saga.resumed", where

    asyncio.run(main())


def test_resume_of_a_finished_run_returns_its_result(tmp_path: Path) -> None:
    async def main() -> None:
        fx = Effects()
        spec = _spec(tmp_path, fx.registry)
        store = MemoryStore()
        first = await run(spec, {"items": []}, store=store, registry=fx.registry, run_id="r-1")
        again = await resume("r-1", store=store, registry=fx.registry)
        assert again.status == first.status == "completed"
        # Running with an existing id is idempotent too.
        same = await run(spec, {"items": []}, store=store, registry=fx.registry, run_id="r-1")
        assert same.output == first.output
        assert len(await store.events("r-1")) == len(await store.events(first.run_id))

    asyncio.run(main())


HANDLERS = """
import asyncio, json, os
from sagalang.plugins import handler

LOG = os.environ["FX_LOG"]

def note(kind, ctx):
    with open(LOG, "a") as f:
        f.write(json.dumps([kind, ctx.idempotency_key]) + "\\n")

@handler("fx.do")
async def do(ctx, tag):
    note("do", ctx)
    return {"tag": tag}

@handler("fx.undo")
async def undo(ctx, tag):
    note("undo", ctx)
"""


@pytest.mark.parametrize("k", [3, 6])
def test_sigkill_mid_run_then_resume_from_sqlite(tmp_path: Path, k: int) -> None:
    pytest.importorskip("sagalang.journal.sqlite")
    spec = tmp_path / "order.saga"
    spec.write_text(textwrap.dedent(SPEC))
    (tmp_path / "fx.py").write_text(HANDLERS)
    db = tmp_path / "j.db"
    env = {**os.environ, "FX_LOG": str(tmp_path / "log.jsonl")}
    cmd = [
        sys.executable,
        "-m",
        "sagalang.testing.crash",
        str(k),
        "run",
        str(spec),
        "--saga",
        "order",
        "--plugin",
        str(tmp_path / "fx.py"),
    ]
    cmd += ["--store", f"sqlite:///{db}", "--id", "r1", "--set", 'items=["a","b"]', "--no-progress"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == -9, proc.stderr

    async def after() -> None:
        from sagalang.journal import open_store

        os.environ["FX_LOG"] = str(tmp_path / "log.jsonl")
        store = open_store(f"sqlite:///{db}")
        await store.open()
        try:
            events = await store.events("r1")
            # Killed mid-run after k appends: a contiguous journal, at least k events, no end yet.
            assert len(events) >= k
            assert [e.seq for e in events] == list(range(1, len(events) + 1))
            assert not any(e.kind in TERMINAL_EVENTS for e in events)
            reg = Registry()
            reg.load_plugin(str(tmp_path / "fx.py"))
            result = await resume("r1", store=store, registry=reg)
            assert result.status == "completed"
            assert result.output == {"shipped": "ship"}
        finally:
            await store.close()

    asyncio.run(after())
