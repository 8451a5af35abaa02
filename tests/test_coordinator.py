"""The Coordinator: many sagas at once, tracked, cancelled and awaited."""

from __future__ import annotations

import asyncio
from pathlib import Path

from interp_kit import Kit, spec_of, step

from sagalang import Coordinator, cancel
from sagalang.journal.memory import MemoryStore


def _saga(*steps: str) -> str:
    return "saga s {\n" + "\n".join(steps) + "\n}\n"


def test_many_sagas_concurrently_then_wait_all(tmp_path: Path) -> None:
    kit = Kit()
    kit.sleep["a"] = 0.05
    spec = spec_of(tmp_path, _saga(step("a"), step("b")), kit.registry)

    async def main() -> None:
        coord = Coordinator(MemoryStore(), kit.registry)
        ids = [await coord.start(spec, {}) for _ in range(50)]
        assert len(set(ids)) == 50
        assert set(coord.active()) == set(ids)
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        results = await coord.wait_all()
        # 50 sagas each waiting 50 ms ran side by side, not one after the other.
        assert loop.time() - t0 < 1.0
        assert {r.status for r in results.values()} == {"completed"}
        assert coord.active() == []
        assert (await coord.wait(ids[0])).run_id == ids[0]

    asyncio.run(main())


def test_cancel_one_mid_step(tmp_path: Path) -> None:
    kit = Kit()
    kit.sleep["b"] = 5
    spec = spec_of(tmp_path, _saga(step("a"), step("b"), step("c")), kit.registry)

    async def main() -> None:
        store = MemoryStore()
        coord = Coordinator(store, kit.registry)
        rid = await coord.start(spec, {})
        while "b" not in kit.did("do"):
            await asyncio.sleep(0.01)
        assert await coord.cancel(rid)
        result = await asyncio.wait_for(coord.wait(rid), 3)
        assert result.status == "cancelled"
        assert kit.did("undo") == ["b", "a"]
        assert result.state.steps["b"].uncertain
        assert not await coord.cancel(rid)  # already ended
        rec = await store.get_run(rid)
        assert rec is not None and rec.status == "cancelled"

    asyncio.run(main())


def test_module_level_cancel_reaches_a_live_run(tmp_path: Path) -> None:
    kit = Kit()
    kit.sleep["a"] = 5
    spec = spec_of(tmp_path, _saga(step("a"), step("b")), kit.registry)

    async def main() -> None:
        store = MemoryStore()
        coord = Coordinator(store, kit.registry)
        rid = await coord.start(spec, {})
        while "a" not in kit.did("do"):
            await asyncio.sleep(0.01)
        assert await cancel(rid, store=store)
        result = await asyncio.wait_for(coord.wait(rid), 3)
        assert result.status == "cancelled"
        assert not await cancel("no-such-run", store=store)

    asyncio.run(main())


def test_max_concurrency_and_cancel_before_start(tmp_path: Path) -> None:
    kit = Kit()
    kit.sleep["a"] = 0.05
    spec = spec_of(tmp_path, _saga(step("a")), kit.registry)

    async def main() -> None:
        coord = Coordinator(MemoryStore(), kit.registry, max_concurrency=2)
        ids = [await coord.start(spec, {}) for _ in range(6)]
        assert await coord.cancel(ids[-1])  # still waiting for a slot
        results = await coord.wait_all()
        assert kit.max_running <= 2
        assert results[ids[-1]].status == "cancelled"
        assert [results[i].status for i in ids[:-1]] == ["completed"] * 5
        await coord.close()

    asyncio.run(main())


def test_close_cancels_active_runs(tmp_path: Path) -> None:
    kit = Kit()
    kit.sleep["a"] = 5
    spec = spec_of(tmp_path, _saga(step("a")), kit.registry)

    async def main() -> None:
        coord = Coordinator(MemoryStore(), kit.registry)
        rid = await coord.start(spec, {})
        await asyncio.sleep(0.05)
        await asyncio.wait_for(coord.close(), 3)
        assert (await coord.wait(rid)).status == "cancelled"

    asyncio.run(main())


def test_the_many_runs_example_of_the_docs() -> None:
    """docs/examples/many_runs.py (shown in docs/handlers.md): every run completes, every effect counted once."""
    import importlib.util

    path = Path(__file__).resolve().parent.parent / "docs" / "examples" / "many_runs.py"
    loaded = importlib.util.spec_from_file_location("many_runs_example", path)
    assert loaded is not None and loaded.loader is not None
    module = importlib.util.module_from_spec(loaded)
    loaded.loader.exec_module(module)
    statuses = asyncio.run(module.main(300, in_flight=50))
    assert statuses == {"completed": 300}
    assert module.reserved == {"BOOK-42": 300}
