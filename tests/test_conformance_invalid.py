"""The invalid-spec conformance suite: each file declares the diagnostics it must produce.

A file in ``specs/invalid/`` lists its expectations in header comments, one per
diagnostic: ``# expect: E302 12:27`` (code, line:column). The validator must
report exactly those errors and warnings in that file; infos count only in files
that declare one. ``specs/valid/`` holds tricky-but-valid specs that must pass
without errors or warnings.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from sagalang.diagnostics import CATALOGUE, Diagnostic
from sagalang.plugins import Registry
from sagalang.validate import validate_paths

SPECS = Path(__file__).resolve().parent.parent / "specs"
INVALID = SPECS / "invalid"
VALID = SPECS / "valid"
HANDLERS = INVALID / "handlers.py"
INVALID_FILES = sorted(INVALID.glob("*.saga"))
VALID_FILES = sorted(VALID.glob("*.saga"))
EXPECT = re.compile(r"^#\s*expect:\s*([EWI]\d{3})\s+(\d+):(\d+)\s*$")

# Codes the suite cannot exercise with a spec file, and why.
NOT_IN_SUITE = {
    "E001": "an unreadable file cannot be committed (tested in test_cli_validate)",
    "E002": "a non-UTF-8 file (tested in test_validate)",
    "E003": "a NUL byte (tested in test_validate)",
    "E004": "an 8 MiB file",
    "E005": "an empty file (tested in test_validate)",
    "E011": "lexer errors are the parser suite's",
    "E014": "nesting limits are the parser suite's",
    "E015": "lexer errors are the parser suite's",
    "E016": "lexer errors are the parser suite's",
    "E509": "needs a plugin that fails to import (tested in test_validate)",
}


@pytest.fixture(scope="module")
def registry() -> Registry:
    """The conformance handlers: namespaces ``app`` and ``ops``."""
    reg = Registry()
    reg.load_plugin(str(HANDLERS))
    return reg


def expectations(path: Path) -> list[tuple[str, int, int]]:
    """The ``# expect:`` lines of a spec, as (code, line, column)."""
    found = []
    for line in path.read_text(encoding="utf-8").splitlines():
        m = EXPECT.match(line.strip())
        if m:
            found.append((m.group(1), int(m.group(2)), int(m.group(3))))
    return sorted(found)


def findings(path: Path, registry: Registry) -> list[Diagnostic]:
    """Every diagnostic the validator reports in ``path`` itself (not in files it imports)."""
    _, diags = validate_paths([path], registry, root=INVALID)
    return [d for d in diags if Path(d.file).resolve() == path.resolve()]


def test_suite_is_large_enough() -> None:
    assert len(INVALID_FILES) >= 45


def test_every_check_is_exercised() -> None:
    declared = {code for path in INVALID_FILES for code, _, _ in expectations(path)}
    missing = set(CATALOGUE) - declared - set(NOT_IN_SUITE)
    assert not missing, f"codes without a spec in specs/invalid: {sorted(missing)}"


@pytest.mark.parametrize("path", INVALID_FILES, ids=lambda p: p.stem)
def test_invalid_spec(path: Path, registry: Registry) -> None:
    expected = expectations(path)
    assert expected, f"{path.name} declares no '# expect: CODE line:col'"
    assert any(code[0] in "EW" for code, _, _ in expected), "a conformance file must fail or warn"
    with_infos = any(code.startswith("I") for code, _, _ in expected)
    diags = findings(path, registry)
    got = sorted((d.code, d.span.line, d.span.col) for d in diags if d.severity != "info" or with_infos)
    assert got == expected, "\n".join(d.format_line() for d in diags)


@pytest.mark.parametrize("path", INVALID_FILES, ids=lambda p: p.stem)
def test_severity_matches_catalogue(path: Path, registry: Registry) -> None:
    for d in findings(path, registry):
        assert d.code in CATALOGUE, d.code
        assert d.severity == CATALOGUE[d.code].severity
        assert d.span.line > 0 and d.span.col > 0, d.format_line()


@pytest.mark.parametrize("path", VALID_FILES, ids=lambda p: p.stem)
def test_valid_spec(path: Path, registry: Registry) -> None:
    _, diags = validate_paths([path], registry, root=SPECS)
    assert [d.format_line() for d in diags if d.severity != "info"] == []


def test_valid_specs_exist() -> None:
    assert len(VALID_FILES) >= 3
