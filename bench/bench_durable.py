"""Durable execution benchmarks: sagalang on its SQLite journal against DBOS Transact on SQLite.

Two figures, each measured side by side in the same run:

* per-step overhead of a durable saga — every step's ``step.started`` and its
  result committed before the next step starts — as the slope between a
  1-step and an N-step saga of no-op handlers (the per-saga constant drops out);
* throughput of many concurrent 5-step sagas in one process (sagas/s).

DBOS runs in its own virtualenv ``bench/.venv`` (``python -m venv bench/.venv &&
bench/.venv/bin/pip install dbos``) so it never becomes a dependency of the
project; without it the DBOS columns are skipped with a note.

Run: ``python bench/bench_durable.py [--quick]`` (merges into bench/results.json).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import fmt_time, save, table

from sagalang.interpreter import run
from sagalang.journal import open_store
from sagalang.plugins import Registry
from sagalang.spec import load

HERE = Path(__file__).resolve().parent
DBOS_PYTHON = HERE / ".venv" / "bin" / "python"

HANDLERS = """
from sagalang.plugins import handler

@handler("bench.noop")
async def noop() -> dict:
    return {"ok": True}

@handler("bench.undo")
async def undo() -> dict:
    return {}
"""

# The DBOS side: the same shapes (N no-op steps per workflow; many concurrent 5-step workflows).
DBOS_SCRIPT = """
import asyncio, json, logging, statistics, sys, time
from dbos import DBOS
db = sys.argv[1]
steps, reps, concurrency, rounds = (int(a) for a in sys.argv[2:6])
DBOS(config={"name": "bench", "system_database_url": "sqlite:///" + db, "log_level": "WARNING"})
logging.getLogger("dbos").setLevel(logging.WARNING)

@DBOS.step()
async def noop() -> dict:
    return {"ok": True}

@DBOS.workflow()
async def saga(n: int) -> int:
    for _ in range(n):
        await noop()
    return n

async def main():
    await saga(1)
    await saga(steps)
    def timed(n):
        async def go():
            t = time.perf_counter(); await saga(n); return time.perf_counter() - t
        return go
    one = [await timed(1)() for _ in range(reps)]
    many = [await timed(steps)() for _ in range(reps)]
    tput = []
    for _ in range(rounds):
        t = time.perf_counter()
        await asyncio.gather(*(saga(5) for _ in range(concurrency)))
        tput.append(concurrency / (time.perf_counter() - t))
    print(json.dumps({"one": one, "many": many, "throughput": tput}))

DBOS.launch()
asyncio.run(main())
DBOS.destroy()
"""


def saga_text(n: int) -> str:
    """A linear n-step saga: each step a no-op with an undo."""
    steps = "\n".join(f"    step s{i} {{ do bench.noop() undo bench.undo() }}" for i in range(n))
    return f'saga bench version "1" {{\n{steps}\n}}\n'


class Sagalang:
    """Runs the benchmark sagas with the interpreter on one store."""

    def __init__(self, folder: Path, url: str) -> None:
        plugin = folder / "bench_handlers.py"
        plugin.write_text(HANDLERS)
        self.registry = Registry.discover([str(plugin)], entry_points=False, pyproject=False)
        self.specs: dict[int, Any] = {}
        for n in (1, 5):
            (folder / f"s{n}.saga").write_text(saga_text(n))
            self.specs[n] = load(folder / f"s{n}.saga", registry=self.registry)
        self.folder = folder
        self.url = url
        self.counter = 0

    def spec(self, n: int) -> Any:
        """The n-step spec (loaded once)."""
        if n not in self.specs:
            (self.folder / f"s{n}.saga").write_text(saga_text(n))
            self.specs[n] = load(self.folder / f"s{n}.saga", registry=self.registry)
        return self.specs[n]

    async def _run(self, store: Any, n: int) -> None:
        self.counter += 1
        result = await run(self.spec(n), {}, store=store, registry=self.registry, run_id=f"b{self.counter}")
        assert result.status == "completed", result.status

    def per_step(self, steps: int, reps: int) -> dict[str, Any]:
        """Seconds per saga of 1 and of ``steps`` steps."""

        async def go() -> dict[str, Any]:
            store = open_store(self.url)
            await store.open()
            try:
                await self._run(store, 1)
                await self._run(store, steps)
                one, many = [], []
                for _ in range(reps):
                    t = time.perf_counter()
                    await self._run(store, 1)
                    one.append(time.perf_counter() - t)
                    t = time.perf_counter()
                    await self._run(store, steps)
                    many.append(time.perf_counter() - t)
                return {"one": one, "many": many, "transactions": getattr(store, "transactions", None)}
            finally:
                await store.close()

        return asyncio.run(go())

    def throughput(self, concurrency: int, rounds: int) -> dict[str, Any]:
        """Concurrent 5-step sagas per second, and journal commits per saga."""

        async def go() -> dict[str, Any]:
            store = open_store(self.url)
            await store.open()
            try:
                await self._run(store, 5)
                rates, commits = [], []
                for _ in range(rounds):
                    before = getattr(store, "transactions", 0)
                    t = time.perf_counter()
                    await asyncio.gather(*(self._run(store, 5) for _ in range(concurrency)))
                    rates.append(concurrency / (time.perf_counter() - t))
                    commits.append((getattr(store, "transactions", 0) - before) / concurrency)
                return {"throughput": rates, "commits_per_saga": commits}
            finally:
                await store.close()

        return asyncio.run(go())


def slope(one: list[float], many: list[float], steps: int) -> float:
    """Seconds per step: (median N-step saga - median 1-step saga) / (N - 1)."""
    return (statistics.median(many) - statistics.median(one)) / (steps - 1)


def run_dbos(folder: Path, steps: int, reps: int, concurrency: int, rounds: int) -> dict[str, Any] | None:
    """DBOS's figures from its own virtualenv, or None (with a note) when it is not installed."""
    if not DBOS_PYTHON.exists():
        hint = "python -m venv bench/.venv && bench/.venv/bin/pip install dbos"
        print(f"note: DBOS skipped: {DBOS_PYTHON} not found ({hint})")
        return None
    db = folder / "dbos.sqlite"
    proc = subprocess.run(
        [str(DBOS_PYTHON), "-c", DBOS_SCRIPT, str(db), str(steps), str(reps), str(concurrency), str(rounds)],
        capture_output=True,
        text=True,
        cwd=folder,
        timeout=900,
    )
    if proc.returncode != 0:
        print(f"note: DBOS skipped: it failed:\n{proc.stderr[-2000:]}")
        return None
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    version = subprocess.run(
        [str(DBOS_PYTHON), "-c", "import importlib.metadata as m; print(m.version('dbos'))"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    result["version"] = version
    return result


def main() -> None:
    """Measure, print a table, merge into bench/results.json."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (smoke test)")
    args = parser.parse_args()
    steps = 20 if args.quick else 50
    reps = 3 if args.quick else 7
    concurrency = 200 if args.quick else 1000
    dbos_concurrency = 100 if args.quick else 200
    rounds = 1 if args.quick else 3

    folder = Path(tempfile.mkdtemp(prefix="sagalang-bench-"))
    try:
        results: dict[str, Any] = {"steps": steps, "concurrency": concurrency, "dbos_concurrency": dbos_concurrency}
        rows: list[list[str]] = []
        per_step: dict[str, float] = {}
        configs = {
            "sagalang sqlite (synchronous=normal)": f"sqlite:///{folder}/normal.db",
            "sagalang sqlite (synchronous=full)": f"sqlite:///{folder}/full.db?synchronous=full",
            "sagalang memory (not durable)": "memory:",
        }
        bench = Sagalang(folder, "")
        for label, url in configs.items():
            bench.url = url
            got = bench.per_step(steps, reps)
            per_step[label] = slope(got["one"], got["many"], steps)
            results[label] = {
                "per_step_s": per_step[label],
                "saga_1_step_s": statistics.median(got["one"]),
                f"saga_{steps}_steps_s": statistics.median(got["many"]),
            }
        dbos = run_dbos(folder, steps, reps, dbos_concurrency, rounds)
        dbos_step = slope(dbos["one"], dbos["many"], steps) if dbos else None
        if dbos is not None and dbos_step is not None:
            results["dbos"] = {
                "version": dbos["version"],
                "per_step_s": dbos_step,
                "saga_1_step_s": statistics.median(dbos["one"]),
                f"saga_{steps}_steps_s": statistics.median(dbos["many"]),
                "throughput_sagas_per_s": statistics.median(dbos["throughput"]),
            }
        for label, value in per_step.items():
            ratio = f"{value / dbos_step:.3f}×" if dbos_step else "n/a"
            rows.append([label, fmt_time(value), ratio])
            results[label]["ratio_to_dbos"] = value / dbos_step if dbos_step else None
        if dbos_step is not None and dbos is not None:
            rows.append([f"DBOS {dbos['version']} sqlite", fmt_time(dbos_step), "1×"])
        print(f"\nDurable per-step overhead (slope of a 1-step vs {steps}-step saga of no-op handlers)\n")
        print(table(["engine", "per step", "vs DBOS"], rows))

        rows = []
        bench.url = f"sqlite:///{folder}/tput.db"
        tput = bench.throughput(concurrency, rounds)
        rate = statistics.median(tput["throughput"])
        commits = statistics.median(tput["commits_per_saga"])
        dbos_rate = statistics.median(dbos["throughput"]) if dbos else None
        results["throughput"] = {
            "sagalang_sagas_per_s": rate,
            "sagalang_commits_per_saga": commits,
            "dbos_sagas_per_s": dbos_rate,
            "ratio_to_dbos": rate / dbos_rate if dbos_rate else None,
        }
        rows.append(
            [
                f"sagalang sqlite, {concurrency} concurrent",
                f"{rate:,.0f}",
                f"{commits:.2f} commits/saga (group commit)",
                f"{rate / dbos_rate:.1f}×" if dbos_rate else "n/a",
            ]
        )
        if dbos_rate is not None:
            rows.append([f"DBOS sqlite, {dbos_concurrency} concurrent", f"{dbos_rate:,.0f}", "", "1×"])
        print("\nThroughput of concurrent 5-step sagas in one process\n")
        print(table(["engine", "sagas/s", "", "vs DBOS"], rows))
        if not args.quick:
            save("durable", results)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
