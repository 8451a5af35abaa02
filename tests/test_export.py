"""``sagalang export`` / ``sagalang schema`` and the library behind them (sagalang.export)."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from click.testing import CliRunner

from sagalang import ir
from sagalang.cli import main
from sagalang.export import FORMAT, dumps, export_module, ir_schema, load_module, node_classes
from sagalang.parser import parse
from sagalang.project import load_project

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "specs" / "examples"
SPECS = sorted(EXAMPLES.rglob("*.saga"))


def _messages(errors: Any) -> list[str]:
    """Every error message, including those nested under anyOf."""
    out: list[str] = []
    for e in errors:
        out.append(e.message)
        out.extend(_messages(e.context or []))
    return out


def _validator() -> jsonschema.Draft202012Validator:
    schema = ir_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_example_export_validates_against_the_schema(path: Path) -> None:
    module = parse(path.read_text(encoding="utf-8"), str(path))
    data = json.loads(dumps(export_module(module)))
    errors = sorted(_validator().iter_errors(data), key=str)
    assert errors == []
    assert data["format"] == FORMAT and data["version"] == 1
    assert [s["name"] for s in data["sagas"]] == [s.name for s in module.sagas]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_export_round_trips_to_the_same_ir(path: Path) -> None:
    module = parse(path.read_text(encoding="utf-8"), str(path))
    data = json.loads(dumps(export_module(module)))
    back = load_module(data)
    assert back == module
    # spans do not take part in IR equality: compare them through a second export
    assert export_module(back) == data


def test_export_is_deterministic() -> None:
    path = EXAMPLES / "travel.saga"
    first = dumps(export_module(parse(path.read_text(encoding="utf-8"), "travel.saga")))
    second = dumps(export_module(parse(path.read_text(encoding="utf-8"), "travel.saga")))
    assert first == second
    runner = CliRunner()
    a = runner.invoke(main, ["export", str(path)])
    b = runner.invoke(main, ["export", str(path)])
    assert a.exit_code == 0 and a.output == b.output


def test_nodes_carry_their_class_fields_and_spans() -> None:
    module = parse('saga s version "1" {\n  step a { do x.y(n: 1 + 2) }\n}\n', "s.saga")
    data = export_module(module)
    step = data["sagas"][0]["body"][0]
    assert step["node"] == "Step" and step["name"] == "a" and step["kind"] == "step"
    assert step["span"] == {"line": 2, "col": 8, "end_line": 2, "end_col": 9}
    arg = step["do"]["args"][0]
    assert arg["value"]["node"] == "Arith"
    assert arg["value"]["ops"] == ["+"]
    assert [o["value"] for o in arg["value"]["operands"]] == [1, 2]
    assert data["file"] == "s.saga" and data["imports"] == []


def test_schema_covers_every_ir_class_and_field() -> None:
    schema = ir_schema()
    defs = schema["$defs"]
    for cls in node_classes():
        props = defs[cls.__name__]["properties"]
        assert props["node"] == {"const": cls.__name__}
        assert set(props) == {"node"} | {f.name for f in dataclasses.fields(cls)}
        assert defs[cls.__name__]["additionalProperties"] is False
    assert {c.__name__ for c in node_classes()} >= {"Saga", "Step", "Parallel", "Duplicate", "Template", "SagaRetry"}
    assert {d["$ref"].rsplit("/", 1)[1] for d in defs["Expr"]["anyOf"]} == {
        c.__name__ for c in typing.get_args(ir.Expr)
    }
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_schema_translates_type_hints() -> None:
    defs = ir_schema()["$defs"]
    retry = defs["RetryPolicy"]["properties"]
    assert retry["attempts"] == {"anyOf": [{"type": "integer"}, {"type": "null"}]}  # int | None
    assert retry["on"] == {"type": "array", "items": {"type": "string"}}  # tuple[str, ...]
    assert retry["jitter"] == {"type": "boolean"}
    assert defs["Step"]["properties"]["kind"] == {"enum": ["step", "pivot", "readonly", "retriable"]}  # Literal
    assert defs["CompensationPolicy"]["properties"]["order"] == {
        "anyOf": [{"enum": ["reverse", "parallel"]}, {"type": "null"}]
    }
    assert defs["Compare"]["properties"]["left"] == {"$ref": "#/$defs/Expr"}
    assert defs["Saga"]["properties"]["input"] == {
        "anyOf": [{"$ref": "#/$defs/InputFields"}, {"$ref": "#/$defs/InputSchema"}, {"type": "null"}]
    }
    assert defs["Literal"]["properties"]["value"]["anyOf"][-1] == {"type": "null"}


def test_the_schema_rejects_a_broken_export() -> None:
    data: dict[str, Any] = export_module(parse((EXAMPLES / "order.saga").read_text(encoding="utf-8"), "order.saga"))
    validator = _validator()
    step = data["sagas"][0]["body"][0]
    step["kind"] = "sometimes"
    assert any("sometimes" in m for m in _messages(validator.iter_errors(data)))
    step["kind"] = "step"
    del step["undo"]
    assert "'undo' is a required property" in _messages(validator.iter_errors(data))
    step["undo"] = None
    step["colour"] = "blue"
    assert not validator.is_valid(data)


def test_load_module_rejects_other_documents() -> None:
    with pytest.raises(ValueError, match="sagalang-ir"):
        load_module({"format": "something-else", "version": 1})


# ---- the CLI ---------------------------------------------------------------------------


def test_cli_export_prints_json_and_writes_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    runner = CliRunner()
    shown = runner.invoke(main, ["export", "specs/examples/containerize.saga"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["file"] == "specs/examples/containerize.saga"
    assert data["imports"][0]["path"] == "lib/registry.saga"
    assert _validator().is_valid(data)
    out = tmp_path / "c.json"
    written = runner.invoke(main, ["export", "specs/examples/containerize.saga", "-o", str(out)])
    assert written.exit_code == 0 and written.output == ""
    assert out.read_text(encoding="utf-8") == shown.output


def test_cli_export_of_an_invalid_spec_prints_diagnostics_and_exits_1(tmp_path: Path) -> None:
    bad = tmp_path / "bad.saga"
    bad.write_text("saga s {\n  step a { do x.y() }\n  step b after nowhere { do x.z() }\n}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["export", str(bad)])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "bad.saga:3:16: error[E201]: unknown step 'nowhere'" in result.stderr
    broken = tmp_path / "broken.saga"
    broken.write_text("saga s {\n  step a { do x.y( }\n}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["export", str(broken)])
    assert result.exit_code == 1 and "broken.saga:2:" in result.stderr and "error[E010]" in result.stderr
    missing = CliRunner().invoke(main, ["export", str(tmp_path / "nope.saga")])
    assert missing.exit_code == 1 and "E001" in missing.stderr and "Traceback" not in missing.output


def test_cli_schema_prints_the_schema(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["schema"])
    assert result.exit_code == 0
    assert json.loads(result.output) == ir_schema()
    out = tmp_path / "s.json"
    assert runner.invoke(main, ["schema", "-o", str(out)]).exit_code == 0
    assert json.loads(out.read_text(encoding="utf-8")) == ir_schema()


def test_export_from_a_loaded_project_matches_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    project = load_project(["specs/examples/order.saga"])
    [sf] = list(project.modules())
    assert sf.module is not None
    cli = CliRunner().invoke(main, ["export", "specs/examples/order.saga"])
    assert cli.output == dumps(export_module(sf.module))
