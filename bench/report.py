"""docs/benchmarks.md from bench/results.json and the tables the benchmarks printed.

Called by ``bench/run_all.py`` after a full run; ``python bench/report.py``
rebuilds the page from the last results without measuring again.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PAGE = ROOT / "docs" / "benchmarks.md"
IMG = ROOT / "docs" / "img"


def _get(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict) or k not in d:
            return None
        d = d[k]
    return d


def _ms(x: float | None) -> str:
    return "—" if x is None else f"{x * 1000:.1f} ms"


def _us(x: float | None) -> str:
    return "—" if x is None else f"{x * 1e6:.1f} µs"


def _ratio(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}×"


def targets(r: dict[str, Any]) -> list[list[str]]:
    """Each target of the issues, the figure measured against it and whether it is met."""
    rows: list[list[str]] = []

    def row(what: str, target: str, value: str, met: bool | None) -> None:
        rows.append([what, target, value, "—" if met is None else ("met" if met else "**missed**")])

    lang = r.get("language", {})
    s1k = _get(lang, "1000", "sagalang", "median")
    sis = _get(lang, "1000", "sismic", "median")
    if s1k and sis:
        row("parse + validate 1,000 steps vs sismic", "≤ 0.5×", _ratio(s1k / sis), s1k / sis <= 0.5)
    growth = lang.get("growth_10k_over_1k")
    if growth:
        row("10,000-step time / 1,000-step time", "≤ 12×", _ratio(growth), growth <= 12)
    proc = lang.get("process_ratio")
    if proc:
        row("whole-process `validate` (20 steps) vs importing lark+networkx+click", "≤ 1.5×", _ratio(proc), proc <= 1.5)
    interp = r.get("interpreter", {})
    rv = interp.get("ratio_vs_transitions")
    if rv:
        row("per-step cost, async no-op, memory store vs transitions", "≤ 1.0× (aim 0.5×)", _ratio(rv), rv <= 1.0)
    for key, label in (("python_statemachine", "python-statemachine"), ("sismic", "sismic")):
        other = interp.get(f"ratio_vs_{key}")
        if other:
            row(f"… vs {label} (per transition)", "report", _ratio(other), None)
    conc = interp.get("concurrent", {})
    if conc:
        n = conc.get("sagas", 0)
        rvi = conc.get("ratio_vs_ideal")
        row(
            f"{n:,} concurrent 5-step sagas: wall vs the issue's ideal (50 ms + steps × per-step cost)",
            "≤ 1.5×",
            _ratio(rvi),
            rvi is not None and rvi <= 1.5,
        )
        rvh = conc.get("ratio_vs_ideal_with_handlers")
        if rvh is not None:
            row(
                "… vs the ideal with the handlers' own cost (bare asyncio + steps × per-step cost)",
                "≤ 1.5×",
                _ratio(rvh),
                rvh <= 1.5,
            )
        tuned = interp.get("concurrent_tuned", {})
        rvt = tuned.get("ratio_vs_ideal_with_handlers")
        if rvt is not None:
            row(
                "… the same, GC tuned by the application (`gc.set_threshold(700, 10, 100)`)",
                "≤ 1.5×",
                f"{_ratio(rvt)} (issue's ideal: {_ratio(tuned.get('ratio_vs_ideal'))})",
                rvt <= 1.5,
            )
        rss = conc.get("peak_rss_mb")
        row("… peak RSS", "< 200 MB", "—" if rss is None else f"{rss:.0f} MB", rss is not None and rss < 200)
    dur = r.get("durable", {})
    dr = _get(dur, "sagalang sqlite (synchronous=normal)", "ratio_to_dbos")
    if dr is not None:
        row("durable per-step overhead vs DBOS (SQLite, default settings)", "≤ 0.2×", _ratio(dr), dr <= 0.2)
    tr = _get(dur, "throughput", "ratio_to_dbos")
    if tr is not None:
        row("throughput, many concurrent 5-step sagas vs DBOS", "≥ 10×", _ratio(tr), tr >= 10)
    pg = _get(r, "postgres", "configs")
    if pg:
        best1 = max((v["sagas_per_s"]["median"] for v in pg.values() if v["workers"] == 1), default=None)
        best2 = max((v["sagas_per_s"]["median"] for v in pg.values() if v["workers"] == 2), default=None)
        if best1 and best2:
            row(
                "PostgreSQL: 5-step sagas/s, 1 → 2 workers",
                "report",
                f"{best1:.0f} → {best2:.0f} /s ({best2 / best1:.2f}×)",
                None,
            )
    testing = r.get("testing", {})
    if testing:
        largest = max(testing.values(), key=lambda v: v.get("failure_points", 0) if isinstance(v, dict) else 0)
        if isinstance(largest, dict) and "seconds" in largest:
            row(
                "`sagalang test` on the largest example",
                "< 10 s",
                f"{largest['seconds']:.2f} s ({largest['failure_points']} points, "
                f"{largest['points_per_second']:.0f}/s)",
                largest["seconds"] < 10,
            )
    lsp = r.get("lsp", {})
    edit = _get(lsp, "edit_to_diagnostics", "median")
    if edit is not None:
        row(
            f"`sagalang lsp`: edit → published diagnostics, {lsp.get('steps', 0):,} steps",
            "< 300 ms",
            _ms(edit),
            edit < 0.3,
        )
    rss = _get(lsp, "memory", "rss_mb")
    if rss is not None:
        row("… the server's memory with the examples open", "report", f"{rss:.0f} MB", None)
    ui = r.get("ui", {})
    if ui.get("list"):
        median = ui["list"]["median"]
        row(
            f"web view: runs list over {ui.get('runs', 0):,} runs in SQLite (server time)",
            "< 100 ms",
            _ms(median),
            median < 0.1,
        )
    if ui.get("run_page"):
        median = ui["run_page"]["median"]
        row(f"web view: page of a {ui.get('steps', 0)}-step run (server time)", "< 300 ms", _ms(median), median < 0.3)
    return rows


def _plot(r: dict[str, Any]) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    lang = r.get("language", {})
    sizes = sorted(int(k) for k in lang if k.isdigit())
    if not sizes:
        return None
    fig, ax = plt.subplots(figsize=(6, 4))
    for key, label in (
        ("sagalang", "sagalang parse + validate"),
        ("sismic", "sismic load"),
        ("python_statemachine", "python-statemachine build"),
        ("json_loads_floor", "json.loads of the IR"),
    ):
        pts = [(n, _get(lang, str(n), key, "median")) for n in sizes]
        pts = [(n, v) for n, v in pts if v]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] * 1000 for p in pts], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("steps (states)")
    ax.set_ylabel("ms")
    ax.set_title("Loading a definition: cost against size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    IMG.mkdir(parents=True, exist_ok=True)
    out = IMG / "bench-language.png"
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return "img/bench-language.png"


def _plot_interpreter(r: dict[str, Any]) -> list[tuple[str, str]]:
    """Run cost against saga size, and wall time against concurrency; (alt text, path) pairs."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    interp = r.get("interpreter", {})
    out: list[tuple[str, str]] = []
    IMG.mkdir(parents=True, exist_ok=True)
    sizes = _get(interp, "by_size", "per_saga") or {}
    if sizes:
        ns = sorted(int(n) for n in sizes)
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.plot(ns, [sizes[str(n)]["median"] * 1e6 for n in ns], marker="o", label="sagalang, one run")
        peer = _get(interp, "transitions_per_transition", "median")
        if peer:
            ax.plot(ns, [peer * n * 1e6 for n in ns], linestyle="--", label="transitions, n transitions")
        ax.set_xlabel("steps in the saga")
        ax.set_ylabel("µs of CPU per run")
        ax.set_title("One run (async no-op steps, memory store) against saga size")
        ax.grid(True, alpha=0.3)
        ax.legend()
        fig.tight_layout()
        fig.savefig(IMG / "bench-interpreter-size.png", dpi=110)
        plt.close(fig)
        out.append(("run cost against saga size", "img/bench-interpreter-size.png"))
    conc = interp.get("concurrency") or {}
    if conc:
        fig, ax = plt.subplots(figsize=(6, 4))
        for mode, style in (("default", "-"), ("tuned", ":")):
            pts = conc.get(mode) or {}
            ns = sorted(int(n) for n in pts)
            if not ns:
                continue
            label = "default GC" if mode == "default" else "GC tuned"
            ax.plot(ns, [pts[str(n)]["wall"] for n in ns], style, marker="o", label=f"sagalang ({label})")
            ax.plot(ns, [pts[str(n)]["asyncio_floor"] for n in ns], style, marker="x", label=f"bare asyncio ({label})")
            if mode == "default":
                ax.plot(ns, [pts[str(n)]["ideal"] for n in ns], "--", label="issue's ideal")
                ax.plot(ns, [pts[str(n)]["ideal_with_handlers"] for n in ns], "-.", label="ideal + handlers' own cost")
        ax.set_xlabel("concurrent 5-step sagas (10 ms handlers)")
        ax.set_ylabel("wall seconds")
        ax.set_title("Wall time against concurrency")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize="small")
        fig.tight_layout()
        fig.savefig(IMG / "bench-concurrency.png", dpi=110)
        plt.close(fig)
        out.append(("wall time against concurrency", "img/bench-concurrency.png"))
    return out


def write_page(results: dict[str, Any], tables: dict[str, str]) -> None:
    """Write docs/benchmarks.md."""
    from harness import table

    machine = results.get("machine", {})
    lines = [
        "# Benchmarks",
        "",
        "Every figure is a median with its spread (min–max over the repeats); every comparison",
        "is a ratio of two figures measured side by side in the same run, because the machine",
        "is shared and noisy. The peers run from `bench/.venv` (transitions, python-statemachine,",
        "sismic, DBOS Transact), which `make bench` creates; they are not dependencies of sagalang.",
        "",
        "Reproduce: `make bench` (all of it, about ten minutes), or one benchmark:",
        "`python bench/bench_language.py` (likewise `bench_interpreter`, `bench_durable`,",
        "`bench_postgres`, `bench_testing`, `bench_lsp`, `bench_ui`). The figures land in `bench/results.json`.",
        "",
        f"Machine: Python {machine.get('python', '?')} ({machine.get('implementation', '?')}), "
        f"{machine.get('cpus', '?')} CPUs, {machine.get('platform', '?')}.",
        "",
        "## Targets",
        "",
        table(["what", "target", "measured", ""], targets(results)),
        "",
    ]
    plot = _plot(results)
    more = _plot_interpreter(results)
    if plot or more:
        lines += ["## How cost grows with size and concurrency", ""]
        for alt, path in ([("load time against size", plot)] if plot else []) + more:
            lines += [f"![{alt}]({path})", ""]
    titles = {
        "bench_language": "Language: parse + validate",
        "bench_interpreter": "Interpreter: per-step cost and concurrency",
        "bench_durable": "Durable journal on SQLite",
        "bench_postgres": "PostgreSQL workers",
        "bench_testing": "`sagalang test`",
        "bench_lsp": "Editor: `sagalang lsp`",
        "bench_ui": "Web view (`sagalang ui`)",
    }
    for name, title in titles.items():
        out = tables.get(name)
        if not out:
            continue
        body = "\n".join(line for line in out.splitlines() if not line.startswith("== ")).strip()
        body = body.replace("\n## ", "\n### ").removeprefix("## ")
        lines += [f"## {title}", "", body, ""]
    notes = HERE / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text(encoding="utf-8").strip(), ""]
    PAGE.write_text("\n".join(lines))


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(HERE))
    res = json.loads((HERE / "results.json").read_text())
    tabs = json.loads((HERE / "tables.json").read_text()) if (HERE / "tables.json").exists() else {}
    write_page(res, tabs)
