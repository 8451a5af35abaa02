"""Language server benchmarks: from an edit to the published diagnostics on a 1,000-step file,
and the server's memory with the examples open.

The server runs as editors run it (``sagalang lsp`` in its own process, over
stdio, the default debounce); the clock starts when the edit is sent and stops
when the diagnostics for that version arrive.

Run: ``python bench/bench_lsp.py [--quick]`` (writes bench/results.json).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_language import saga_source
from harness import fmt_stat, save, table
from lsp_client import LspClient

from sagalang.lsp.server import DEFAULT_DEBOUNCE
from sagalang.project import load_project
from sagalang.validate import validate_project

ROOT = Path(__file__).resolve().parent.parent


def _rss_mb(pid: int) -> tuple[float, float]:
    """The process's resident memory now and at its peak, in MB (from /proc)."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def _stat(samples: list[float]) -> dict[str, float]:
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "repeat": len(samples)}


def edit_latency(steps: int, edits: int) -> tuple[dict[str, float], dict[str, float]]:
    """Seconds from a didChange to the diagnostics of that version, over ``edits`` edits.

    In turns with each edit, the same file is loaded and validated in this process (what
    ``sagalang validate`` does, without starting Python): the floor the server cannot beat.
    """
    folder = Path(tempfile.mkdtemp(prefix="sagalang-bench-lsp-"))
    path = folder / "big.saga"
    text = saga_source(steps)
    path.write_text(text, encoding="utf-8")
    # The edit: a string argument of the middle step, typed character by character and rubbed out.
    needle = f'step: "s{steps // 2}"'
    at = text.index(needle) + len(needle) - 1
    line = text.count("\n", 0, at)
    col = at - (text.rfind("\n", 0, at) + 1)
    client = LspClient(folder)
    samples = []
    floors = []
    try:
        client.initialize(folder)
        uri = client.open(path)
        client.diagnostics(uri, 1)
        validate_project(load_project([path]), None)  # warm-up: the parser is built once per process
        for version in range(2, edits + 2):
            where = {"line": line, "character": col}
            rng = (
                {"start": where, "end": where}
                if version % 2 == 0
                else {"start": where, "end": {**where, "character": col + 1}}
            )
            start = client.mark()
            t0 = time.perf_counter()
            client.change(uri, version, "x" if version % 2 == 0 else "", rng)
            diags = client.diagnostics(uri, version, start)
            samples.append(time.perf_counter() - t0)
            assert not [d for d in diags if d["severity"] == 1], diags[:3]
            t0 = time.perf_counter()
            validate_project(load_project([path]), None)
            floors.append(time.perf_counter() - t0)
    finally:
        client.close()
    return _stat(samples), _stat(floors)


def memory_with_examples() -> dict[str, float]:
    """The server's memory after opening every example spec and getting its diagnostics."""
    client = LspClient(ROOT)
    try:
        client.initialize(ROOT)
        idle, _ = _rss_mb(client.proc.pid)
        files = sorted((ROOT / "specs" / "examples").rglob("*.saga"))
        for path in files:
            start = client.mark()
            client.diagnostics(client.open(path), 1, start)
        rss, peak = _rss_mb(client.proc.pid)
    finally:
        client.close()
    return {"idle_mb": idle, "rss_mb": rss, "peak_mb": peak, "files": len(files)}


def main() -> None:
    """Measure, print the table and (unless --quick) save the figures."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="a small file, few edits (smoke test)")
    args = parser.parse_args()
    steps, edits = (50, 3) if args.quick else (1000, 21)
    latency, floor = edit_latency(steps, edits)
    memory = memory_with_examples()
    print("## Editor: edit to diagnostics, memory\n")
    rows = [
        [
            f"edit → published diagnostics, {steps:,}-step file (debounce {DEFAULT_DEBOUNCE * 1000:.0f} ms included)",
            fmt_stat(latency),
        ],
        ["… load + validate of the same file in one process (the floor), in turns", fmt_stat(floor)],
        [
            "… the server's own share (median edit time − median floor − debounce)",
            f"{(latency['median'] - floor['median'] - DEFAULT_DEBOUNCE) * 1000:.1f} ms",
        ],
        ["… edit time / floor", f"{latency['median'] / floor['median']:.2f}×"],
        [f"server memory with the {memory['files']} example files open (RSS)", f"{memory['rss_mb']:.0f} MB"],
        ["… peak RSS / idle after start", f"{memory['peak_mb']:.0f} MB / {memory['idle_mb']:.0f} MB"],
    ]
    print(table(["what", "measured"], rows))
    if not args.quick:
        save(
            "lsp",
            {
                "steps": steps,
                "debounce_s": DEFAULT_DEBOUNCE,
                "edit_to_diagnostics": latency,
                "validate_floor": floor,
                "memory": memory,
            },
        )


if __name__ == "__main__":
    main()
