"""``sagalang validate`` end to end: formats, exit codes, --strict, --plugin, --root."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner

from sagalang.cli import main
from sagalang.diagnostics import JSON_FORMAT_SCHEMA

SPECS = Path(__file__).resolve().parent.parent / "specs"
HANDLERS = str(SPECS / "invalid" / "handlers.py")

BAD = """saga order {
    input { sku: string }
    step reserve {
        do   app.reserve(sku: input.skuu, qty: len(input.sku))
        undo app.release(reservation: default(reserve.reservation_id, null))
    }
}
"""
WARN_ONLY = """saga s {
    step a { do app.act() undo app.revert() }
    step b when false { do app.act() undo app.revert() }
}
"""
GOOD = """saga s {
    step a { do app.act() undo app.revert(id: default(a.id, null)) }
}
"""


@pytest.fixture(autouse=True)
def _hermetic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run outside the repository, so its [tool.sagalang] plugins do not join the registry."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("NO_COLOR", raising=False)


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    """A folder with one invalid, one warning-only and one valid spec."""
    (tmp_path / "bad.saga").write_text(BAD, encoding="utf-8")
    (tmp_path / "warn.saga").write_text(WARN_ONLY, encoding="utf-8")
    (tmp_path / "good.saga").write_text(GOOD, encoding="utf-8")
    return tmp_path


def invoke(runner: CliRunner, *args: str) -> tuple[int, str, str]:
    """Run ``sagalang validate`` with the conformance handlers; exit code, stdout, stderr."""
    result = runner.invoke(main, ["validate", "--plugin", HANDLERS, *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_text_output_has_position_snippet_caret_and_hint(runner: CliRunner, specs: Path) -> None:
    code, out, err = invoke(runner, str(specs / "bad.saga"))
    assert code == 1
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if "error[E302]" in line)
    assert re.fullmatch(r".*bad\.saga:4:37: error\[E302\]: saga 'order' has no input field 'skuu'", lines[head])
    assert lines[head + 1].strip() == "do   app.reserve(sku: input.skuu, qty: len(input.sku))"
    caret = lines[head + 2]
    assert caret.strip() == "^^^^" and caret.index("^") == lines[head + 1].index("skuu")
    assert lines[head + 3].strip() == "hint: did you mean 'sku'?"
    assert "\x1b[" not in out  # no colour when not on a terminal
    assert "1 error, 0 warnings in 1 file" in err


def test_valid_and_warning_only_files_exit_zero(runner: CliRunner, specs: Path) -> None:
    assert invoke(runner, str(specs / "good.saga"))[0] == 0
    code, out, _ = invoke(runner, str(specs / "warn.saga"))
    assert code == 0 and "warning[W401]" in out


def test_strict_turns_warnings_into_errors(runner: CliRunner, specs: Path) -> None:
    code, out, _ = invoke(runner, "--strict", str(specs / "warn.saga"))
    assert code == 1 and "error[W401]" in out


def test_unknown_namespace_is_a_warning_unless_strict(runner: CliRunner, tmp_path: Path) -> None:
    path = tmp_path / "mail.saga"
    path.write_text('saga s { step a { do mail.send(to: "x") undo mail.recall(to: "x") } }', encoding="utf-8")
    code, out, _ = invoke(runner, str(path))
    assert code == 0 and "warning[W502]" in out and "namespace 'mail'" in out
    assert invoke(runner, "--strict", str(path))[0] == 1


def test_folder_reports_every_file_sorted(runner: CliRunner, specs: Path) -> None:
    code, out, _ = invoke(runner, "--format", "json", str(specs))
    assert code == 1
    doc = json.loads(out)
    files = [Path(d["file"]).name for d in doc["diagnostics"]]
    assert files == sorted(files) and set(files) == {"bad.saga", "warn.saga"}
    assert doc["summary"]["files"] == 3


def test_json_format(runner: CliRunner, specs: Path) -> None:
    code, out, _ = invoke(runner, "--format", "json", str(specs / "bad.saga"), str(specs / "warn.saga"))
    assert code == 1
    doc = json.loads(out)
    assert doc["version"] == 1
    assert doc["summary"] == {"files": 2, "errors": 1, "warnings": 1, "infos": 0}
    first = doc["diagnostics"][0]
    assert set(first) == {"code", "severity", "message", "file", "line", "column", "end_line", "end_column", "hint"}
    assert (first["code"], first["line"], first["column"], first["end_column"]) == ("E302", 4, 37, 41)
    assert first["hint"] == "did you mean 'sku'?"
    jsonschema.validate(doc, JSON_FORMAT_SCHEMA, cls=jsonschema.Draft202012Validator)


def test_sarif_format(runner: CliRunner, specs: Path) -> None:
    code, out, _ = invoke(runner, "--format", "sarif", str(specs))
    assert code == 1
    doc = json.loads(out)
    assert doc["version"] == "2.1.0"
    run = doc["runs"][0]
    rules = run["tool"]["driver"]["rules"]
    assert [r["id"] for r in rules] == ["E302", "W401"]
    assert all(r["shortDescription"]["text"] and r["fullDescription"]["text"] for r in rules)
    levels = {r["ruleId"]: r["level"] for r in run["results"]}
    assert levels == {"E302": "error", "W401": "warning"}
    for result in run["results"]:
        assert rules[result["ruleIndex"]]["id"] == result["ruleId"]
        loc = result["locations"][0]["physicalLocation"]
        assert loc["artifactLocation"]["uri"].endswith(".saga")
        assert loc["region"]["startLine"] >= 1 and loc["region"]["startColumn"] >= 1


def test_github_format(runner: CliRunner, specs: Path) -> None:
    code, out, _ = invoke(runner, "--format", "github", str(specs / "bad.saga"), str(specs / "warn.saga"))
    assert code == 1
    lines = out.splitlines()
    assert len(lines) == 2
    pattern = r"::(error|warning) file=[^,]+,line=(\d+),col=(\d+),endLine=\d+,endColumn=\d+,title=(\w+)::(.+)"
    parsed = [re.fullmatch(pattern, line) for line in lines]
    assert all(parsed)
    assert [(m.group(1), m.group(2), m.group(3), m.group(4)) for m in parsed if m] == [
        ("error", "4", "37", "E302"),
        ("warning", "3", "17", "W401"),
    ]


def test_missing_path_is_reported(runner: CliRunner, tmp_path: Path) -> None:
    code, out, _ = invoke(runner, str(tmp_path / "nope.saga"))
    assert code == 1 and "error[E001]" in out and "nope.saga" in out


def test_root_bounds_imports(runner: CliRunner, tmp_path: Path) -> None:
    inner = tmp_path / "project"
    inner.mkdir()
    (tmp_path / "outside.saga").write_text(GOOD.replace("saga s", "saga outside"), encoding="utf-8")
    spec = inner / "main.saga"
    spec.write_text('import "../outside.saga"\n' + GOOD, encoding="utf-8")
    code, out, _ = invoke(runner, "--root", str(inner), str(spec))
    assert code == 1 and "error[E701]" in out
    code, out, _ = invoke(runner, "--root", str(tmp_path), str(spec))
    assert "E701" not in out and "warning[W402]" in out and code == 0


def test_bad_plugin_is_a_clear_error(runner: CliRunner, specs: Path) -> None:
    result = runner.invoke(main, ["validate", "--plugin", "no_such_module_xyz", str(specs / "good.saga")])
    assert result.exit_code == 1
    assert "no_such_module_xyz" in result.stderr and "Traceback" not in result.output


def test_conformance_suite_through_the_cli(runner: CliRunner) -> None:
    code, out, _ = invoke(runner, "--format", "json", "--root", str(SPECS / "invalid"), str(SPECS / "invalid"))
    assert code == 1
    found = {d["code"] for d in json.loads(out)["diagnostics"]}
    assert {"E303", "E304", "E605", "E705", "E906"} <= found


def test_valid_specs_through_the_cli(runner: CliRunner) -> None:
    code, out, err = invoke(runner, "--strict", str(SPECS / "valid"))
    assert code == 0, out
    assert "0 errors, 0 warnings" in err


def test_colour_is_only_for_terminals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sagalang.cli.common import use_color
    from sagalang.diagnostics import diagnostic, format_text
    from sagalang.source import Span

    class Tty:
        def isatty(self) -> bool:
            return True

    assert use_color(Tty())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not use_color(Tty())
    d = diagnostic("E302", "no such field", "x.saga", Span(1, 5, 1, 8), "did you mean 'sku'?")
    coloured = format_text([d], {"x.saga": "abc input.x"}, color=True)
    assert "\x1b[" in coloured and "error[E302]" in coloured
    assert "\x1b[" not in format_text([d], {"x.saga": "abc input.x"}, color=False)
