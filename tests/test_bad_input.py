"""Hostile files through ``sagalang validate`` and ``sagalang fmt``: a diagnostic, exit 1, never a traceback."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from sagalang.cli import main


def _random_bytes() -> bytes:
    return random.Random(7).randbytes(4096)


# name, content, what the first line of the report must contain
CASES: list[tuple[str, bytes, str]] = [
    ("empty.saga", b"", "empty.saga:1:1: error[E005]"),
    ("blank.saga", b"  \n\t\n\n", "blank.saga:1:1: error[E005]"),
    ("comments.saga", b"  \n# just a comment\n\t\n", "comments.saga:1:1: error[E005]"),
    ("binary.saga", _random_bytes(), "binary.saga:1:2: error[E002]"),
    ("latin1.saga", "saga café {}\n".encode("latin-1"), "latin1.saga:1:9: error[E002]"),
    ("nul.saga", b"saga s {\n  \x00\n}\n", "nul.saga:2:3: error[E003]"),
    ("string.saga", b'saga s {\n    description "abc\n}\n', "string.saga:2:17: error[E012]"),
    ("block.saga", b"saga s {\n    step a {\n", "block.saga:2:12: error[E013]"),
    ("huge.saga", b"# padding\n" * (1024 * 1024 + 1), "huge.saga: error[E004]"),
    # one 1 MiB line: a long string, then a mistake at its very end
    ("line.saga", b'saga s { description "' + b"a" * 2**20 + b'" @ }', "line.saga:1:1048601: error[E011]"),
    (
        "parens.saga",
        b"saga s { step a when " + b"(" * 20_000 + b"x" + b")" * 20_000 + b" { } }",
        "parens.saga:1:121: error[E014]",
    ),
    ("data.json", b'{"saga": "order", "steps": []}\n', "data.json:1:1: error[E010]"),
]


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("bad")
    files = {}
    for name, content, _ in CASES:
        files[name] = folder / name
        files[name].write_bytes(content)
    return files


@pytest.mark.parametrize("command", ["validate", "fmt"])
@pytest.mark.parametrize(("name", "content", "expected"), CASES, ids=[c[0] for c in CASES])
def test_hostile_file_gives_a_diagnostic_and_exit_1(
    bad_files: dict[str, Path], runner: CliRunner, command: str, name: str, content: bytes, expected: str
) -> None:
    path = bad_files[name]
    result = runner.invoke(main, [command, str(path)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # no other exception escaped
    assert "Traceback" not in result.output
    assert expected in result.output.splitlines()[0]
    if command == "fmt":
        assert path.read_bytes() == content  # never touched


def test_long_lines_are_cut_in_the_snippet(bad_files: dict[str, Path], runner: CliRunner) -> None:
    result = runner.invoke(main, ["validate", str(bad_files["line.saga"])])
    assert max(len(line) for line in result.output.splitlines()) < 400


def test_json_gets_a_hint(bad_files: dict[str, Path], runner: CliRunner) -> None:
    result = runner.invoke(main, ["fmt", str(bad_files["data.json"])])
    assert "looks like JSON" in result.output


def test_all_at_once_every_file_is_reported(bad_files: dict[str, Path], runner: CliRunner) -> None:
    folder = bad_files["empty.saga"].parent
    result = runner.invoke(main, ["validate", str(folder), str(bad_files["data.json"])])
    assert result.exit_code == 1
    for name, _, _ in CASES:
        assert name in result.output


def test_real_process_reports_without_traceback(bad_files: dict[str, Path]) -> None:
    paths = [str(bad_files[n]) for n in ("binary.saga", "parens.saga", "huge.saga", "line.saga", "empty.saga")]
    for command in ("validate", "fmt"):
        proc = subprocess.run(
            [sys.executable, "-m", "sagalang", command, *paths], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 1, proc.stderr
        output = proc.stdout + proc.stderr
        assert "Traceback" not in output
        for name in ("binary.saga:1:2: error[E002]", "parens.saga:1:121: error[E014]", "huge.saga: error[E004]"):
            assert name in output


def test_paths_the_file_system_rejects_are_diagnostics(tmp_path: Path, runner: CliRunner) -> None:
    long = "a" * 300
    spec = tmp_path / "paths.saga"
    spec.write_text(
        f'import "\\0"\nimport "{long}"\n'
        f'saga s {{\n    input schema "{long}"\n    step a {{ do h.x() output schema "\\0" }}\n}}\n',
        encoding="utf-8",
    )
    result = runner.invoke(main, ["validate", str(spec)])
    assert result.exit_code == 1
    assert isinstance(result.exception, SystemExit)
    for where in ("1:1: error[E703]", "2:1: error[E703]", "4:18: error[E904]", "5:37: error[E904]"):
        assert f"paths.saga:{where}" in result.output
    assert "Traceback" not in result.output
