"""PostgreSQL throughput: completed 5-step sagas per second with 1 and with 2 worker processes.

Each measurement uses a fresh schema on the local server: the workers start
and sit idle on LISTEN, then a batch of runs is submitted in one transaction
and the clock runs from that commit to the last run's terminal event. The
handlers are no-ops, so the figure is the engine plus its journal: every saga
makes 12 journal writes (saga.started, step.started + step.succeeded per step,
saga.completed), each one transaction with the fencing check.

    .venv/bin/python bench/bench_postgres.py [--runs 400] [--concurrency 8] [--repeat 3]

The server comes from ``$SAGALANG_TEST_POSTGRES_DSN`` (default
``postgresql://postgres@127.0.0.1:5432/test``). Results merge into
bench/results.json under ``postgres``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import machine, save, table

from sagalang.journal import run_with_store
from sagalang.journal.base import TERMINAL_STATES
from sagalang.journal.postgres import PostgresStore
from sagalang.spec import load
from sagalang.worker import queued_record

SPEC = """\
saga five version "1" {
    input { n: integer }
    step s1 { do b.noop(n: input.n) undo b.noop(n: input.n) }
    step s2 { do b.noop(n: input.n) undo b.noop(n: input.n) }
    step s3 { do b.noop(n: input.n) undo b.noop(n: input.n) }
    step s4 { do b.noop(n: input.n) undo b.noop(n: input.n) }
    step s5 { do b.noop(n: input.n) undo b.noop(n: input.n) }
}
"""
PLUGIN = """
from sagalang.plugins import handler

@handler("b.noop")
async def noop(n):
    return {"n": n}
"""


def _sql(dsn: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn, autocommit=True, application_name="bench-sagalang") as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


def _with_schema(dsn: str, schema: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}options=-csearch_path%3D{schema}"


def measure_once(dsn: str, folder: Path, workers: int, runs: int, concurrency: int) -> dict[str, float]:
    """One batch of ``runs`` sagas through ``workers`` worker processes; sagas per second and friends."""
    schema = "bench_" + uuid.uuid4().hex[:10]
    _sql(dsn, f"CREATE SCHEMA {schema}")
    url = _with_schema(dsn, schema)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        asyncio.run(PostgresStore(url).migrate())
        for _ in range(workers):
            cmd = [sys.executable, "-m", "sagalang", "worker", "--store", url, "--plugin", str(folder / "bplugin.py")]
            cmd += ["--concurrency", str(concurrency), "--log-level", "warning", "--poll", "2s"]
            procs.append(subprocess.Popen(cmd, cwd=folder, stderr=subprocess.DEVNULL))
        # Ready = each worker's LISTEN connection is open.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            names = [n for (n,) in _sql(dsn, "SELECT application_name FROM pg_stat_activity")]
            if all(
                any(n.startswith(f"sagalang-worker-{p.pid}@") and n.endswith("-listen") for n in names) for p in procs
            ):
                break
            time.sleep(0.1)
        else:
            raise RuntimeError("workers did not start")
        spec = load(folder / "five.saga")
        records = [queued_record(spec, {"n": i}) for i in range(runs)]
        commits0 = _sql(dsn, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")[0][0]

        async def submit_all(store: PostgresStore) -> float:
            await store.create_runs(records)
            return time.time()

        submitted_at = run_with_store(PostgresStore(url, application_name="bench-submit"), submit_all)
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            [(done,)] = _sql(url, "SELECT count(*) FROM runs WHERE status = ANY(%s)", (list(TERMINAL_STATES),))
            if done == runs:
                break
            time.sleep(0.05)
        else:
            raise RuntimeError(f"only {done} of {runs} runs ended")
        [(t_end, n_events)] = _sql(
            url, "SELECT (SELECT max(time) FROM events WHERE kind = 'saga.completed'), (SELECT count(*) FROM events)"
        )
        commits1 = _sql(dsn, "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()")[0][0]
        statuses = dict(_sql(url, "SELECT status, count(*) FROM runs GROUP BY status"))
        if statuses != {"completed": runs}:
            raise RuntimeError(f"unexpected outcomes {statuses}")
        elapsed = float(t_end) - submitted_at
        return {
            "sagas_per_s": runs / elapsed,
            "elapsed_s": elapsed,
            "events_per_saga": n_events / runs,
            "commits_per_saga": (commits1 - commits0) / runs,
        }
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
        _sql(dsn, f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def main() -> None:
    """Measure with 1 and 2 workers (at each concurrency), print the table, merge into results.json."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=400, help="sagas per measurement")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[8, 32], help="runs at once per worker")
    ap.add_argument("--repeat", type=int, default=3, help="measurements per configuration")
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--quick", action="store_true", help="a few runs, one repeat, nothing saved (smoke test)")
    args = ap.parse_args()
    if args.quick:
        args.runs, args.concurrency, args.repeat = 40, [8], 1
    load_before = os.getloadavg()[0]  # the figures only compare with others measured at a similar load
    dsn = os.environ.get("SAGALANG_TEST_POSTGRES_DSN") or "postgresql://postgres@127.0.0.1:5432/test"
    results: dict[str, Any] = {"runs": args.runs, "steps": 5, "handlers": "async no-op", "configs": {}}
    rows = []
    with tempfile.TemporaryDirectory(prefix="sagalang-bench-") as tmp:
        folder = Path(tmp)
        (folder / "five.saga").write_text(SPEC)
        (folder / "bplugin.py").write_text(PLUGIN)
        measure_once(dsn, folder, 1, max(50, args.runs // 4), args.concurrency[0])  # warm-up
        for conc in args.concurrency:
            base = None
            for n in args.workers:
                samples = [measure_once(dsn, folder, n, args.runs, conc) for _ in range(args.repeat)]
                rates = [s["sagas_per_s"] for s in samples]
                med = statistics.median(rates)
                base = base or med
                entry = {
                    "workers": n,
                    "concurrency": conc,
                    "sagas_per_s": {"median": med, "min": min(rates), "max": max(rates)},
                    "events_per_saga": samples[0]["events_per_saga"],
                    "commits_per_saga": statistics.median(s["commits_per_saga"] for s in samples),
                    "scaling": med / base,
                    "repeat": args.repeat,
                }
                results["configs"][f"{n}w_c{conc}"] = entry
                rows.append(
                    [
                        str(n),
                        str(conc),
                        f"{med:.0f} ({min(rates):.0f}–{max(rates):.0f})",
                        f"{med * entry['events_per_saga']:.0f}",
                        f"{entry['commits_per_saga']:.1f}",
                        f"{entry['scaling']:.2f}x",
                    ]
                )
    print(f"PostgreSQL: completed 5-step sagas per second ({args.runs} runs each, async no-op handlers)")
    load_after = os.getloadavg()[0]
    print(f"machine: {machine()}; 1-min load average {load_before:.1f} before, {load_after:.1f} after")
    print(
        table(
            ["workers", "concurrency each", "sagas/s median (min–max)", "journal events/s", "commits/saga", "scaling"],
            rows,
        )
    )
    results["load_average"] = {"before": load_before, "after": load_after}
    if not args.quick:
        save("postgres", results)


if __name__ == "__main__":
    main()
