"""docs/diagnostics.md is generated from the catalogue and must match it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sagalang.diagnostics import CATALOGUE
from sagalang.docgen import diagnostics_markdown, main

DOC = Path(__file__).resolve().parent.parent / "docs" / "diagnostics.md"


def test_committed_diagnostics_doc_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == diagnostics_markdown(), (
        "docs/diagnostics.md is stale: run `python -m sagalang.docgen diagnostics > docs/diagnostics.md`"
    )


def test_every_code_is_documented() -> None:
    text = diagnostics_markdown()
    for code, rule in CATALOGUE.items():
        assert f"### {code}: {rule.title}" in text
        assert rule.explanation in text and rule.fix in text


def test_index_links_point_at_headings() -> None:
    import re

    text = diagnostics_markdown()
    headings = {
        re.sub(r"[-\s]+", "-", re.sub(r"[^\w\s-]", "", h).strip().lower()) for h in re.findall(r"^#+ (.+)$", text, re.M)
    }
    links = re.findall(r"\]\(#([^)]+)\)", text)
    assert len(links) == len(CATALOGUE)
    assert set(links) <= headings


def test_module_entry_point() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "sagalang.docgen", "diagnostics"], capture_output=True, text=True, check=True
    )
    assert out.stdout == diagnostics_markdown()


def test_unknown_topic(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["nope"]) == 2
    assert "usage" in capsys.readouterr().err
