"""Every benchmark runs at a tiny size, so the harness cannot rot. No timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    "name", ["bench_language", "bench_interpreter", "bench_durable", "bench_testing", "bench_lsp", "bench_ui"]
)
def test_benchmark_runs_quick(name: str) -> None:
    results = ROOT / "bench" / "results.json"
    before = results.read_bytes() if results.exists() else None
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / f"{name}.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "|" in proc.stdout  # it printed its table
    # --quick never overwrites the committed figures
    assert (results.read_bytes() if results.exists() else None) == before


def test_postgres_benchmark_runs_quick() -> None:
    from conftest import postgres_dsn

    dsn = postgres_dsn()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "bench_postgres.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "SAGALANG_TEST_POSTGRES_DSN": dsn or ""},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sagas/s" in proc.stdout


def test_report_renders_targets_from_results(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        from report import targets
    finally:
        sys.path.pop(0)
    results = json.loads((ROOT / "bench" / "results.json").read_text())
    rows = targets(results)
    assert rows, "no targets rendered from bench/results.json"
    assert all(len(r) == 4 for r in rows)
    assert any("sismic" in r[0] for r in rows)
