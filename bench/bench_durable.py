"""Durable execution benchmarks: sagalang on its SQLite journal against DBOS Transact on SQLite,
and both against the floor, a bare SQLite insert+commit.

Every figure is the median with its spread (min–max) over the repeats, and every
comparison is the median of paired ratios: each repeat takes one sample of every
engine in turn (sagalang in this process, DBOS in a worker process of its own that
waits for each command, the floor with the stdlib ``sqlite3``), so the noise of a
shared machine hits them alike. Times are wall-clock: the journal's cost is I/O.

1. Per-step overhead of a durable saga (every step's ``step.started`` and its
   result committed before the next step starts), as the slope between a 1-step
   and an N-step saga of no-op handlers, so the per-saga constant drops out. One
   sample runs k 1-step and k N-step sagas alternately (k calibrated so that a
   sample takes about 0.1 s; 0.02 s with ``--quick``) and takes (mean N-step - mean 1-step) / (N - 1).
   The floor is one row of the journal's ``events`` table shape inserted and
   committed on its own (``BEGIN IMMEDIATE; INSERT; COMMIT``) per step, on a
   file with the journal's settings (WAL, ``synchronous=NORMAL``; ``FULL``
   beside the ``synchronous=full`` row). DBOS keeps SQLite's own defaults
   (rollback journal, ``synchronous=FULL``), so its row is set against a floor
   with those. Each row's commits per step are counted where the store counts them.
2. Throughput of many concurrent 5-step sagas in one process (sagas/s). sagalang
   group-commits: every write queued during one turn of the event loop shares a
   commit. Two floors show what that amortises: the bare insert+commit at one
   commit per step (5 per saga: the I/O a journal without group commit pays at
   least), and the same 5 rows per saga written in as many commits as sagalang
   made in that round.

DBOS runs in its own virtualenv ``bench/.venv`` (``python -m venv bench/.venv &&
bench/.venv/bin/pip install dbos``) so it never becomes a dependency of the
project; without it the DBOS columns are skipped with a note.

Run: ``python bench/bench_durable.py [--quick]`` (merges into bench/results.json;
``--quick`` writes nothing).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import fmt_stat, fmt_time, save, table

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

# The DBOS side: the same shapes (N no-op steps per workflow; many concurrent 5-step workflows),
# in a worker that answers one command (one line of JSON) at a time, so its samples interleave with ours.
DBOS_WORKER = """
import asyncio, importlib.metadata, json, logging, sys, time
from dbos import DBOS
DBOS(config={"name": "bench", "system_database_url": "sqlite:///" + sys.argv[1], "log_level": "WARNING"})
logging.getLogger("dbos").setLevel(logging.WARNING)

@DBOS.step()
async def noop() -> dict:
    return {"ok": True}

@DBOS.workflow()
async def saga(n: int) -> int:
    for _ in range(n):
        await noop()
    return n

async def pair(steps, k):
    one = many = 0.0
    for _ in range(k):
        t = time.perf_counter(); await saga(1); one += time.perf_counter() - t
        t = time.perf_counter(); await saga(steps); many += time.perf_counter() - t
    return {"one": one / k, "many": many / k}

async def burst(n):
    t = time.perf_counter()
    await asyncio.gather(*(saga(5) for _ in range(n)))
    return {"rate": n / (time.perf_counter() - t)}

DBOS.launch()
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)
reply = lambda d: print("@@" + json.dumps(d), flush=True)
reply({"version": importlib.metadata.version("dbos")})
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["op"] == "pair":
        reply(loop.run_until_complete(pair(cmd["steps"], cmd["k"])))
    elif cmd["op"] == "burst":
        reply(loop.run_until_complete(burst(cmd["n"])))
    else:
        break
DBOS.destroy()
"""

# The shape of sagalang's journal table (sagalang/journal/migrations.py), for the floor.
EVENTS_TABLE = """CREATE TABLE events (
    run_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, time REAL NOT NULL, step TEXT,
    item INTEGER, attempt INTEGER, data TEXT NOT NULL, epoch INTEGER NOT NULL, PRIMARY KEY (run_id, seq)
) WITHOUT ROWID"""
INSERT = (
    "INSERT INTO events (run_id, seq, kind, time, step, item, attempt, data, epoch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)

Sample = dict[str, float]  # "per_step" (seconds), and "one", "many", "commits" where known


def saga_text(n: int) -> str:
    """A linear n-step saga: each step a no-op with an undo."""
    steps = "\n".join(f"    step s{i} {{ do bench.noop() undo bench.undo() }}" for i in range(n))
    return f'saga bench version "1" {{\n{steps}\n}}\n'


class Sagalang:
    """Runs the benchmark sagas with the interpreter, on stores kept open in one event loop."""

    def __init__(self, folder: Path) -> None:
        plugin = folder / "bench_handlers.py"
        plugin.write_text(HANDLERS)
        self.registry = Registry.discover([str(plugin)], entry_points=False, pyproject=False)
        self.specs: dict[int, Any] = {}
        self.folder = folder
        self.counter = 0
        self.loop = asyncio.new_event_loop()
        self.stores: list[Any] = []

    def spec(self, n: int) -> Any:
        """The n-step spec (loaded once)."""
        if n not in self.specs:
            (self.folder / f"s{n}.saga").write_text(saga_text(n))
            self.specs[n] = load(self.folder / f"s{n}.saga", registry=self.registry)
        return self.specs[n]

    def open(self, url: str) -> Any:
        """An opened store for ``url`` (closed by :meth:`close`)."""
        store = open_store(url)
        self.loop.run_until_complete(store.open())
        self.stores.append(store)
        return store

    def close(self) -> None:
        """Close every store and the loop."""
        for store in self.stores:
            self.loop.run_until_complete(store.close())
        self.loop.close()

    async def _run(self, store: Any, n: int) -> None:
        self.counter += 1
        result = await run(self.spec(n), {}, store=store, registry=self.registry, run_id=f"b{self.counter}")
        assert result.status == "completed", result.status

    def pair(self, store: Any, steps: int, k: int) -> Sample:
        """Mean seconds of a 1-step and of a ``steps``-step saga (k of each, alternately), and the slope."""

        async def go() -> Sample:
            one = many = 0.0
            commits = 0
            for _ in range(k):
                tx0 = getattr(store, "transactions", 0)
                t = time.perf_counter()
                await self._run(store, 1)
                one += time.perf_counter() - t
                tx1 = getattr(store, "transactions", 0)
                t = time.perf_counter()
                await self._run(store, steps)
                many += time.perf_counter() - t
                commits += (getattr(store, "transactions", 0) - tx1) - (tx1 - tx0)
            out = {"one": one / k, "many": many / k, "per_step": (many - one) / k / (steps - 1)}
            if hasattr(store, "transactions"):
                out["commits"] = commits / k / (steps - 1)
            return out

        return self.loop.run_until_complete(go())

    def burst(self, store: Any, n: int) -> Sample:
        """``n`` concurrent 5-step sagas: sagas per second, and journal commits per saga."""

        async def go() -> Sample:
            before = store.transactions
            t = time.perf_counter()
            await asyncio.gather(*(self._run(store, 5) for _ in range(n)))
            rate = n / (time.perf_counter() - t)
            return {"rate": rate, "commits_per_saga": (store.transactions - before) / n}

        return self.loop.run_until_complete(go())


class Floor:
    """The floor: a bare SQLite insert+commit with the stdlib ``sqlite3``, nothing else."""

    def __init__(self, path: Path, journal_mode: str, synchronous: str) -> None:
        self.conn = sqlite3.connect(path, isolation_level=None)
        self.conn.execute("PRAGMA busy_timeout = 5000")
        mode = self.conn.execute(f"PRAGMA journal_mode = {journal_mode}").fetchone()[0]
        assert str(mode).lower() == journal_mode.lower(), mode
        self.conn.execute(f"PRAGMA synchronous = {synchronous}")
        self.conn.execute(EVENTS_TABLE)
        self.seq = 0

    def _rows(self, n: int) -> list[tuple[Any, ...]]:
        now = time.time()
        rows = [("floor", self.seq + i + 1, "step.succeeded", now, "s0", None, 1, '{"ok": true}', 1) for i in range(n)]
        self.seq += n
        return rows

    def per_commit(self, n: int) -> Sample:
        """Seconds per row over ``n`` rows, each inserted and committed in a transaction of its own."""
        rows = self._rows(n)
        conn = self.conn
        t = time.perf_counter()
        for row in rows:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute(INSERT, row)
            conn.execute("COMMIT")
        return {"per_step": (time.perf_counter() - t) / n, "commits": 1.0}

    def rows_for(self, target: float) -> int:
        """How many rows :meth:`per_commit` needs for a sample of about ``target`` seconds (after a warm-up)."""
        self.per_commit(50)
        return max(50, min(20_000, round(target / self.per_commit(50)["per_step"])))

    def grouped(self, n: int, commits: int) -> float:
        """Seconds to write ``n`` rows in ``commits`` transactions (group commit)."""
        rows = self._rows(n)
        size = -(-n // max(commits, 1))
        conn = self.conn
        t = time.perf_counter()
        for i in range(0, n, size):
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(INSERT, rows[i : i + size])
            conn.execute("COMMIT")
        return time.perf_counter() - t

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


class Dbos:
    """DBOS Transact in a worker process of ``bench/.venv``, one command at a time."""

    def __init__(self, proc: subprocess.Popen[str], log: IO[str], log_path: Path) -> None:
        self.proc = proc
        self.log = log
        self.log_path = log_path
        self.version = str(self._read()["version"])

    @classmethod
    def start(cls, folder: Path) -> Dbos | None:
        """The worker, or None (with a note) when DBOS is not installed or does not start."""
        if not DBOS_PYTHON.exists():
            hint = "python -m venv bench/.venv && bench/.venv/bin/pip install dbos"
            print(f"note: DBOS skipped: {DBOS_PYTHON} not found ({hint})")
            return None
        log_path = folder / "dbos.log"
        log = log_path.open("w")
        proc = subprocess.Popen(
            [str(DBOS_PYTHON), "-c", DBOS_WORKER, str(folder / "dbos.sqlite")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            cwd=folder,
        )
        try:
            return cls(proc, log, log_path)
        except RuntimeError as err:
            log.close()
            print(f"note: DBOS skipped: {err}")
            return None

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("@@"):
                answer: dict[str, Any] = json.loads(line[2:])
                return answer
        self.proc.wait()
        self.log.flush()
        raise RuntimeError(f"the DBOS worker exited ({self.proc.returncode}):\n{self.log_path.read_text()[-2000:]}")

    def _ask(self, **cmd: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def pair(self, steps: int, k: int) -> Sample:
        """As :meth:`Sagalang.pair` (DBOS does not report its commits)."""
        got = self._ask(op="pair", steps=steps, k=k)
        return {"one": got["one"], "many": got["many"], "per_step": (got["many"] - got["one"]) / (steps - 1)}

    def burst(self, n: int) -> Sample:
        """As :meth:`Sagalang.burst`."""
        return {"rate": float(self._ask(op="burst", n=n)["rate"])}

    def close(self) -> None:
        """Stop the worker (``quit`` has no answer)."""
        try:
            if self.proc.poll() is None:
                assert self.proc.stdin is not None
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.close()
                self.proc.wait(timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
        finally:
            self.log.close()


def calibrate(take: Callable[[int], Any], target: float, cap: int) -> int:
    """How many units ``take(k)`` needs for a sample of about ``target`` seconds (after a warm-up)."""
    take(1)
    t = time.perf_counter()
    take(1)
    once = time.perf_counter() - t
    return max(1, min(cap, round(target / max(once, 1e-9))))


def interleaved(samplers: dict[str, Callable[[], Sample]], repeat: int) -> dict[str, list[Sample]]:
    """Samples of each sampler, taken in turns so that machine noise hits all of them alike."""
    out: dict[str, list[Sample]] = {k: [] for k in samplers}
    for _ in range(repeat):
        for k, fn in samplers.items():
            out[k].append(fn())
    return out


def stat(values: list[float]) -> dict[str, float]:
    """Median, min and max of ``values``, and how many (as ``harness.measure`` reports them)."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "repeat": len(values)}


def spread(key: str, values: list[float]) -> dict[str, float]:
    """``{key: median, key_min: min, key_max: max}``."""
    return {key: statistics.median(values), f"{key}_min": min(values), f"{key}_max": max(values)}


def paired(a: list[float], b: list[float]) -> list[float]:
    """Ratios of samples taken in the same turn."""
    return [x / y for x, y in zip(a, b, strict=True)]


def fmt_ratio(x: float) -> str:
    """A ratio with about three significant figures."""
    return f"{x:.1f}" if x >= 10 else f"{x:.2f}" if x >= 1 else f"{x:.3f}"


def fmt_ratios(values: list[float]) -> str:
    """``median× (min–max)`` of paired ratios."""
    return f"{fmt_ratio(statistics.median(values))}× ({fmt_ratio(min(values))}–{fmt_ratio(max(values))})"


def fmt_spread(values: list[float], fmt: Callable[[float], str]) -> str:
    """``median (min–max)``."""
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def fmt_rate(x: float) -> str:
    """Sagas per second."""
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}"


NORMAL = "sagalang sqlite (synchronous=normal)"
FULL = "sagalang sqlite (synchronous=full)"
MEMORY = "sagalang memory (not durable)"
FLOOR = "sqlite floor (synchronous=normal)"
FLOOR_FULL = "sqlite floor (synchronous=full)"
FLOOR_DBOS = "sqlite floor (rollback journal, synchronous=full)"
FLOORS = {  # label: (journal_mode, synchronous, as printed)
    FLOOR: ("WAL", "NORMAL", "floor: bare SQLite insert+commit (WAL, synchronous=NORMAL)"),
    FLOOR_FULL: ("WAL", "FULL", "floor: bare SQLite insert+commit (WAL, synchronous=FULL)"),
    FLOOR_DBOS: ("DELETE", "FULL", "floor: bare SQLite insert+commit (rollback journal, synchronous=FULL)"),
}
FLOOR_OF = {NORMAL: FLOOR, FULL: FLOOR_FULL, "dbos": FLOOR_DBOS}  # each engine's floor: the same SQLite settings


def per_step_section(samples: dict[str, list[Sample]], steps: int, version: str | None) -> tuple[dict[str, Any], str]:
    """The per-step figures (results entries by label) and their table."""
    per_step = {label: [s["per_step"] for s in got] for label, got in samples.items()}
    results: dict[str, Any] = {}
    rows: list[list[str]] = []
    for label, got in samples.items():
        entry: dict[str, Any] = {**spread("per_step_s", per_step[label]), "repeat": len(got)}
        if "one" in got[0]:
            entry.update(spread("saga_1_step_s", [s["one"] for s in got]))
            entry.update(spread(f"saga_{steps}_steps_s", [s["many"] for s in got]))
        commits = [s["commits"] for s in got if "commits" in s]
        if commits:
            entry["commits_per_step"] = statistics.median(commits)
        vs_floor = "1×" if label in FLOORS else "—"
        floor = FLOOR_OF.get(label)
        if floor in per_step:
            ratios = paired(per_step[label], per_step[floor])
            entry.update(spread("ratio_to_floor", ratios))
            entry["floor"] = floor
            vs_floor = fmt_ratios(ratios)
        vs_dbos = "1×" if label == "dbos" else "n/a"
        if label != "dbos":
            entry["ratio_to_dbos"] = None
            if "dbos" in per_step:
                ratios = paired(per_step[label], per_step["dbos"])
                entry.update(spread("ratio_to_dbos", ratios))
                vs_dbos = fmt_ratios(ratios)
        name = label
        if label in FLOORS:
            name = FLOORS[label][2]
            entry["what"] = name.removeprefix("floor: ") + ", one row committed per step"
        elif label == "dbos":
            name = f"DBOS {version} sqlite"
            entry["version"] = version
        results[label] = entry
        commits_cell = f"{statistics.median(commits):.2f}" if commits else "—"
        rows.append([name, fmt_stat(stat(per_step[label])), commits_cell, vs_floor, vs_dbos])
    repeat = len(next(iter(samples.values())))
    text = (
        f"Durable per-step overhead: slope of a 1-step vs {steps}-step saga of no-op handlers; wall time,\n"
        f"median (min–max) of {repeat} samples taken in turns; ratios are medians of paired ratios (min–max),\n"
        "each 'vs floor' against the floor with that engine's SQLite settings\n\n"
        + table(["engine", "per step", "commits/step", "vs floor", "vs DBOS"], rows)
    )
    return results, text


def throughput_section(
    bench: Sagalang,
    floor: Floor,
    dbos: Dbos | None,
    concurrency: int,
    dbos_concurrency: int,
    rounds: int,
    target: float,
) -> tuple[dict[str, Any], str]:
    """Concurrent 5-step sagas, sagalang and DBOS and the floors in turns: the figures and their table."""
    store = bench.open(f"sqlite:///{bench.folder}/tput.db")
    bench.burst(store, concurrency)  # warm-up
    if dbos is not None:
        dbos.burst(dbos_concurrency)  # warm-up
    n_floor = floor.rows_for(target)
    ours: list[Sample] = []
    theirs: list[float] = []
    floor_rate: list[float] = []
    grouped_rate: list[float] = []
    for _ in range(rounds):
        ours.append(bench.burst(store, concurrency))
        if dbos is not None:
            theirs.append(dbos.burst(dbos_concurrency)["rate"])
        floor_rate.append(1 / (5 * floor.per_commit(n_floor)["per_step"]))
        commits = max(1, round(ours[-1]["commits_per_saga"] * concurrency))
        grouped_rate.append(concurrency / floor.grouped(5 * concurrency, commits))
    rate = [s["rate"] for s in ours]
    commits_per_saga = [s["commits_per_saga"] for s in ours]
    results: dict[str, Any] = {
        **spread("sagalang_sagas_per_s", rate),
        **spread("sagalang_commits_per_saga", commits_per_saga),
        "dbos_sagas_per_s": None,
        "ratio_to_dbos": None,
        **spread("floor_sagas_per_s", floor_rate),
        **spread("ratio_to_floor", paired(rate, floor_rate)),
        **spread("floor_group_commit_sagas_per_s", grouped_rate),
        **spread("ratio_to_floor_group_commit", paired(rate, grouped_rate)),
        "rounds": rounds,
    }
    if theirs:
        results.update(spread("dbos_sagas_per_s", theirs))
        results.update(spread("ratio_to_dbos", paired(rate, theirs)))
        results.update(spread("dbos_ratio_to_floor", paired(theirs, floor_rate)))
    commits_cell = fmt_spread(commits_per_saga, lambda x: f"{x:.3f}")
    figures = [
        (f"sagalang sqlite, {concurrency} concurrent (group commit)", rate, commits_cell),
        (f"DBOS sqlite, {dbos_concurrency} concurrent", theirs, "—"),
        ("floor: bare insert+commit (WAL, NORMAL), one commit per step", floor_rate, "5"),
        ("floor: the same, 5 rows per saga in sagalang's number of commits", grouped_rate, commits_cell),
    ]
    rows: list[list[str]] = []
    for i, (name, values, cell) in enumerate(figures):
        if not values:
            continue
        vs_floor = "1×" if values is floor_rate else fmt_ratios(paired(values, floor_rate))
        vs_dbos = "1×" if values is theirs else fmt_ratios(paired(values, theirs)) if theirs else "n/a"
        rows.append([name, fmt_spread(values, fmt_rate), cell, vs_floor, vs_dbos if i < 2 else ""])
    per_saga = statistics.median([1 / r for r in rate])
    io = statistics.median([1 / r for r in grouped_rate])
    text = (
        f"Throughput of concurrent 5-step sagas in one process: sagas/s, median (min–max) of {rounds} rounds\n"
        "taken in turns; ratios are medians of paired ratios (min–max)\n\n"
        + table(["engine", "sagas/s", "commits/saga", "vs floor", "vs DBOS"], rows)
        + f"\n\nGroup commit: sagalang commits {statistics.median(commits_per_saga):.3f} times per saga "
        f"(one commit per step would be 5).\nA saga takes it {fmt_time(per_saga)}; the floor writes 5 rows "
        f"per saga in as many commits in {fmt_time(io)}:\nthe commits are amortised, and the rest is "
        "sagalang's own work per saga (it writes 12 events and a run row)."
    )
    return results, text


def main() -> None:
    """Measure, print the tables, merge into bench/results.json."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes, few repeats (smoke test); writes nothing")
    args = parser.parse_args()
    steps = 20 if args.quick else 50
    repeat = 3 if args.quick else 7
    target = 0.02 if args.quick else 0.1  # seconds per per-step sample
    concurrency = 200 if args.quick else 1000
    dbos_concurrency = 50 if args.quick else 200
    rounds = 3 if args.quick else 5

    folder = Path(tempfile.mkdtemp(prefix="sagalang-bench-"))
    bench = Sagalang(folder)
    floors: dict[str, Floor] = {}
    dbos: Dbos | None = None
    try:
        dbos = Dbos.start(folder)
        configs = {
            NORMAL: f"sqlite:///{folder}/normal.db",
            FULL: f"sqlite:///{folder}/full.db?synchronous=full",
            MEMORY: "memory:",
        }
        samplers: dict[str, Callable[[], Sample]] = {}
        for label, url in configs.items():
            store = bench.open(url)
            k = calibrate(functools.partial(bench.pair, store, steps), target, 200)
            samplers[label] = functools.partial(bench.pair, store, steps, k)
        if dbos is not None:
            k = calibrate(functools.partial(dbos.pair, steps), target, 50)
            samplers["dbos"] = functools.partial(dbos.pair, steps, k)
        for label, (mode, sync, _) in FLOORS.items():
            if label == FLOOR_DBOS and dbos is None:
                continue
            floor = floors[label] = Floor(folder / f"floor-{mode}-{sync}.db".lower(), mode, sync)
            n = floor.rows_for(target)
            samplers[label] = functools.partial(floor.per_commit, n)

        results: dict[str, Any] = {
            "steps": steps,
            "concurrency": concurrency,
            "dbos_concurrency": dbos_concurrency,
            "repeat": repeat,
            "rounds": rounds,
            "method": "wall time; each figure the median, *_min and *_max over the repeats, taken in turns; "
            "each ratio the median of the ratios of samples taken in the same turn",
        }
        entries, text = per_step_section(
            interleaved(samplers, repeat), steps, dbos.version if dbos is not None else None
        )
        results.update(entries)
        print("\n" + text)
        results["throughput"], text = throughput_section(
            bench, floors[FLOOR], dbos, concurrency, dbos_concurrency, rounds, target
        )
        if dbos is not None:  # DBOS's own entry, as before
            tput = results["throughput"]
            for suffix in ("", "_min", "_max"):
                results["dbos"][f"throughput_sagas_per_s{suffix}"] = tput[f"dbos_sagas_per_s{suffix}"]
        print("\n" + text)
        if not args.quick:
            save("durable", results)
    finally:
        if dbos is not None:
            dbos.close()
        for f in floors.values():
            f.close()
        bench.close()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
