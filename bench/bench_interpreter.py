"""Interpreter benchmarks: per-step cost against ``transitions``, cost by saga size, and concurrency.

Run: ``python bench/bench_interpreter.py [--quick]`` (prints a table, merges its
figures into bench/results.json under ``interpreter``).

1. Per-step cost of a 10-step linear saga with async no-op handlers on the
   memory store (journal, fold and all, the run's own set-up included), next to
   ``transitions``' cost per transition measured in the same run (a 10-state
   machine driven through its triggers), and python-statemachine's and sismic's
   (the same 10-state cycle, driven by events). Both are CPU time (``process_time``)
   sampled in turns, and the ratio is the median of the paired ratios: on a
   shared machine wall time mostly measures the neighbours. ``transitions`` is
   not a dependency; without it the peer is skipped.
2. The same with sync handlers (each call goes through the thread pool).
3. Cost by saga size: one run of a 1-, 10-, 40- and 100-step saga, split into
   the run's fixed set-up and the cost of each further step (a least-squares line).
4. Concurrency: 1,000 to 10,000 concurrent 5-step sagas whose handlers each
   await 10 ms, each count in a fresh child process: wall time, CPU time, time
   in the garbage collector and peak RSS, next to the same workload in bare
   asyncio (one task per saga, five sleeps). Twice: with CPython's default
   collector settings, and with the collector tuned as a service would
   (``gc.set_threshold(700, 10, 100)``: full collections ten times rarer).
   The ideal is the issue's (50 ms + 50,000 × the per-step cost of 1.), and,
   since that leaves out what the handlers' own sleeps cost asyncio, also the
   bare-asyncio wall time + 50,000 × the per-step cost.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def floor_samplers(steps: int, rounds: int) -> dict[str, Callable[[], float]]:
    """The floors per step: a plain Python call of a no-op, and awaiting an async no-op (in one task)."""
    n = steps * rounds

    def plain() -> float:
        fn = _sync_noop
        t0 = time.process_time()
        for _ in range(n):
            fn()
        return (time.process_time() - t0) / n

    loop = asyncio.new_event_loop()

    async def awaits() -> None:
        fn = _noop
        for _ in range(n):
            await fn()

    def awaited() -> float:
        t0 = time.process_time()
        loop.run_until_complete(awaits())
        return (time.process_time() - t0) / n

    return {"floor: a plain Python call": plain, "floor: awaiting an async no-op": awaited}


def statemachine_sampler(states: int, rounds: int) -> Callable[[], float] | None:
    """python-statemachine's seconds per transition through a ``states``-state cycle (``send("next")``)."""
    try:
        from statemachine import State, StateMachine
    except ImportError:
        return None
    nodes = [State(f"s{i}", initial=(i == 0)) for i in range(states)]
    attrs: dict[str, object] = {f"s{i}": node for i, node in enumerate(nodes)}
    step = nodes[0].to(nodes[1])
    for i in range(1, states):
        step |= nodes[i].to(nodes[(i + 1) % states])
    attrs["next"] = step
    machine = type("Cycle", (StateMachine,), attrs)()
    send = machine.send
    n = rounds * states

    def sample() -> float:
        t0 = time.process_time()
        for _ in range(n):
            send("next")
        return (time.process_time() - t0) / n

    return sample


def sismic_sampler(states: int, rounds: int) -> Callable[[], float] | None:
    """sismic's seconds per transition through a ``states``-state cycle (queue an event, execute it)."""
    try:
        from sismic.interpreter import Interpreter
        from sismic.io import import_from_yaml
    except ImportError:
        return None
    lines = ["statechart:", "  name: cycle", "  root state:", "    name: root", "    initial: s0", "    states:"]
    for i in range(states):
        target = f"s{(i + 1) % states}"
        lines += [f"    - name: s{i}", "      transitions:", f"      - target: {target}", "        event: next"]
    interpreter = Interpreter(import_from_yaml("\n".join(lines) + "\n"))
    interpreter.execute_once()
    n = rounds * states

    def sample() -> float:
        t0 = time.process_time()
        for _ in range(n):
            interpreter.queue("next")
            interpreter.execute_once()
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


GC_MODES = {
    "default": None,  # CPython's settings: (700, 10, 10)
    "tuned": (700, 10, 100),  # full collections ten times rarer, as a service with many runs in flight sets it
}


def _gc_timer() -> tuple[dict[str, float], list[float]]:
    """Seconds spent in the cyclic garbage collector from now on, and each full collection's (gc.callbacks)."""
    spent = {"seconds": 0.0, "full": 0.0}
    fulls: list[float] = []
    started = [0.0]

    def cb(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            took = time.perf_counter() - started[0]
            spent["seconds"] += took
            if info.get("generation") == 2:
                spent["full"] += took
                fulls.append(took)

    gc.callbacks.append(cb)
    return spent, fulls


def objects_per_saga(sagas: int) -> dict[str, object]:
    """Objects the garbage collector tracks for each run: in flight (mid-step) and after it ended.

    The profile behind the concurrency figure: a full collection visits every
    tracked object, so its cost grows with these counts times the runs alive.
    """
    import collections

    spec, registry = _spec(_linear(5, "b.sleep")), _registry()

    def census() -> collections.Counter[str]:
        gc.collect()
        return collections.Counter(type(o).__name__ for o in gc.get_objects())

    async def go() -> dict[str, object]:
        coord = Coordinator(MemoryStore(), registry)
        await coord.start(spec, {})
        await coord.wait_all()
        base = census()
        for _ in range(sagas):
            await coord.start(spec, {})
        await asyncio.sleep(0.025)  # every run is inside its third step
        during = census() - base
        await coord.wait_all()
        after = census() - base
        return {
            "in_flight": sum(during.values()) / sagas,
            "after": sum(after.values()) / sagas,
            "in_flight_by_type": {k: round(v / sagas, 2) for k, v in during.most_common(12)},
            "after_by_type": {k: round(v / sagas, 2) for k, v in after.most_common(8)},
        }

    gc.disable()  # census only: nothing may be collected behind its back
    try:
        return asyncio.run(go())
    finally:
        gc.enable()


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


def child(what: str, sagas: int, mode: str) -> None:
    """One concurrency measurement in this (fresh) process; prints it as JSON."""
    thresholds = GC_MODES[mode]
    if thresholds is not None:
        gc.set_threshold(*thresholds)
    if what == "objects":
        print(json.dumps(objects_per_saga(sagas)))
        return
    spent, fulls = _gc_timer()
    cpu0 = time.process_time()
    if what == "asyncio":
        out: dict[str, float] = {"wall": asyncio_floor(sagas, 5)}
    else:
        out = concurrent(_spec(_linear(5, "b.sleep")), _registry(), sagas)
    out["cpu"] = time.process_time() - cpu0
    out["gc_seconds"] = spent["seconds"]
    out["gc_full_seconds"] = spent["full"]
    out["gc_full_collections"] = len(fulls)
    out["gc_full_ms"] = [round(x * 1000, 1) for x in fulls]  # type: ignore[assignment]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))


def in_child(what: str, sagas: int, mode: str) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter: every count starts from the same heap."""
    proc = subprocess.run(
        [sys.executable, __file__, "--child", what, str(sagas), mode],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def by_size(registry: Registry, sizes: list[int], runs: int, repeat: int) -> dict[str, object]:
    """CPU time of one run by saga size, and the line through it: fixed set-up + cost per step."""
    per_saga: dict[str, dict[str, float]] = {}
    for n in sizes:
        sampler = per_step_sampler(_spec(_linear(n, "b.noop")), registry, n, max(runs // n, 20))
        sampler()  # warm-up
        per_saga[str(n)] = stat([sampler() * n for _ in range(repeat)])
    xs = [float(n) for n in sizes]
    ys = [per_saga[str(n)]["median"] for n in sizes]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)
    return {"per_saga": per_saga, "fixed": my - slope * mx, "per_step": slope}


def _spread(c: dict[str, Any], key: str) -> str:
    """``median (min–max)`` of a concurrency figure."""
    return f"{fmt_time(c[key])} ({fmt_time(c[key + '_min'])}–{fmt_time(c[key + '_max'])})"


def main() -> None:
    """Measure, print the table, merge into results.json."""
    if "--child" in sys.argv:
        i = sys.argv.index("--child")
        child(sys.argv[i + 1], int(sys.argv[i + 2]), sys.argv[i + 3])
        return
    quick = "--quick" in sys.argv
    repeat = 3 if quick else 7
    registry = _registry()
    linear = _spec(_linear(10, "b.noop"))
    linear_sync = _spec(_linear(10, "b.sync"))
    sagas = 100 if quick else 300

    samplers: dict[str, Callable[[], float]] = {
        "ours": per_step_sampler(linear, registry, 10, sagas),
        # Sync handlers wait for the thread pool: wall time, not CPU time.
        "sync": per_step_sampler(linear_sync, registry, 10, sagas // 4, time.perf_counter),
    }
    peer_sampler = transitions_sampler(10, 200 if quick else 1000)
    if peer_sampler is not None:
        samplers["peer"] = peer_sampler
    others = {
        "python-statemachine": statemachine_sampler(10, 10 if quick else 100),
        "sismic": sismic_sampler(10, 10 if quick else 100),
    }
    for label, sampler in others.items():
        if sampler is not None:
            samplers[label] = sampler
    floors = floor_samplers(10, 2_000 if quick else 20_000)
    samplers.update(floors)
    samples = interleaved(samplers, repeat)
    ours, ours_sync = stat(samples["ours"]), stat(samples["sync"])
    peer = stat(samples["peer"]) if "peer" in samples else None
    # Only ratios of samples taken side by side count on a noisy machine.
    ratios = [a / b for a, b in zip(samples["ours"], samples.get("peer", []), strict=False)]
    sizes = by_size(registry, [1, 10] if quick else [1, 10, 40, 100], 300 if quick else 3000, repeat)

    rows = [["sagalang, async no-op step (memory store)", fmt_stat(ours), ""]]
    data: dict[str, object] = {"step_async": ours, "step_sync": ours_sync, "by_size": sizes}
    if peer is not None:
        ratio = statistics.median(ratios)
        rows[0][2] = f"{ratio:.2f}× transitions (median of paired ratios, {min(ratios):.2f}–{max(ratios):.2f})"
        rows.append(["transitions 0.9, per transition", fmt_stat(peer), "1.00×"])
        data["transitions_per_transition"] = peer
        data["ratio_vs_transitions"] = ratio
    else:
        rows.append(["transitions", "not installed: peer skipped", ""])
    for label in others:
        if label not in samples:
            rows.append([label, "not installed: peer skipped", ""])
            continue
        other = stat(samples[label])
        paired = [a / b for a, b in zip(samples["ours"], samples[label], strict=False)]
        rows.append(
            [
                f"{label}, per transition",
                fmt_stat(other),
                f"sagalang's step: {statistics.median(paired):.2f}× this (median of paired ratios)",
            ]
        )
        data[f"{label.replace('-', '_')}_per_transition"] = other
        data[f"ratio_vs_{label.replace('-', '_')}"] = statistics.median(paired)
    for label in floors:
        fl = stat(samples[label])
        paired = [a / b for a, b in zip(samples["ours"], samples[label], strict=False)]
        rows.append([label, fmt_stat(fl), f"sagalang's step: {statistics.median(paired):.0f}× this"])
        key = "floor_plain_call" if "plain" in label else "floor_await_noop"
        data[key] = fl
    rows.append(["sagalang, sync no-op step (thread pool)", fmt_stat(ours_sync), ""])
    per_size = sizes["per_saga"]
    assert isinstance(per_size, dict)
    for n, st in per_size.items():
        rows.append([f"one run of a {n}-step saga (async no-op)", fmt_stat(st), ""])
    rows.append(
        [
            "… as a line: set-up + steps × per step",
            f"{fmt_time(float(sizes['fixed']))} + n × {fmt_time(float(sizes['per_step']))}",  # type: ignore[arg-type]
            "",
        ]
    )

    counts = [500, 2_000] if quick else [1_000, 2_500, 5_000, 10_000]
    conc_repeat = 1 if quick else 3
    per_step = ours["median"]
    conc: dict[str, dict[str, dict[str, float]]] = {}
    for mode in GC_MODES:
        conc[mode] = {}
        for n in counts:
            # Each sample a fresh pair of processes, the floor and sagalang in turns; the
            # sample with the median wall time speaks for its count, with the spread beside it.
            pairs = [(in_child("asyncio", n, mode), in_child("sagalang", n, mode)) for _ in range(conc_repeat)]
            floors = sorted(f["wall"] for f, _ in pairs)
            ours_n = sorted((o for _, o in pairs), key=lambda o: float(o["wall"]))[len(pairs) // 2]
            floor = {"wall": statistics.median(floors)}
            floor_gc = statistics.median(f["gc_seconds"] for f, _ in pairs)
            ideal = 0.050 + n * 5 * per_step
            ideal_h = floor["wall"] + n * 5 * per_step
            conc[mode][str(n)] = {
                **ours_n,
                "wall_min": min(o["wall"] for _, o in pairs),
                "wall_max": max(o["wall"] for _, o in pairs),
                "repeat": len(pairs),
                "asyncio_floor": floor["wall"],
                "asyncio_floor_min": floors[0],
                "asyncio_floor_max": floors[-1],
                "asyncio_floor_gc_seconds": floor_gc,
                "ideal": ideal,
                "ratio_vs_ideal": ours_n["wall"] / ideal,
                "ideal_with_handlers": ideal_h,
                "ratio_vs_ideal_with_handlers": ours_n["wall"] / ideal_h,
            }
    top = str(counts[-1])
    for mode in GC_MODES:
        c = conc[mode][top]
        label = "default GC" if mode == "default" else "GC tuned: gc.set_threshold(700, 10, 100)"
        rows.append(
            [
                f"{int(top):,} concurrent 5-step sagas, 10 ms handlers ({label})",
                _spread(c, "wall"),
                f"{c['ratio_vs_ideal']:.2f}× ideal ({fmt_time(c['ideal'])}); "
                f"{c['ratio_vs_ideal_with_handlers']:.2f}× ideal with the handlers' own cost "
                f"({fmt_time(c['ideal_with_handlers'])}); GC {fmt_time(c['gc_seconds'])}; "
                f"peak RSS {c['peak_rss_mb']:.0f} MB",
            ]
        )
        rows.append(
            [
                f"same workload in bare asyncio ({label})",
                _spread(c, "asyncio_floor"),
                f"{c['asyncio_floor'] / c['ideal']:.2f}× ideal",
            ]
        )
    data["concurrency"] = conc
    data["objects_per_saga"] = objects = in_child("objects", 500 if quick else 2_000, "default")
    # The headline figure of the issue: the largest count, default settings.
    data["concurrent"] = {"sagas": int(top), **conc["default"][top]}
    data["concurrent_tuned"] = {"sagas": int(top), **conc["tuned"][top]}
    print(table(["what", "median (min–max)", "compared"], rows))
    print()
    sweep = [["sagas", "GC", "sagalang", "bare asyncio", "ideal", "ideal + handlers", "ratio", "GC time", "peak RSS"]]
    for mode in GC_MODES:
        for n, c in conc[mode].items():
            sweep.append(
                [
                    f"{int(n):,}",
                    mode,
                    _spread(c, "wall"),
                    _spread(c, "asyncio_floor"),
                    fmt_time(c["ideal"]),
                    fmt_time(c["ideal_with_handlers"]),
                    f"{c['ratio_vs_ideal']:.2f}× / {c['ratio_vs_ideal_with_handlers']:.2f}×",
                    fmt_time(c["gc_seconds"]),
                    f"{c['peak_rss_mb']:.0f} MB",
                ]
            )
    print("## Concurrency sweep")
    print()
    print(table(sweep[0], sweep[1:]))
    print()
    print("## Where the concurrency time goes")
    print()
    prof = [["what", "measured"]]
    for mode in GC_MODES:
        c = conc[mode][top]
        prof.append(
            [
                f"{int(top):,} sagas, {mode} GC: full collections (ms each)",
                f"{c['gc_full_collections']}: {', '.join(f'{x:g}' for x in c['gc_full_ms'])}",
            ]
        )
        prof.append(
            [
                f"{int(top):,} sagas, {mode} GC: time in the collector / CPU time",
                f"{fmt_time(c['gc_seconds'])} of {fmt_time(c['cpu'])}",
            ]
        )
    for key, label in (("in_flight", "objects the GC tracks per run in flight"), ("after", "… per run once ended")):
        kinds = ", ".join(f"{k} {v:g}" for k, v in objects[f"{key}_by_type"].items())
        prof.append([label, f"{objects[key]:.1f} ({kinds})"])
    print(table(prof[0], prof[1:]))
    if not quick:
        save("interpreter", data)


if __name__ == "__main__":
    main()
