"""``sagalang submit`` and ``sagalang worker`` against the real PostgreSQL server, with real processes.

The handlers (a plugin file written per test) record their effects in a table
keyed by idempotency key and fail by a seeded hash of that key, so every run's
outcome is known in advance and the effects can be checked exactly:
a completed run keeps all three effects, a compensated run has undone each
effect it made exactly once and made none at or after the failing step.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner
from conftest import postgres_dsn

from sagalang.cli import main
from sagalang.journal.base import TERMINAL_STATES
from sagalang.journal.postgres import PostgresStore
from sagalang.spec import load
from sagalang.worker import submit

pytestmark = pytest.mark.postgres

SPEC = """\
saga chain version "1" {
    input { n: integer }
    defaults { retry attempts 3 backoff 10ms x2 max 50ms }
    compensation { retry attempts 5 backoff 10ms x2 max 50ms }
    step a { do t.act(n: input.n) undo t.undo(n: input.n) }
    step b { do t.act(n: input.n) undo t.undo(n: input.n) }
    step c { do t.act(n: input.n) undo t.undo(n: input.n) }
}
"""
STEPS = ("a", "b", "c")

# The handlers: effects keyed by idempotency key; failures decided by a seeded hash of it.
PLUGIN = """
import hashlib, os, threading, time
import psycopg
from sagalang.context import Failure
from sagalang.plugins import handler

DSN = os.environ["T_EFFECTS_DSN"]
SEED = os.environ.get("T_SEED", "0")
FAIL_PCT = int(os.environ.get("T_FAIL_PCT", "0"))
FLAKY_PCT = int(os.environ.get("T_FLAKY_PCT", "0"))
SLEEP = float(os.environ.get("T_SLEEP", "0"))
SLOW = float(os.environ.get("T_SLOW", "0"))  # n == 999 sleeps this long in step b (this process only)
_local = threading.local()


def pct(*parts):
    text = "/".join([SEED, *map(str, parts)])
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 100


def db():
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(DSN, autocommit=True, application_name="pytest-effects")
    return conn


@handler("t.act")
def act(ctx, n):
    key = ctx.idempotency_key
    db().execute("INSERT INTO calls (key, kind, pid) VALUES (%s, 'do', %s)", (key, os.getpid()))
    if SLEEP:
        time.sleep(SLEEP)
    if n == 999 and ctx.step == "b" and SLOW:
        time.sleep(SLOW)
    if ctx.attempt == 1 and pct(key, "flaky") < FLAKY_PCT:
        raise Failure("t.Flaky", "transient failure")
    if pct(key, "fail") < FAIL_PCT:
        raise Failure("t.Broken", "permanent failure", retryable=False)
    row = db().execute(
        "INSERT INTO effects (key, run_id, step) VALUES (%s, %s, %s)"
        " ON CONFLICT (key) DO UPDATE SET key = effects.key RETURNING undone",
        (key, ctx.saga_id, ctx.step),
    ).fetchone()
    if row[0]:
        db().execute("INSERT INTO violations (key, what) VALUES (%s, 'do after undo')", (key,))
    return {"key": key}


@handler("t.undo")
def undo(ctx, n):
    key = ctx.idempotency_key
    db().execute("INSERT INTO calls (key, kind, pid) VALUES (%s, 'undo', %s)", (key, os.getpid()))
    if ctx.attempt == 1 and pct(key, "undo-flaky") < FLAKY_PCT:
        raise Failure("t.Flaky", "transient failure in undo")
    db().execute("UPDATE effects SET undone = TRUE, undo_count = undo_count + 1 WHERE key = %s AND NOT undone", (key,))
"""


def pct(seed: str, *parts: object) -> int:
    """The plugin's hash, for computing each run's expected outcome."""
    text = "/".join([seed, *map(str, parts)])
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) % 100


def expected(run_id: str, seed: str, fail_pct: int) -> tuple[str, str | None]:
    """(final status, failing step) a run must end with."""
    for step in STEPS:
        if pct(seed, f"{run_id}/{step}", "fail") < fail_pct:
            return "compensated", step
    return "completed", None


def sql(url: str, query: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """One statement on the test's schema."""
    with psycopg.connect(url, autocommit=True, application_name="pytest-sagalang") as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else []


@dataclass
class Cluster:
    """A test schema, the spec and plugin files, and the worker processes started on them."""

    url: str
    tmp: Path
    seed: str = "0"
    fail_pct: int = 0
    flaky_pct: int = 0
    sleep: float = 0.0
    procs: list[tuple[subprocess.Popen[bytes], Path]] = field(default_factory=list)

    @property
    def spec(self) -> Path:
        """The spec file."""
        return self.tmp / "chain.saga"

    @property
    def plugin(self) -> Path:
        """The handler plugin file."""
        return self.tmp / "handlers_t.py"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment of a worker process."""
        env = dict(os.environ)
        env.update(
            T_EFFECTS_DSN=self.url,
            T_SEED=self.seed,
            T_FAIL_PCT=str(self.fail_pct),
            T_FLAKY_PCT=str(self.flaky_pct),
            T_SLEEP=str(self.sleep),
            PYTHONUNBUFFERED="1",
        )
        env.pop("SAGALANG_STORE", None)
        env.update(extra)
        return env

    def start_worker(self, *args: str, **env: str) -> subprocess.Popen[bytes]:
        """Start ``sagalang worker`` on the test schema; its log goes to a file."""
        log = self.tmp / f"worker-{len(self.procs)}.log"
        cmd = [sys.executable, "-m", "sagalang", "worker", "--store", self.url, "--plugin", str(self.plugin)]
        cmd += ["--log-level", "info", *args]
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, env=self.env(**env), stdout=out, stderr=subprocess.STDOUT, cwd=self.tmp)
        self.procs.append((proc, log))
        return proc

    def log_of(self, proc: subprocess.Popen[bytes]) -> str:
        """What a worker logged so far."""
        for p, log in self.procs:
            if p is proc:
                return log.read_text(errors="replace")
        raise KeyError(proc.pid)

    def submit(self, inputs: list[int], run_id: Callable[[int], str] | None = None) -> list[str]:
        """Enqueue one run per input (through the library, in one connection pool)."""

        async def go() -> list[str]:
            spec = load(self.spec)
            store = PostgresStore(self.url, application_name="pytest-submit")
            await store.open()
            try:
                ids = []
                for i, n in enumerate(inputs):
                    rec = await submit(store, spec, {"n": n}, run_id(i) if run_id else None)
                    ids.append(rec.run_id)
                return ids
            finally:
                await store.close()

        return asyncio.run(go())

    def statuses(self) -> dict[str, str]:
        """Every run's cached status."""
        return dict(sql(self.url, "SELECT run_id, status FROM runs"))  # type: ignore[arg-type]

    def wait(self, pred: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``pred`` until it holds; fail with the workers' logs otherwise."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred():
                return
            for proc, _ in self.procs:
                if proc.poll() not in (None, 0, -signal.SIGKILL, -signal.SIGTERM):
                    pytest.fail(f"worker {proc.pid} exited with {proc.returncode}:\n{self.log_of(proc)[-3000:]}")
            time.sleep(0.1)
        logs = "\n".join(f"--- worker {p.pid}\n{log.read_text(errors='replace')[-2000:]}" for p, log in self.procs)
        pytest.fail(f"timed out after {timeout}s waiting for {what}; statuses {self.status_counts()}\n{logs}")

    def wait_all_terminal(self, timeout: float) -> None:
        """Until every run has ended."""
        self.wait(lambda: all(s in TERMINAL_STATES for s in self.statuses().values()), timeout, "every run to end")

    def status_counts(self) -> dict[str, int]:
        """How many runs per status."""
        out: dict[str, int] = {}
        for s in self.statuses().values():
            out[s] = out.get(s, 0) + 1
        return out

    def stop_all(self) -> None:
        """SIGTERM every live worker (SIGCONT first, in case one is stopped) and reap them."""
        for proc, _ in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.send_signal(signal.SIGTERM)
        for proc, _ in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def check_invariants(self, run_ids: list[str]) -> dict[str, list[int]]:
        """Outcomes, effects and journals are exactly as they must be; returns each run's epochs in order."""
        statuses = self.statuses()
        effects = {
            key: (run_id, step, undone, count)
            for key, run_id, step, undone, count in sql(
                self.url, "SELECT key, run_id, step, undone, undo_count FROM effects"
            )
        }
        assert sql(self.url, "SELECT key, what FROM violations") == []
        for rid in run_ids:
            status, failing = expected(rid, self.seed, self.fail_pct)
            assert statuses[rid] == status, f"run {rid}: {statuses[rid]}, expected {status}"
            for i, step in enumerate(STEPS):
                key = f"{rid}/{step}"
                before_failure = failing is None or i < STEPS.index(failing)
                if not before_failure:
                    assert key not in effects, f"{key}: effect made at or after the failing step"
                    continue
                assert key in effects, f"{key}: effect missing"
                _, _, undone, count = effects[key]
                if status == "completed":
                    assert not undone and count == 0, f"{key}: effect of a completed run was undone"
                else:
                    assert undone and count == 1, f"{key}: undone {count} times"
        epochs: dict[str, list[int]] = {rid: [] for rid in run_ids}
        rows = sql(
            self.url,
            "SELECT run_id, seq, epoch, kind FROM events WHERE run_id = ANY(%s) ORDER BY run_id, seq",
            (run_ids,),
        )
        last_seq: dict[str, int] = {}
        for rid, seq, epoch, _kind in rows:
            assert seq == last_seq.get(rid, 0) + 1, f"run {rid}: gap or duplicate at seq {seq}"
            last_seq[rid] = seq
            seen = epochs[rid]
            # No interleaving: once a later epoch wrote, an earlier one never writes again.
            assert not seen or epoch >= seen[-1], f"run {rid}: epoch {epoch} wrote after epoch {seen[-1]}"
            assert epoch > 0, f"run {rid}: an unfenced write"
            if not seen or seen[-1] != epoch:
                seen.append(epoch)
        return epochs


@pytest.fixture
def cluster(pg_url: str, tmp_path: Path) -> Iterator[Cluster]:
    """Spec, plugin and effect tables in a fresh schema; workers are stopped afterwards."""
    (tmp_path / "chain.saga").write_text(SPEC)
    (tmp_path / "handlers_t.py").write_text(PLUGIN)
    sql(
        pg_url,
        "CREATE TABLE effects (key TEXT PRIMARY KEY, run_id TEXT, step TEXT,"
        " undone BOOLEAN NOT NULL DEFAULT FALSE, undo_count INTEGER NOT NULL DEFAULT 0)",
    )
    sql(pg_url, "CREATE TABLE calls (id BIGSERIAL PRIMARY KEY, key TEXT, kind TEXT, pid INTEGER)")
    sql(pg_url, "CREATE TABLE violations (key TEXT, what TEXT)")
    asyncio.run(PostgresStore(pg_url).migrate())
    c = Cluster(pg_url, tmp_path)
    try:
        yield c
    finally:
        c.stop_all()


def events_of(url: str, run_id: str) -> list[tuple[int, str, str | None, int]]:
    """(seq, kind, step, epoch) of a run's journal."""
    return sql(url, "SELECT seq, kind, step, epoch FROM events WHERE run_id = %s ORDER BY seq", (run_id,))  # type: ignore[return-value]


def step_started(url: str, run_id: str, step: str) -> bool:
    """Whether ``step`` of the run has started."""
    return any(k == "step.started" and s == step for _, k, s, _ in events_of(url, run_id))


def kill_connections(app_prefix: str) -> int:
    """Terminate the server sessions whose application_name starts with ``app_prefix``."""
    rows = sql(
        postgres_dsn(),
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE %s",
        (app_prefix + "%",),
    )
    return len(rows)


# ---- submit ---------------------------------------------------------------------------------------


def test_submit_queues_a_run_and_prints_its_id(cluster: Cluster, runner: CliRunner) -> None:
    (cluster.tmp / "in.json").write_text('{"n": 5}')
    res = runner.invoke(
        main, ["submit", str(cluster.spec), "--input", str(cluster.tmp / "in.json"), "--store", cluster.url]
    )
    assert res.exit_code == 0, res.output
    run_id = res.output.strip()
    assert run_id.startswith("chain-")
    [(status, spec, entry, inp, handlers, owner, epoch)] = sql(
        cluster.url,
        "SELECT status, spec, entry, input, handlers, owner, epoch FROM runs WHERE run_id = %s",
        (run_id,),
    )
    assert (status, entry, inp, owner, epoch) == ("queued", "chain.saga", {"n": 5}, None, 0)
    assert spec == {"chain.saga": SPEC} and handlers == ["t.act", "t.undo"]
    assert events_of(cluster.url, run_id) == []
    # --set, --id and --json; the same id again is a no-op.
    res = runner.invoke(
        main, ["submit", str(cluster.spec), "--set", "n=7", "--id", "mine", "--json", "--store", cluster.url]
    )
    assert res.exit_code == 0 and json.loads(res.output) == {"run_id": "mine", "created": True, "status": "queued"}
    res = runner.invoke(main, ["submit", str(cluster.spec), "--set", "n=8", "--id", "mine", "--store", cluster.url])
    assert res.exit_code == 0 and res.stdout.strip() == "mine"
    assert sql(cluster.url, "SELECT input FROM runs WHERE run_id = 'mine'") == [({"n": 7},)]
    # `sagalang list` (the ops CLI) reads the same store.
    res = runner.invoke(main, ["list", "--store", cluster.url])
    assert res.exit_code == 0 and "mine" in res.output and "queued" in res.output


def test_submit_rejects_bad_input_and_bad_specs(cluster: Cluster, runner: CliRunner) -> None:
    res = runner.invoke(main, ["submit", str(cluster.spec), "--set", "n=oops", "--store", cluster.url])
    assert res.exit_code == 3 and "input.n" in res.output and "Traceback" not in res.output
    (cluster.tmp / "bad.json").write_text('{"n": ')
    res = runner.invoke(
        main, ["submit", str(cluster.spec), "--input", str(cluster.tmp / "bad.json"), "--store", cluster.url]
    )
    assert res.exit_code == 3 and "bad.json:1:" in res.output
    broken = cluster.tmp / "broken.saga"
    broken.write_text(
        'saga x version "1" {\n  step a { do t.act(n: 1) undo t.undo(n: 1) }\n  step a { do t.act() }\n}\n'
    )
    res = runner.invoke(main, ["submit", str(broken), "--store", cluster.url])
    assert res.exit_code == 3 and "broken.saga:3:" in res.output
    assert sql(cluster.url, "SELECT count(*) FROM runs") == [(0,)]
    res = runner.invoke(main, ["worker", "--store", "sqlite:///x.db"])
    assert res.exit_code == 1 and "needs a postgresql:// store" in res.output


# ---- workers ---------------------------------------------------------------------------------------


def test_a_worker_runs_submitted_sagas_and_stops_on_sigterm(cluster: Cluster) -> None:
    cluster.seed, cluster.fail_pct, cluster.flaky_pct = "basic", 25, 20
    ids = cluster.submit(list(range(30)))
    proc = cluster.start_worker("--concurrency", "4", "--lease", "5s")
    cluster.wait_all_terminal(60)
    epochs = cluster.check_invariants(ids)
    assert all(e == [1] for e in epochs.values())  # one worker, one claim per run
    assert {s for s in cluster.statuses().values()} == {"completed", "compensated"}
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 0
    log = cluster.log_of(proc)
    assert "stopped: 30 claimed, 30 finished, 0 lost, 0 handed back" in log
    assert sql(cluster.url, "SELECT count(*) FROM runs WHERE owner IS NOT NULL") == [(0,)]


def test_notify_wakes_an_idle_worker_at_once(cluster: Cluster) -> None:
    proc = cluster.start_worker("--poll", "60s", "--lease", "120s")
    cluster.wait(lambda: "concurrency" in cluster.log_of(proc), 30, "the worker to start")
    time.sleep(1.5)  # idle, sleeping on LISTEN with a 60 s fallback poll
    t0 = time.monotonic()
    [rid] = cluster.submit([1])
    cluster.wait(lambda: cluster.statuses()[rid] == "completed", 10, "the run to complete")
    assert time.monotonic() - t0 < 5.0


def test_cancel_reaches_the_worker_that_owns_the_run(cluster: Cluster, runner: CliRunner) -> None:
    proc = cluster.start_worker("--lease", "30s", T_SLOW="30")
    [rid] = cluster.submit([999])
    cluster.wait(lambda: step_started(cluster.url, rid, "b"), 30, "step b to start")
    t0 = time.monotonic()
    res = runner.invoke(main, ["cancel", rid, "--store", cluster.url, "--timeout", "20"])
    assert res.exit_code == 1, res.output  # cancelled
    assert time.monotonic() - t0 < 10
    events = events_of(cluster.url, rid)
    kinds = [(k, s) for _, k, s, _ in events]
    assert ("saga.cancel_requested", None) in kinds and kinds[-1] == ("saga.cancelled", None)
    assert ("compensation.succeeded", "a") in kinds and ("compensation.succeeded", "b") in kinds
    assert {e for *_, e in events} == {1}  # the owning worker compensated; nobody took over
    assert sql(cluster.url, "SELECT undone FROM effects WHERE key = %s", (f"{rid}/a",)) == [(True,)]
    assert proc.poll() is None


def test_a_killed_workers_runs_are_finished_by_the_others(cluster: Cluster) -> None:
    cluster.seed, cluster.fail_pct, cluster.sleep = "kill", 20, 0.15
    ids = cluster.submit(list(range(24)))
    victim = cluster.start_worker("--concurrency", "6", "--lease", "2s", "--poll", "0.5s", "--worker-id", "victim")
    cluster.wait(
        lambda: (
            sql(
                cluster.url,
                "SELECT count(*) FROM runs r WHERE owner = 'victim' AND EXISTS"
                " (SELECT 1 FROM events e WHERE e.run_id = r.run_id AND e.kind = 'step.started')",
            )[0][0]
            >= 3
        ),
        30,
        "the victim to be mid-run",
    )
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    orphaned = [
        r
        for (r,) in sql(
            cluster.url,
            "SELECT run_id FROM runs WHERE owner = 'victim' AND status <> ALL(%s)",
            (list(TERMINAL_STATES),),
        )
    ]
    assert orphaned
    cluster.start_worker("--concurrency", "4", "--lease", "2s", "--poll", "0.5s", "--worker-id", "rescuer-1")
    cluster.start_worker("--concurrency", "4", "--lease", "2s", "--poll", "0.5s", "--worker-id", "rescuer-2")
    cluster.wait_all_terminal(60)
    epochs = cluster.check_invariants(ids)
    for rid in orphaned:
        assert len(epochs[rid]) >= 2, f"run {rid} was not taken over: {epochs[rid]}"
        kinds = [k for _, k, _, e in events_of(cluster.url, rid) if e == epochs[rid][1]]
        assert kinds[0] == "saga.resumed"


def test_a_stopped_worker_that_lost_its_lease_cannot_write(cluster: Cluster) -> None:
    slow = cluster.start_worker("--lease", "1s", "--poll", "0.3s", "--worker-id", "sleepy", T_SLOW="4")
    [rid] = cluster.submit([999])
    cluster.wait(lambda: step_started(cluster.url, rid, "b"), 30, "step b to start")
    slow.send_signal(signal.SIGSTOP)  # frozen inside step b's handler, lease running out
    try:
        cluster.start_worker("--lease", "1s", "--poll", "0.3s", "--worker-id", "fresh")
        cluster.wait(lambda: cluster.statuses()[rid] == "completed", 30, "the other worker to finish the run")
    finally:
        slow.send_signal(signal.SIGCONT)
    cluster.wait(
        lambda: f"run {rid}" in cluster.log_of(slow) and ("abandon" in cluster.log_of(slow)),
        15,
        "the stale worker to give up",
    )
    time.sleep(0.5)
    events = events_of(cluster.url, rid)
    epochs = cluster.check_invariants([rid])[rid]
    assert epochs[0] == 1 and epochs[-1] >= 2
    assert events[-1][1] == "saga.completed"
    # Nothing of the stale epoch after the takeover: its step.succeeded for b was refused.
    stale_b = [k for _, k, s, e in events if e == 1 and s == "b"]
    assert stale_b == ["step.started"]
    assert slow.poll() is None  # it carries on, fenced off that run


def test_workers_reconnect_after_their_connections_are_killed(cluster: Cluster) -> None:
    cluster.seed, cluster.fail_pct, cluster.flaky_pct, cluster.sleep = "drop", 20, 10, 0.02
    ids = cluster.submit(list(range(60)))
    w1 = cluster.start_worker("--concurrency", "4", "--lease", "10s", "--poll", "0.5s")
    w2 = cluster.start_worker("--concurrency", "4", "--lease", "10s", "--poll", "0.5s")
    cluster.wait(lambda: sum(1 for s in cluster.statuses().values() if s != "queued") >= 8, 30, "runs to start")
    killed = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not all(s in TERMINAL_STATES for s in cluster.statuses().values()):
        killed += kill_connections(f"sagalang-worker-{w1.pid}@") + kill_connections(f"sagalang-worker-{w2.pid}@")
        time.sleep(0.4)
    assert killed >= 4
    cluster.wait_all_terminal(60)
    cluster.check_invariants(ids)
    assert w1.poll() is None and w2.poll() is None
    logs = cluster.log_of(w1) + cluster.log_of(w2)
    assert "connection lost" in logs or "LISTEN connection lost" in logs


def test_sigterm_hands_unfinished_runs_back_at_once(cluster: Cluster) -> None:
    # Long lease and poll: only the hand-back (and its NOTIFY) can make the other worker take over quickly.
    leaving = cluster.start_worker(
        "--lease", "60s", "--poll", "60s", "--grace", "1s", "--worker-id", "leaving", T_SLOW="30"
    )
    [rid] = cluster.submit([999])
    cluster.wait(lambda: step_started(cluster.url, rid, "b"), 30, "step b to start")
    staying = cluster.start_worker("--lease", "60s", "--poll", "60s", "--worker-id", "staying")
    cluster.wait(lambda: "concurrency" in cluster.log_of(staying), 30, "the second worker to start")
    time.sleep(1.0)
    t0 = time.monotonic()
    leaving.send_signal(signal.SIGTERM)
    assert leaving.wait(timeout=15) == 0
    assert time.monotonic() - t0 < 8
    assert f"handed back run {rid}" in cluster.log_of(leaving)
    cluster.wait(lambda: cluster.statuses()[rid] == "completed", 15, "the other worker to finish the run")
    assert time.monotonic() - t0 < 15
    epochs = cluster.check_invariants([rid])[rid]
    assert epochs[0] == 1 and epochs[-1] == 3  # 2 was the hand-back's fence


def test_three_workers_drive_500_runs(cluster: Cluster) -> None:
    cluster.seed, cluster.fail_pct, cluster.flaky_pct = "many", 10, 10
    ids = cluster.submit(list(range(500)), run_id=lambda i: f"r{i:03}-{uuid.uuid4().hex[:6]}")
    for _ in range(3):
        cluster.start_worker("--concurrency", "8", "--lease", "5s", "--poll", "1s")
    cluster.wait_all_terminal(170)
    # Every run ended as its seeded failures dictate, effects exactly once, epochs never interleaved.
    cluster.check_invariants(ids)
    pids = {pid for (pid,) in sql(cluster.url, "SELECT DISTINCT pid FROM calls")}
    assert len(pids) == 3  # the work was shared


# ---- the library, in process -------------------------------------------------------------------------


def test_the_database_refuses_a_driver_whose_run_was_taken_over(cluster: Cluster) -> None:
    """No heartbeat to warn it: the stale driver's next journal write itself is refused."""
    import threading

    from sagalang.plugins import Registry
    from sagalang.worker import Worker, WorkerOptions

    gate = threading.Event()
    calls: list[str] = []

    def act(ctx: Any, n: int) -> dict[str, str]:
        calls.append(f"{ctx.step}:{ctx.attempt}")
        if ctx.step == "b":
            gate.wait(20)
        return {"ok": ctx.step}

    def undo(ctx: Any, n: int) -> None:
        calls.append(f"undo {ctx.step}")

    registry = Registry()
    registry.add("t.act", act)
    registry.add("t.undo", undo)

    async def go() -> tuple[Any, str]:
        store = PostgresStore(cluster.url, application_name="sagalang-test-inproc")
        await store.open()
        try:
            [rid] = [(await submit(store, load(cluster.spec), {"n": 1})).run_id]
            options = WorkerOptions(concurrency=1, lease=30, heartbeat=3600, poll=0.2, grace=5, worker_id="w-inproc")
            worker = Worker(store, registry, options)
            task = asyncio.create_task(worker.run())
            while not step_started(cluster.url, rid, "b"):
                await asyncio.sleep(0.05)
            # Another driver takes the run over behind the worker's back (and holds a long lease).
            await asyncio.to_thread(
                sql,
                cluster.url,
                "UPDATE runs SET epoch = epoch + 1, owner = 'thief',"
                " lease_until = extract(epoch FROM clock_timestamp()) + 3600 WHERE run_id = %s",
                (rid,),
            )
            gate.set()
            while worker.stats.lost == 0:
                await asyncio.sleep(0.05)
            worker.stop()
            return await task, rid
        finally:
            await store.close()

    stats, rid = asyncio.run(go())
    assert stats.lost == 1 and stats.finished == 0
    events = events_of(cluster.url, rid)
    assert [(k, s) for _, k, s, _ in events][-1] == ("step.started", "b")  # its step.succeeded was refused
    assert {e for *_, e in events} == {1}
    assert calls == ["a:1", "b:1"]  # and it called nothing after that: no c, no undo
    [(owner, status)] = sql(cluster.url, "SELECT owner, status FROM runs WHERE run_id = %s", (rid,))
    assert (owner, status) == ("thief", "running")


def test_a_run_this_worker_cannot_load_is_released_and_left_alone(cluster: Cluster) -> None:
    from sagalang.plugins import Registry
    from sagalang.worker import Worker, WorkerOptions

    registry = Registry()
    registry.add("t.act", lambda n: {"n": n})  # no t.undo here: the spec does not validate against it

    async def go() -> tuple[Any, str]:
        store = PostgresStore(cluster.url, application_name="sagalang-test-inproc")
        await store.open()
        try:
            rid = (await submit(store, load(cluster.spec), {"n": 1})).run_id
            worker = Worker(store, registry, WorkerOptions(concurrency=2, lease=30, poll=0.1, worker_id="w-partial"))
            task = asyncio.create_task(worker.run())
            await asyncio.sleep(1.5)
            worker.stop()
            return await task, rid
        finally:
            await store.close()

    stats, rid = asyncio.run(go())
    assert (stats.claimed, stats.failed, stats.finished) == (1, 1, 0)  # tried once, not in a loop
    [(status, owner)] = sql(cluster.url, "SELECT status, owner FROM runs WHERE run_id = %s", (rid,))
    assert (status, owner) == ("queued", None)  # free for a worker that has the handler
    assert events_of(cluster.url, rid) == []
