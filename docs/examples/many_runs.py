"""Many runs in one process: a Coordinator, a bound on runs in flight, and the collector setting for it.

    python many_runs.py [RUNS]      # 10,000 runs of hello.saga, 10 ms per step

The handlers are plain ``async def`` functions without ``ctx``: the
interpreter's cheapest kind of step (it awaits them directly).
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections import Counter
from pathlib import Path

from sagalang.coordinator import Coordinator
from sagalang.plugins import Registry
from sagalang.spec import load

HERE = Path(__file__).resolve().parent
reserved: Counter[str] = Counter()  # the pretend inventory service


async def reserve(sku: str, qty: int) -> dict[str, object]:
    await asyncio.sleep(0.01)  # the service's round trip
    reserved[sku] += qty
    return {"sku": sku, "qty": qty}


async def release(sku: str) -> None:
    await asyncio.sleep(0.01)
    reserved[sku] -= 1


async def main(runs: int, in_flight: int = 5_000) -> Counter[str]:
    """Start ``runs`` runs of hello.saga, at most ``in_flight`` at a time; their statuses."""
    registry = Registry()
    registry.add("inventory.reserve", reserve)
    registry.add("inventory.release", release)
    spec = load(HERE / "hello.saga", registry)
    coordinator = Coordinator(registry=registry, max_concurrency=in_flight)  # journal in memory
    for _ in range(runs):
        await coordinator.start(spec)
    results = await coordinator.wait_all()
    return Counter(result.status for result in results.values())


if __name__ == "__main__":
    # Thousands of runs in flight keep tens of thousands of objects alive, and CPython's
    # collector rescans all of them each time their number grows by a quarter. A service
    # that drives many runs at once makes those full collections ten times rarer:
    gc.set_threshold(700, 10, 100)
    print(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000)))
    print(f"reserved: {dict(reserved)}")
