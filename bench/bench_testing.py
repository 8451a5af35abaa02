"""`sagalang test` speed: failure points explored per second, per example (fake handlers).

Run: ``python bench/bench_testing.py [--quick]`` (writes bench/results.json).
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import fmt_stat, save, table

from sagalang.testing import explore_file

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="one example, one repeat (smoke test)")
    args = parser.parse_args()
    examples = sorted((ROOT / "specs" / "examples").glob("*.saga"))
    if args.quick:
        examples = examples[:1]
    repeat = 1 if args.quick else 5
    rows = []
    results: dict[str, object] = {}
    for path in examples:
        explore_file(path)  # warm-up: imports, the plugin's modules, the spec's caches
        reports = [explore_file(path) for _ in range(repeat)]
        times = [r.seconds for r in reports]
        points = len(reports[0].outcomes)
        seconds = statistics.median(times)
        rate = points / seconds
        results[path.stem] = {
            "failure_points": points,
            "seconds": seconds,
            "min": min(times),
            "max": max(times),
            "repeat": repeat,
            "points_per_second": rate,
            "ok": all(r.ok for r in reports),
        }
        spread = {"median": seconds, "min": min(times), "max": max(times)}
        ok = "yes" if all(r.ok for r in reports) else "NO"
        rows.append([path.stem, str(points), fmt_stat(spread), f"{rate:.0f}/s", ok])
    print(f"## `sagalang test` (fake handlers, median of {repeat} after a warm-up)\n")
    print(table(["example", "failure points", "time (min–max)", "points per second", "all invariants held"], rows))
    if not args.quick:
        save("testing", results)


if __name__ == "__main__":
    main()
