"""The web view's server time: the runs list over 100,000 runs in SQLite, and the page of a 500-step run.

Run: ``python bench/bench_ui.py [--quick]`` (prints a table, merges its figures
into bench/results.json under ``ui``; ``--quick`` writes nothing).

The store is a real SQLite journal: 100,000 runs of order.saga created through
the store's API, a mix of statuses as a store that has run for a while holds
them (1% still in flight), plus one run of a 500-step saga driven by the
interpreter (no-op handlers, so its journal has every event a real one has).
Each figure is the server time of one GET: the request goes through the whole
Starlette application (middleware, routing, store queries, template) as an ASGI
call in this process, with no network or client in between. Median and spread
over the repeats, after a warm-up (the run page's spec is rebuilt once and
kept, as a running server keeps it: the cold figure is given beside it).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import fmt_stat, fmt_time, save, table

from sagalang.interpreter import run
from sagalang.journal import open_store
from sagalang.journal.base import RunFilter, RunRecord, Store
from sagalang.plugins import Registry
from sagalang.spec import load
from sagalang.ui import UIConfig, create_app

ROOT = Path(__file__).resolve().parent.parent
ORDER = ROOT / "specs" / "examples" / "order.saga"
# What a store that has served for a while holds: mostly finished runs, 1% in flight.
MIX = {"completed": 80, "compensated": 12, "cancelled": 3, "stuck": 1, "aborted": 1, "queued": 2, "running": 1}


def _linear(n: int) -> str:
    steps = "\n".join(f"    step s{i} {{\n        do   b.act()\n        undo b.undo()\n    }}" for i in range(n))
    return f'saga long version "1" {{\n{steps}\n}}\n'


async def _fill(store: Store, runs: int, seed: int = 7) -> None:
    """``runs`` runs of order.saga, statuses drawn from MIX, created in batches of 1,000 through the store."""
    spec = load(ORDER)
    rnd = random.Random(seed)
    statuses = [s for s, weight in MIX.items() for _ in range(weight)]
    now = time.time()
    for start in range(0, runs, 1000):
        batch = []
        for i in range(start, min(start + 1000, runs)):
            created = now - rnd.random() * 30 * 86400
            record = RunRecord(
                run_id=f"order_fulfillment-{i:012x}",
                saga=spec.entry,
                entry=spec.entry_file,
                spec=spec.sources,
                spec_hash=spec.spec_hash,
                input={"order_id": f"A-{i}", "sku": "BOOK-42", "qty": 1, "amount": 9.5, "card": "***"},
                handlers=spec.handler_names,
                status=rnd.choice(statuses),
                created_at=created,
                updated_at=created + rnd.random() * 60,
            )
            batch.append(store.create_run(record))
        await asyncio.gather(*batch)


async def _long_run(store: Store, folder: Path, steps: int) -> str:
    path = folder / "long.saga"
    path.write_text(_linear(steps))
    registry = Registry()

    async def act() -> dict[str, int]:
        return {"ok": 1}

    async def undo() -> None:
        return None

    registry.add("b.act", act)
    registry.add("b.undo", undo)
    result = await run(load(path, registry=registry), {}, store=store, registry=registry, run_id="long-run")
    assert result.status == "completed", result.status
    return result.run_id


async def _get(app: Any, path: str, query: str = "") -> tuple[int, int]:
    """One GET through the ASGI application: (status, body bytes)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"127.0.0.1:8765")],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8765),
    }
    status = 0
    size = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status, size
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            size += len(message.get("body", b""))

    await app(scope, receive, send)
    return status, size


async def _time(fn: Callable[[], Awaitable[tuple[int, int]]], repeat: int, warmup: int = 2) -> dict[str, Any]:
    """Wall time (the server time) and CPU time of one request: median, min, max over ``repeat`` after a warm-up.

    On a shared machine the wall time includes waiting for a core; the CPU time does not.
    """
    for _ in range(warmup):
        status, _ = await fn()
        assert status == 200, status
    wall = []
    cpu = []
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        status, _ = await fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        assert status == 200, status
    return {
        "median": statistics.median(wall),
        "min": min(wall),
        "max": max(wall),
        "repeat": repeat,
        "cpu": {"median": statistics.median(cpu), "min": min(cpu), "max": max(cpu)},
    }


async def measure_all(runs: int, steps: int, repeat: int, folder: Path) -> dict[str, Any]:
    """Fill a store, serve it, time the pages."""
    url = f"sqlite:///{folder / 'journal.db'}"
    store = open_store(url)
    await store.open()
    t0 = time.perf_counter()
    await _fill(store, runs)
    fill_s = time.perf_counter() - t0
    run_id = await _long_run(store, folder, steps)
    events = len(await store.events(run_id))
    await store.close()

    app = create_app(UIConfig(url))
    out: dict[str, Any] = {"runs": runs, "steps": steps, "events": events, "fill_seconds": fill_s}
    async with app.router.lifespan_context(app):
        first = await app.state.ui.queries.query_runs(RunFilter(), 50)
        deep = f"after={first.next.encode()}" if first.next else ""
        cases = {
            "list": ("/", ""),
            "list_stuck": ("/", "status=stuck"),
            "list_running": ("/", "status=running"),
            "list_page_2": ("/", deep),
            "list_id_text": ("/", "q=0000abc"),
            "api_runs": ("/api/runs", ""),
        }
        for name, (path, query) in cases.items():
            out[name] = await _time(lambda p=path, q=query: _get(app, p, q), repeat)
        t0 = time.perf_counter()
        status, size = await _get(app, f"/runs/{run_id}")
        out["run_page_cold"] = time.perf_counter() - t0
        out["run_page_bytes"] = size
        assert status == 200
        out["run_page"] = await _time(lambda: _get(app, f"/runs/{run_id}"), repeat)
        t0 = time.perf_counter()
        status, _ = await _get(app, f"/diagram/{run_id}")
        out["diagram_cold"] = time.perf_counter() - t0
        out["diagram"] = await _time(lambda: _get(app, f"/diagram/{run_id}"), repeat)
        out["live_part"] = await _time(lambda: _get(app, f"/live/{run_id}"), repeat)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="2,000 runs, a 20-step run, 3 repeats; writes nothing")
    args = parser.parse_args()
    runs, steps, repeat = (2000, 20, 3) if args.quick else (100_000, 500, 15)
    with tempfile.TemporaryDirectory(prefix="sagalang-bench-ui-") as tmp:
        r = asyncio.run(measure_all(runs, steps, repeat, Path(tmp)))

    def line(label: str, size: str, key: str, aim: str = "") -> list[str]:
        return [label, size, fmt_stat(r[key]), fmt_time(r[key]["cpu"]["median"]), aim]

    rows = [
        line("runs list, first page (50 of all)", f"{runs:,} runs, 1% in flight", "list", "< 100 ms"),
        line("… only `stuck`", "", "list_stuck"),
        line("… only `running` (the runs in flight)", "", "list_running"),
        line("… the second page (keyset)", "", "list_page_2"),
        line("… run id contains (a substring: every id read)", "", "list_id_text"),
        line("`/api/runs`, first page", "", "api_runs"),
        line("run page", f"{steps} steps, {r['events']:,} events", "run_page", "< 300 ms"),
        ["… first view (spec rebuilt)", "", fmt_time(r["run_page_cold"]), "", ""],
        line("… its live part (polled while running)", "", "live_part"),
        ["… its diagram (SVG), first view (`dot`)", "", fmt_time(r["diagram_cold"]), "", ""],
        line("… its diagram again (kept)", "", "diagram"),
    ]
    print(f"## Web view: server time per page (median of {repeat}, min–max; CPU time: median)\n")
    print(table(["page", "size", "server time", "CPU time", "aim"], rows))
    print(f"\nThe store was filled in {r['fill_seconds']:.1f} s; the run page is {r['run_page_bytes'] / 1024:.0f} KiB.")
    if not args.quick:
        save("ui", r)


if __name__ == "__main__":
    main()
