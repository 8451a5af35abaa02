"""The VS Code extension's TextMate grammar, run by vscode-textmate + vscode-oniguruma as VS Code runs it.

Every .saga file of the repository is tokenized. The parser's own tokens are
the reference: every keyword gets its scope, a name that spells a keyword
(``input.order``, an argument ``order:``) is not coloured as one, and nothing
inside a string, an interpolation or a duration is left unmatched. The npm
packages are installed into editors/vscode/node_modules with ``npm ci`` on
first use (kept there, gitignored); without node/npm the test is skipped,
except under CI=true, where it fails.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lark import Token

from sagalang.errors import SagaError
from sagalang.fmt import _parse_recording
from sagalang.lexer import KEYWORDS
from sagalang.project import find_spec_files
from sagalang.transform import split_template

ROOT = Path(__file__).resolve().parent.parent
EDITOR = ROOT / "editors" / "vscode"
TREES = ["specs", "docs", "tests", "bench", "editors", "scripts", "sagalang"]
IN_CI = os.environ.get("CI", "").lower() == "true"

SCOPES = {
    **dict.fromkeys(("saga", "step", "import", "parallel"), "keyword.declaration.saga"),
    **dict.fromkeys(("do", "undo", "use", "call", "after", "when", "for", "in", "limit"), "keyword.control.saga"),
    **dict.fromkeys(("pivot", "readonly", "retriable", "secret"), "storage.modifier.saga"),
    **dict.fromkeys(("and", "or", "not"), "keyword.operator.logical.saga"),
    **dict.fromkeys(("true", "false", "null"), "constant.language.saga"),
}
WORDS = set(KEYWORDS) | set(SCOPES)
NOT_KEYWORDS = {"NAME", "DOTTED", "STRING", "INT", "FLOAT", "DURATION", "MULT"}


def expected_scope(word: str) -> str:
    """The scope the grammar gives keyword ``word``."""
    return SCOPES.get(word, "keyword.other.saga")


def _skip_or_fail(reason: str) -> None:
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: the grammar must be checked)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tokenizer() -> Iterator[Path]:
    """editors/vscode/test/tokenize.mjs with its npm packages installed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _skip_or_fail("node/npm are not installed: the TextMate grammar is not checked")
    assert npm is not None
    with open(EDITOR / "package.json", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers install once
        if not (EDITOR / "node_modules" / "vscode-textmate").exists():
            proc = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=EDITOR,
                capture_output=True,
                text=True,
                timeout=600,
            )
            if proc.returncode != 0:
                _skip_or_fail(f"npm ci failed in {EDITOR}:\n{proc.stderr[-2000:]}")
    yield EDITOR / "test" / "tokenize.mjs"


def repo_specs() -> list[Path]:
    files, _ = find_spec_files([ROOT / t for t in TREES if (ROOT / t).is_dir()])
    return files


@pytest.fixture(scope="module")
def tokenized(tokenizer: Path) -> dict[Path, list[list[tuple[int, int, list[str]]]]]:
    """Every spec's lines as (start, end, scopes) tokens."""
    files = repo_specs()
    proc = subprocess.run(
        ["node", str(tokenizer), *map(str, files)], capture_output=True, text=True, timeout=300, cwd=EDITOR
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = {}
    for line in proc.stdout.splitlines():
        record = json.loads(line)
        out[Path(record["file"])] = [[(a, b, s) for a, b, s in tokens] for tokens in record["lines"]]
    assert set(out) == set(files)
    return out


def scopes_at(lines: list[list[tuple[int, int, list[str]]]], line: int, col: int) -> list[str]:
    """The scope stack of 0-based ``line``/``col``."""
    for a, b, scopes in lines[line]:
        if a <= col < b:
            return scopes
    raise AssertionError(f"no token at {line + 1}:{col + 1}")


def parser_tokens(path: Path) -> list[Token] | None:
    """The parser's tokens of a spec (None when it does not parse)."""
    try:
        return _parse_recording(path.read_text(encoding="utf-8"), str(path))[1]
    except SagaError:
        return None


def test_the_grammar_reads_every_spec(tokenized: dict[Path, Any]) -> None:
    assert len(tokenized) > 100
    parsed = [p for p in tokenized if parser_tokens(p) is not None]
    assert len(parsed) >= len(tokenized) - 5  # the syntax-error conformance specs


def test_every_keyword_gets_its_scope(tokenized: dict[Path, Any]) -> None:
    seen: set[str] = set()
    problems = []
    for path, lines in tokenized.items():
        for tok in parser_tokens(path) or ():
            word = str(tok)
            line, col = (tok.line or 1) - 1, (tok.column or 1) - 1
            if tok.type not in NOT_KEYWORDS and word in WORDS:
                seen.add(word)
                got = scopes_at(lines, line, col)[-1]
                if got != expected_scope(word):
                    problems.append(f"{path.relative_to(ROOT)}:{line + 1}:{col + 1}: {word!r} is {got}")
            elif tok.type == "NAME" and word in WORDS:
                got = scopes_at(lines, line, col)[-1]
                if got.startswith(("keyword.", "storage.")) and word not in ("and", "or", "not"):
                    problems.append(f"{path.relative_to(ROOT)}:{line + 1}:{col + 1}: the name {word!r} is {got}")
    assert not problems, "\n".join(problems[:40])
    # The specs use (nearly) every keyword, so the check covers the grammar's keyword rules.
    assert len(seen) >= len(WORDS) - 3, sorted(WORDS - seen)


def _string_problems(path: Path, lines: Any, tok: Token) -> Iterator[str]:
    raw = str(tok)
    line, col = (tok.line or 1) - 1, (tok.column or 1) - 1
    interp: set[int] = set()
    for part, offset in split_template(raw) or ():
        if part[0] == "e":
            interp.update(range(offset, offset + len(part) - 1))
    for i, ch in enumerate(raw):
        scopes = scopes_at(lines, line, col + i)
        where = f"{path.relative_to(ROOT)}:{line + 1}:{col + i + 1}"
        if not any(s.startswith("string.quoted.") for s in scopes):
            yield f"{where}: {ch!r} in a string is outside the string scope: {scopes}"
        elif i in interp:
            if ch.strip() and scopes[-1] in ("meta.interpolation.saga", "string.quoted.double.saga"):
                yield f"{where}: {ch!r} in an interpolation is unmatched: {scopes}"
        elif "meta.interpolation.saga" not in scopes and not scopes[-1].startswith(
            ("string.quoted.", "constant.character.escape.", "punctuation.definition.string.")
        ):
            yield f"{where}: {ch!r} in a string's text is {scopes[-1]}"


def test_strings_interpolations_and_durations_are_matched_whole(tokenized: dict[Path, Any]) -> None:
    problems: list[str] = []
    counts = {"STRING": 0, "interpolation": 0, "DURATION": 0, "MULT": 0}
    for path, lines in tokenized.items():
        for tok in parser_tokens(path) or ():
            line, col = (tok.line or 1) - 1, (tok.column or 1) - 1
            if tok.type == "STRING":
                counts["STRING"] += 1
                counts["interpolation"] += "${" in str(tok)
                problems.extend(_string_problems(path, lines, tok))
            elif tok.type in ("DURATION", "MULT"):
                counts[tok.type] += 1
                prefix = (
                    "constant.numeric.duration"
                    if tok.type == "DURATION"
                    else ("keyword.operator.multiplier", "constant.numeric.multiplier")
                )
                for i, ch in enumerate(str(tok)):
                    got = scopes_at(lines, line, col + i)[-1]
                    if ch.strip() and not got.startswith(prefix):
                        problems.append(
                            f"{path.relative_to(ROOT)}:{line + 1}:{col + i + 1}: {ch!r} of {str(tok)!r} is {got}"
                        )
    assert not problems, "\n".join(problems[:40])
    assert all(n > 10 for n in counts.values()), counts


def test_nothing_in_a_spec_is_left_unmatched(tokenized: dict[Path, Any]) -> None:
    problems = []
    for path, lines in tokenized.items():
        if parser_tokens(path) is None:
            continue
        text = path.read_text(encoding="utf-8").split("\n")
        for n, tokens in enumerate(lines):
            for a, b, scopes in tokens:
                if scopes == ["source.saga"] and text[n][a:b].strip():
                    problems.append(f"{path.relative_to(ROOT)}:{n + 1}:{a + 1}: {text[n][a:b]!r} has no scope")
    assert not problems, "\n".join(problems[:40])


def test_the_extension_packages_as_a_vsix(tokenizer: Path, tmp_path: Path) -> None:
    """What `make vsix` runs: @vscode/vsce packs the grammar, the configuration and the client."""
    import zipfile

    out = tmp_path / "sagalang.vsix"
    proc = subprocess.run(
        ["npx", "--no-install", "vsce", "package", "--allow-missing-repository", "--out", str(out)],
        cwd=EDITOR,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    names = set(zipfile.ZipFile(out).namelist())
    for name in ("package.json", "extension.js", "language-configuration.json", "syntaxes/saga.tmLanguage.json"):
        assert f"extension/{name}" in names
    assert "extension/node_modules/vscode-languageclient/package.json" in names
    assert not any(n.startswith(("extension/test/", "extension/node_modules/vscode-textmate/")) for n in names)
    manifest = json.loads(zipfile.ZipFile(out).read("extension/package.json"))
    assert manifest["contributes"]["languages"][0]["extensions"] == [".saga"]
    assert manifest["contributes"]["configuration"]["properties"]["sagalang.server.args"]["default"] == ["lsp"]
