"""Interpreter benchmarks: per-step cost against ``transitions``, and 10,000 concurrent sagas.

Run: ``python bench/bench_interpreter.py [--quick]`` (prints a table, merges its
figures into bench/results.json under ``interpreter``).

1. Per-step cost of a 10-step linear saga with async no-op handlers on the
   memory store (journal, fold and all, the run's own set-up included), next to
   ``transitions``' cost per transition measured in the same run (a 10-state
   machine driven through its triggers). Both are CPU time (``process_time``)
   sampled in turns, and the ratio is the median of the paired ratios: on a
   shared machine wall time mostly measures the neighbours. ``transitions`` is
   not a dependency; without it the peer is skipped.
2. The same with sync handlers (each call goes through the thread pool).
3. 10,000 concurrent 5-step sagas whose handlers each await 10 ms: wall time
   against the ideal (50 ms + 50,000 × per-step cost) and peak RSS.
"""

from __future__ import annotations

import asyncio
import gc
import resource
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness import fmt_stat, fmt_time, save, table

from sagalang.coordinator import Coordinator
from sagalang.interpreter import run
from sagalang.journal.memory import MemoryStore
from sagalang.plugins import Registry
from sagalang.spec import Spec, load


def _linear(n: int, handler: str) -> str:
    steps = "\n".join(f"    step s{i} {{ do {handler}() }}" for i in range(n))
    return f'saga bench version "1" {{\n{steps}\n}}\n'


def _spec(text: str) -> Spec:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.saga"
        path.write_text(text)
        return load(path)


async def _noop() -> None:
    return None


def _sync_noop() -> None:
    return None


async def _sleep10() -> None:
    await asyncio.sleep(0.01)


def _registry() -> Registry:
    reg = Registry()
    reg.add("b.noop", _noop)
    reg.add("b.sync", _sync_noop)
    reg.add("b.sleep", _sleep10)
    return reg


def per_step_sampler(
    spec: Spec, registry: Registry, steps: int, sagas: int, clock: Callable[[], float] = time.process_time
) -> Callable[[], float]:
    """One sample: seconds per step over ``sagas`` runs of a ``steps``-step saga in one event loop."""
    loop = asyncio.new_event_loop()

    async def batch() -> None:
        store = MemoryStore()
        for _ in range(sagas):
            await run(spec, {}, store=store, registry=registry)

    def sample() -> float:
        t0 = clock()
        loop.run_until_complete(batch())
        return (clock() - t0) / (steps * sagas)

    return sample


def transitions_sampler(states: int, rounds: int) -> Callable[[], float] | None:
    """One sample: ``transitions``' seconds per transition through a ``states``-state linear machine."""
    try:
        from transitions import Machine
    except ImportError:
        return None
    names = [f"s{i}" for i in range(states)]
    trans = [{"trigger": "next", "source": names[i], "dest": names[i + 1]} for i in range(states - 1)]
    trans.append({"trigger": "next", "source": names[-1], "dest": names[0]})

    class Model:
        pass

    model = Model()
    Machine(model=model, states=names, transitions=trans, initial=names[0])
    step = model.next  # type: ignore[attr-defined]
    n = rounds * states

    def sample() -> float:
        t0 = time.process_time()
        for _ in range(n):
            step()
        return (time.process_time() - t0) / n

    return sample


def interleaved(samplers: dict[str, Callable[[], float]], repeat: int) -> dict[str, list[float]]:
    """Samples of each sampler, taken in turns so that machine noise hits all of them alike."""
    for fn in samplers.values():
        fn()  # warm-up
    out: dict[str, list[float]] = {k: [] for k in samplers}
    for _ in range(repeat):
        for k, fn in samplers.items():
            out[k].append(fn())
    return out


def stat(samples: list[float]) -> dict[str, float]:
    """Median, min and max of ``samples``."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "repeat": len(samples)}


def concurrent(spec: Spec, registry: Registry, sagas: int) -> dict[str, float]:
    """Wall time of ``sagas`` concurrent runs of ``spec`` through a Coordinator."""

    async def go() -> float:
        coord = Coordinator(MemoryStore(), registry)
        t0 = time.perf_counter()
        for _ in range(sagas):
            await coord.start(spec, {})
        results = await coord.wait_all()
        wall = time.perf_counter() - t0
        bad = [r.status for r in results.values() if r.status != "completed"]
        if bad:
            raise SystemExit(f"{len(bad)} sagas did not complete: {bad[:3]}")
        return wall

    gc.collect()
    wall = asyncio.run(go())
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"wall": wall, "peak_rss_mb": rss_mb}


def asyncio_floor(sagas: int, steps: int) -> float:
    """Wall time of the same workload in bare asyncio (one task per saga, ``steps`` sleeps of 10 ms)."""

    async def one() -> None:
        for _ in range(steps):
            await asyncio.sleep(0.01)

    async def go() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(sagas)))
        return time.perf_counter() - t0

    return asyncio.run(go())


def main() -> None:
    """Measure, print the table, merge into results.json."""
    quick = "--quick" in sys.argv
    repeat = 3 if quick else 7
    registry = _registry()
    linear = _spec(_linear(10, "b.noop"))
    linear_sync = _spec(_linear(10, "b.sync"))
    five = _spec(_linear(5, "b.sleep"))
    sagas = 100 if quick else 300

    samplers: dict[str, Callable[[], float]] = {
        "ours": per_step_sampler(linear, registry, 10, sagas),
        # Sync handlers wait for the thread pool: wall time, not CPU time.
        "sync": per_step_sampler(linear_sync, registry, 10, sagas // 4, time.perf_counter),
    }
    peer_sampler = transitions_sampler(10, 200 if quick else 1000)
    if peer_sampler is not None:
        samplers["peer"] = peer_sampler
    samples = interleaved(samplers, repeat)
    ours, ours_sync = stat(samples["ours"]), stat(samples["sync"])
    peer = stat(samples["peer"]) if "peer" in samples else None
    # Only ratios of samples taken side by side count on a noisy machine.
    ratios = [a / b for a, b in zip(samples["ours"], samples.get("peer", []))]
    n_conc = 2_000 if quick else 10_000
    floor = asyncio_floor(n_conc, 5)
    conc = concurrent(five, registry, n_conc)
    ideal = 0.050 + n_conc * 5 * ours["median"]

    rows = [["sagalang, async no-op step (memory store)", fmt_stat(ours), ""]]
    data: dict[str, object] = {"step_async": ours, "step_sync": ours_sync}
    if peer is not None:
        ratio = statistics.median(ratios)
        rows[0][2] = f"{ratio:.2f}× transitions (median of paired ratios, {min(ratios):.2f}–{max(ratios):.2f})"
        rows.append(["transitions 0.9, per transition", fmt_stat(peer), "1.00×"])
        data["transitions_per_transition"] = peer
        data["ratio_vs_transitions"] = ratio
    else:
        rows.append(["transitions", "not installed: peer skipped", ""])
    rows.append(["sagalang, sync no-op step (thread pool)", fmt_stat(ours_sync), ""])
    rows.append(
        [
            f"{n_conc:,} concurrent 5-step sagas, 10 ms handlers",
            fmt_time(conc["wall"]),
            f"{conc['wall'] / ideal:.2f}× ideal ({fmt_time(ideal)}), peak RSS {conc['peak_rss_mb']:.0f} MB",
        ]
    )
    rows.append(["same workload in bare asyncio (the floor)", fmt_time(floor), f"{floor / ideal:.2f}× ideal"])
    data["concurrent"] = {
        "sagas": n_conc,
        **conc,
        "ideal": ideal,
        "ratio_vs_ideal": conc["wall"] / ideal,
        "asyncio_floor": floor,
    }
    print(table(["what", "median (min–max)", "compared"], rows))
    if not quick:
        save("interpreter", data)


if __name__ == "__main__":
    main()
