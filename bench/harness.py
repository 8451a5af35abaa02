"""Shared benchmark plumbing: warm-up + repeats, median and spread, results.json merging.

Every figure is a median with its spread (min..max over the repeats), and
every comparison is a ratio of two figures measured in the same run.
"""

from __future__ import annotations

import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results.json"


def measure(fn: Callable[[], object], repeat: int = 7, warmup: int = 1, number: int = 1) -> dict[str, float]:
    """Time ``fn`` (called ``number`` times per repeat); seconds per call: median, min, max."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples), "repeat": repeat}


def fmt_time(seconds: float) -> str:
    """A duration with a sensible unit."""
    if seconds < 1e-6:
        return f"{seconds * 1e9:.0f} ns"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.2f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def fmt_stat(stat: dict[str, float]) -> str:
    """``median (min–max)``."""
    return f"{fmt_time(stat['median'])} ({fmt_time(stat['min'])}–{fmt_time(stat['max'])})"


def table(headers: list[str], rows: list[list[str]]) -> str:
    """A Markdown table."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=False)]
    line = lambda cells: "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=False)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(line(r) for r in rows)])


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    import os

    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
    }


def save(section: str, data: dict[str, Any]) -> None:
    """Merge ``data`` under ``section`` into bench/results.json."""
    doc: dict[str, Any] = {}
    if RESULTS.exists():
        try:
            doc = json.loads(RESULTS.read_text())
        except json.JSONDecodeError:
            doc = {}
    doc.setdefault("machine", machine())
    doc[section] = {"measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **data}
    RESULTS.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
