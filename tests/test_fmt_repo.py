"""Every .saga file of the repository is in fmt's canonical layout (`sagalang fmt --check` passes).

The only files left out are the conformance specs that do not parse on purpose
(a syntax error, or a clause given twice, which fmt refuses): each of those must
expect exactly the error fmt reports.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from sagalang.fmt import format_file
from sagalang.project import find_spec_files

ROOT = Path(__file__).resolve().parent.parent
INVALID = ROOT / "specs" / "invalid"
EXPECT = re.compile(r"^#\s*expect:\s*([EWI]\d{3})\s+(\d+):(\d+)\s*$", re.M)
# The repository's own trees (virtual environments and installed npm packages are not its files).
TREES = ["specs", "docs", "tests", "bench", "editors", "scripts", "sagalang"]


def repo_specs() -> list[Path]:
    """Every .saga file in the repository's trees."""
    files, _ = find_spec_files([ROOT / t for t in TREES if (ROOT / t).is_dir()])
    return files


def test_the_repository_has_many_specs() -> None:
    specs = repo_specs()
    assert len(specs) > 100
    assert any(p.is_relative_to(ROOT / "docs") for p in specs)


def test_every_spec_passes_fmt_check() -> None:
    unformattable = {p for p in repo_specs() if format_file(p).diagnostics}
    formattable = [str(p.relative_to(ROOT)) for p in repo_specs() if p not in unformattable]
    proc = subprocess.run(
        [sys.executable, "-m", "sagalang", "fmt", "--check", *formattable],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "would reformat" not in proc.stdout + proc.stderr


def test_only_conformance_specs_that_must_not_parse_are_left_out() -> None:
    for path in repo_specs():
        result = format_file(path)
        if not result.diagnostics:
            continue
        assert path.parent == INVALID, f"{path} does not format: {result.diagnostics[0].format_line()}"
        expected = {(c, int(line), int(col)) for c, line, col in EXPECT.findall(path.read_text(encoding="utf-8"))}
        d = result.diagnostics[0]
        assert (d.code, d.span.line, d.span.col) in expected, d.format_line()
