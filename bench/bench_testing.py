"""`sagalang test` speed: failure points explored per second, per example (fake handlers).

Run: ``python bench/bench_testing.py [--quick]`` (writes bench/results.json).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import fmt_time, save, table

from sagalang.testing import explore_file

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="one example, one repeat (smoke test)")
    args = parser.parse_args()
    examples = sorted((ROOT / "specs" / "examples").glob("*.saga"))
    if args.quick:
        examples = examples[:1]
    rows = []
    results: dict[str, object] = {}
    for path in examples:
        best = None
        for _ in range(1 if args.quick else 3):
            report = explore_file(path)
            if best is None or report.seconds < best.seconds:
                best = report
        assert best is not None
        rate = len(best.outcomes) / best.seconds
        results[path.stem] = {
            "failure_points": len(best.outcomes),
            "seconds": best.seconds,
            "points_per_second": rate,
            "ok": best.ok,
        }
        rows.append(
            [path.stem, str(len(best.outcomes)), fmt_time(best.seconds), f"{rate:.0f}/s", "yes" if best.ok else "NO"]
        )
    print("## `sagalang test` (fake handlers, best of 3)\n")
    print(table(["example", "failure points", "time", "points per second", "all invariants held"], rows))
    if not args.quick:
        save("testing", results)


if __name__ == "__main__":
    main()
