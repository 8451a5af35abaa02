"""docs/language.md shows only tested text: every ```saga block is a checked file or a fragment of one.

Each block is announced by a marker on the line before it:

* ``<!-- include: PATH -->``: the block is the whole file;
* ``<!-- fragment: PATH -->``: the block is a run of consecutive lines of the file
  (compared after removing the common indentation);
* either may end with ``expect: CODE,CODE``: the file is an invalid example and
  ``sagalang validate`` must report exactly those error codes.

Files under docs/examples/ must validate without errors or warnings; every one of
them must appear in the document.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from sagalang.cli import main

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "language.md"
DOC_EXAMPLES = ROOT / "docs" / "examples"
MARKER = re.compile(r"<!--\s*(include|fragment):\s*(\S+)(?:\s+expect:\s*([A-Z0-9, ]+?))?\s*-->")


@dataclass(frozen=True)
class Block:
    """One ```saga block of the document with its marker."""

    line: int
    mode: str | None
    path: str | None
    expect: tuple[str, ...] | None
    text: str


def _blocks(markdown: str) -> list[Block]:
    lines = markdown.split("\n")
    out: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```saga":
            start = i
            j = i + 1
            while lines[j].strip() != "```":
                j += 1
            text = "\n".join(lines[start + 1 : j]) + "\n"
            prev = start - 1
            while prev >= 0 and not lines[prev].strip():
                prev -= 1
            m = MARKER.fullmatch(lines[prev].strip()) if prev >= 0 else None
            expect = tuple(c.strip() for c in m.group(3).split(",")) if m and m.group(3) else None
            out.append(Block(start + 1, m.group(1) if m else None, m.group(2) if m else None, expect, text))
            i = j
        i += 1
    return out


def _is_fragment(block: str, text: str) -> bool:
    want = textwrap.dedent(block).rstrip("\n")
    n = len(want.split("\n"))
    lines = text.split("\n")
    return any(textwrap.dedent("\n".join(lines[k : k + n])) == want for k in range(len(lines) - n + 1))


BLOCKS = _blocks(DOC.read_text(encoding="utf-8"))


def test_the_document_has_many_checked_blocks() -> None:
    assert len(BLOCKS) >= 15
    assert {b.mode for b in BLOCKS} == {"include", "fragment"}


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: f"line{b.line}")
def test_each_block_is_a_tested_file_or_a_fragment_of_one(block: Block) -> None:
    assert block.mode is not None and block.path is not None, f"language.md:{block.line}: ```saga without a marker"
    path = ROOT / block.path
    assert path.is_file(), f"language.md:{block.line}: {block.path} does not exist"
    assert path.suffix == ".saga" and (path.is_relative_to(DOC_EXAMPLES) or path.is_relative_to(ROOT / "specs"))
    text = path.read_text(encoding="utf-8")
    if block.mode == "include":
        assert block.text == text, f"language.md:{block.line} differs from {block.path}"
    else:
        assert _is_fragment(block.text, text), f"language.md:{block.line} is not a fragment of {block.path}"


def test_every_docs_example_is_shown() -> None:
    shown = {(ROOT / b.path).resolve() for b in BLOCKS if b.path and b.mode == "include"}
    files = set(DOC_EXAMPLES.rglob("*.saga"))
    assert files and files <= shown, sorted(str(f.relative_to(ROOT)) for f in files - shown)


def _validate(paths: list[str]) -> list[dict[str, object]]:
    result = CliRunner().invoke(main, ["validate", "--format", "json", *paths])
    diagnostics: list[dict[str, object]] = json.loads(result.output)["diagnostics"]
    return diagnostics


def test_the_valid_docs_examples_validate_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # the repo's [tool.sagalang] plugins provide the handlers
    files = sorted(str(p.relative_to(ROOT)) for p in DOC_EXAMPLES.glob("*.saga"))
    assert len(files) >= 10
    found = [(d["file"], d["line"], d["code"]) for d in _validate(files) if d["severity"] != "info"]
    assert found == []


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.expect is not None], ids=lambda b: str(b.path))
def test_the_invalid_docs_examples_report_what_the_document_says(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    assert block.path is not None and block.expect is not None
    codes = sorted(str(d["code"]) for d in _validate([block.path]) if d["severity"] == "error")
    assert codes == sorted(block.expect)
    # each expected code is also named in a comment of the example, next to its cause
    text = (ROOT / block.path).read_text(encoding="utf-8")
    assert all(re.search(rf"#.*\b{c}\b", text) for c in block.expect)


def test_every_invalid_example_is_announced_with_its_codes() -> None:
    invalid = set((DOC_EXAMPLES / "invalid").glob("*.saga"))
    announced = {(ROOT / b.path).resolve() for b in BLOCKS if b.path and b.expect is not None}
    assert invalid and invalid == announced
    valid_marked_invalid = [b.path for b in BLOCKS if b.expect is not None and "/invalid/" not in str(b.path)]
    assert valid_marked_invalid == []


def test_the_checker_rejects_a_changed_block() -> None:
    # guard against a vacuous check: a block edited by one character no longer matches
    text = (ROOT / "specs" / "examples" / "transfer.saga").read_text(encoding="utf-8")
    good = "readonly step check_balance {\n    do bank.balance(account: input.source)\n}"
    assert _is_fragment(good, text)
    assert _is_fragment(textwrap.indent(good, "        "), text)
    assert not _is_fragment(good.replace("source", "target"), text)
    assert not _is_fragment(good.replace("{\n", "{\n\n"), text)
    marked = _blocks("<!-- include: docs/examples/hello.saga -->\n```saga\nsaga x {}\n```\n\n```saga\n1\n```\n")
    assert [(b.mode, b.path) for b in marked] == [("include", "docs/examples/hello.saga"), (None, None)]
