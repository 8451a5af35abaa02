"""Language benchmarks: parse + validate at 10…10,000 steps, against sismic and
python-statemachine loading equivalent definitions, the json.loads floor, and
whole-process ``sagalang validate`` latency against a bare import of its stack.

Run: ``python bench/bench_language.py [--quick]`` (writes bench/results.json).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import fmt_stat, measure, save, table

from sagalang.project import load_project
from sagalang.validate import validate_project


def saga_source(n: int) -> str:
    """A linear n-step saga; each step: a do with three arguments, an undo, a retry policy."""
    steps = []
    for i in range(n):
        prev = f"s{i - 1}.out" if i else "input.seed"
        steps.append(
            f"    step s{i} {{\n"
            f'        do   svc.op{i % 7}(a: input.x, b: {prev}, c: "v${{input.y}}")\n'
            f'        undo svc.undo(id: input.x, step: "s{i}")\n'
            f"        retry attempts 3 backoff 100ms x2 max 1s\n"
            f"    }}\n"
        )
    return "saga big {\n    input { x: string  y: integer  seed: string }\n\n" + "\n".join(steps) + "}\n"


def sismic_yaml(n: int) -> str:
    """An n-state statechart with the shape of the saga: enter, succeed to the next, fail to undo."""
    lines = ["statechart:", "  name: big", "  root state:", "    name: root", "    initial: s0", "    states:"]
    for i in range(n):
        nxt = f"s{i + 1}" if i + 1 < n else "done"
        lines += [
            f"    - name: s{i}",
            f"      on entry: x = {i}",
            "      transitions:",
            f"      - target: {nxt}",
            "        event: ok",
            "      - target: undo",
            "        event: fail",
            "        action: y = 1",
        ]
    lines += ["    - name: done", "      type: final", "    - name: undo", "      type: final"]
    return "\n".join(lines) + "\n"


def python_statemachine(n: int) -> object:
    """Build an n-state python-statemachine class with the same shape."""
    from statemachine import State, StateMachine

    attrs: dict[str, object] = {}
    states = [State(f"s{i}", initial=(i == 0)) for i in range(n)]
    done = State("done", final=True)
    undo = State("undo", final=True)
    for i, s in enumerate(states):
        attrs[f"s{i}"] = s
    attrs["done"] = done
    attrs["undo"] = undo
    ok = states[0].to(states[1] if n > 1 else done)
    for i in range(1, n):
        ok |= states[i].to(states[i + 1] if i + 1 < n else done)
    fail = states[0].to(undo)
    for i in range(1, n):
        fail |= states[i].to(undo)
    attrs["ok"] = ok
    attrs["fail"] = fail
    return type("Big", (StateMachine,), attrs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (smoke test)")
    args = parser.parse_args()
    sizes = [10, 100] if args.quick else [10, 100, 1000, 10000]
    repeat = 1 if args.quick else 5
    results: dict[str, object] = {}
    rows = []
    tmp = Path(tempfile.mkdtemp(prefix="sagalang-bench-"))
    per_size: dict[int, float] = {}
    for n in sizes:
        path = tmp / f"big{n}.saga"
        path.write_text(saga_source(n))

        def load_and_validate(path: Path = path) -> None:
            project = load_project([path])
            diags = validate_project(project)
            assert not [d for d in diags if d.severity == "error"], diags[:3]

        stat = measure(load_and_validate, repeat=repeat if n < 10000 else max(1, repeat // 2))
        per_size[n] = stat["median"]
        row = {"steps": n, "sagalang": stat}
        floor = None
        try:
            from sagalang.export import export_module

            project = load_project([path])
            sf = next(iter(project.files.values()))
            assert sf.module is not None
            blob = json.dumps(export_module(sf.module))
            floor = measure(lambda blob=blob: json.loads(blob), repeat=repeat)
            row["json_loads_floor"] = floor
        except ImportError:
            pass
        sis = None
        if n <= 1000:
            try:
                from sismic.io import import_from_yaml

                text = sismic_yaml(n)
                sis = measure(lambda text=text: import_from_yaml(text), repeat=max(1, repeat // 2))
                row["sismic"] = sis
            except ImportError:
                pass
            try:
                psm = measure(lambda n=n: python_statemachine(n), repeat=max(1, repeat // 2))
                row["python_statemachine"] = psm
            except ImportError:
                psm = None
        else:
            psm = None
        results[str(n)] = row
        rows.append(
            [
                str(n),
                fmt_stat(stat),
                fmt_stat(sis) if sis else "—",
                f"{stat['median'] / sis['median']:.2f}×" if sis else "—",
                fmt_stat(psm) if psm else "—",
                f"{stat['median'] / psm['median']:.2f}×" if psm else "—",
                fmt_stat(floor) if floor else "—",
            ]
        )
    if 1000 in per_size and 10000 in per_size:
        results["growth_10k_over_1k"] = per_size[10000] / per_size[1000]

    # Whole-process validate latency against the floor of the stack (importing lark, networkx, click).
    spec20 = tmp / "twenty.saga"
    spec20.write_text(saga_source(20))
    exe = Path(sys.executable).parent / "sagalang"
    cli = [str(exe)] if exe.exists() else [sys.executable, "-m", "sagalang"]
    # As users run it: byte-code caches allowed (the warm-up run writes them), for both sides.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}

    # Taken in turns, so that a busy moment of the machine hits both sides; the ratio is the
    # median of the paired ratios.
    def validate_once() -> None:
        subprocess.run([*cli, "validate", str(spec20)], check=True, capture_output=True, env=env)

    def floor_once() -> None:
        subprocess.run([sys.executable, "-c", "import lark, networkx, click"], check=True, env=env)

    pairs = []
    validate_once(), floor_once()  # warm-up: writes the byte-code caches
    for _ in range(max(repeat, 5) * 2):
        t0 = time.perf_counter()
        validate_once()
        t1 = time.perf_counter()
        floor_once()
        pairs.append((t1 - t0, time.perf_counter() - t1))
    ours_s, floor_s = [a for a, _ in pairs], [b for _, b in pairs]
    proc = {"median": statistics.median(ours_s), "min": min(ours_s), "max": max(ours_s), "repeat": len(pairs)}
    floor_proc = {"median": statistics.median(floor_s), "min": min(floor_s), "max": max(floor_s), "repeat": len(pairs)}
    results["process_validate_20"] = proc
    results["process_import_floor"] = floor_proc
    results["process_ratio"] = statistics.median(a / b for a, b in pairs)

    print("## parse + validate (load_project + validate_project)\n")
    print(
        table(
            ["steps", "sagalang", "sismic (YAML)", "ratio", "python-statemachine", "ratio", "json.loads of IR"],
            rows,
        )
    )
    print("\n## whole-process `sagalang validate` of a 20-step spec\n")
    print(
        table(
            ["what", "time", "ratio"],
            [
                ["sagalang validate", fmt_stat(proc), f"{results['process_ratio']:.2f}× (median of paired ratios)"],
                ["python -c 'import lark, networkx, click'", fmt_stat(floor_proc), "1.00×"],
            ],
        )
    )
    if "growth_10k_over_1k" in results:
        print(f"\n10,000-step time / 1,000-step time: {results['growth_10k_over_1k']:.1f}×")
    if not args.quick:
        save("language", results)


if __name__ == "__main__":
    main()
