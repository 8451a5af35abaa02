"""`make bench`: every benchmark in one run, then docs/benchmarks.md from the figures.

Each ``bench/bench_*.py`` prints its Markdown tables and merges its figures into
``bench/results.json``; this driver runs them one after the other (so they do
not compete for the two cores), collects the tables and writes the page.

    python bench/run_all.py            # full run: results.json + docs/benchmarks.md
    python bench/run_all.py --quick    # tiny sizes, nothing written (the smoke test)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCHES = [
    "bench_language",
    "bench_interpreter",
    "bench_durable",
    "bench_postgres",
    "bench_testing",
    "bench_lsp",
    "bench_ui",
]
TITLES = {
    "bench_language": "Language: parse + validate",
    "bench_interpreter": "Interpreter: per-step cost and concurrency",
    "bench_durable": "Durable journal on SQLite",
    "bench_postgres": "PostgreSQL workers",
    "bench_testing": "`sagalang test`",
    "bench_lsp": "Editor: `sagalang lsp`",
    "bench_ui": "Web view (`sagalang ui`)",
}


def run(name: str, quick: bool) -> tuple[int, str, float]:
    """Run one benchmark script; returns its exit code, its output and how long it took."""
    cmd = [sys.executable, str(HERE / f"{name}.py"), *(["--quick"] if quick else [])]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONHASHSEED": "0"})
    return proc.returncode, proc.stdout + (proc.stderr if proc.returncode else ""), time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="tiny sizes; write nothing")
    parser.add_argument("--only", action="append", default=[], help="run only these benchmarks (by file stem)")
    args = parser.parse_args()
    outputs: dict[str, str] = {}
    failed = []
    for name in BENCHES:
        if args.only and name not in args.only:
            continue
        code, out, secs = run(name, args.quick)
        print(f"== {name} ({secs:.1f}s){' FAILED' if code else ''}", flush=True)
        print(out, flush=True)
        outputs[name] = out
        if code:
            failed.append(name)
    if not args.quick:
        from report import write_page

        results = json.loads((HERE / "results.json").read_text()) if (HERE / "results.json").exists() else {}
        tables_file = HERE / "tables.json"
        # A partial run (--only) keeps the other benchmarks' last tables.
        tables = json.loads(tables_file.read_text()) if tables_file.exists() else {}
        tables.update({k: v for k, v in outputs.items() if k not in failed})
        tables_file.write_text(json.dumps(tables, indent=2, sort_keys=True) + "\n")
        write_page(results, tables)
    if failed:
        print("failed: " + ", ".join(failed), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
