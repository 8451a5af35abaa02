"""``sagalang run`` and ``sagalang handlers`` through the CLI."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from sagalang.cli import main

HANDLERS = '''
import asyncio
from sagalang.plugins import handler
from sagalang.context import Failure

@handler("shop.reserve")
async def reserve(sku: str, qty: int = 1) -> dict:
    """Reserve stock."""
    return {"rid": f"R-{sku}-{qty}"}

@handler("shop.release")
async def release(rid: str) -> None:
    return None

@handler("shop.charge")
def charge(card: str, amount: float) -> dict:
    if amount > 1000:
        raise Failure("shop.Declined", f"card {card} declined", retryable=False)
    return {"cid": "C1"}

@handler("shop.refund")
def refund(cid: str) -> None:
    return None

@handler("shop.ship")
async def ship(ctx, sku: str) -> dict:
    return {"tracking": "T-" + ctx.idempotency_key.rsplit("/", 1)[1]}

@handler("shop.notify")
async def notify(sku: str) -> None:
    if sku == "stuck":
        raise Failure("shop.Down", "mail server down", retryable=False)
'''

SPEC = """
saga order version "1" {
    input {
        sku: string
        qty: integer = 1
        amount: number = 10
        card: string secret
        address: object = {}
    }
    step reserve {
        do shop.reserve(sku: input.sku, qty: input.qty)
        undo shop.release(rid: reserve.rid)
    }
    step charge {
        do shop.charge(card: input.card, amount: input.amount)
        undo shop.refund(cid: charge.cid)
    }
    pivot step ship { do shop.ship(sku: input.sku) }
    step notify { do shop.notify(sku: input.sku) retry attempts 2 }
    output { tracking: ship.tracking, city: default(input.address.city, "?") }
}
"""


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "shop.py").write_text(HANDLERS)
    (tmp_path / "order.saga").write_text(textwrap.dedent(SPEC))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        main, ["run", "order.saga", "--plugin", "shop.py", "--store", "memory:", *args], input=input
    )
    return result.exit_code, result.stdout, result.stderr


def test_completed_run_exits_0_with_output(project: Path) -> None:
    code, out, _ = invoke("--set", "sku=A1", "--set", "card=abcd-1234", "--set", "address.city=Delft")
    assert code == 0, out
    assert ": completed" in out
    assert '"tracking": "T-ship"' in out and '"city": "Delft"' in out


def test_input_file_or_stdin_and_json_result(project: Path) -> None:
    (project / "in.json").write_text(json.dumps({"sku": "A1", "card": "abcd-1234", "qty": 3}))
    code, out, _ = invoke("--input", "in.json", "--json", "--id", "run-7")
    assert code == 0
    doc = json.loads(out)
    assert doc["status"] == "completed" and doc["run_id"] == "run-7"
    code, out, _ = invoke("--input", "-", "--json", input=json.dumps({"sku": "B", "card": "abcd-1234"}))
    assert code == 0 and json.loads(out)["output"]["tracking"] == "T-ship"


def test_compensated_run_exits_1_and_redacts_secrets(project: Path) -> None:
    code, out, err = invoke(
        "--set", "sku=A1", "--set", "card=abcd-1234", "--set", "amount=5000", "--events", "ev.jsonl"
    )
    assert code == 1
    assert "compensated" in out and "failed step: charge" in out
    assert "card *** declined" in out and "abcd-1234" not in out + err
    events = [json.loads(line) for line in (project / "ev.jsonl").read_text().splitlines()]
    assert events[0]["event"] == "saga.started"
    assert events[-1]["event"] == "saga.compensated"
    assert "abcd-1234" not in (project / "ev.jsonl").read_text()
    assert {"event", "run_id", "seq", "time"} <= set(events[1])


def test_stuck_run_exits_4(project: Path) -> None:
    code, out, _ = invoke("--set", "sku=stuck", "--set", "card=abcd-1234")
    assert code == 4
    assert ": stuck" in out and "failed step: notify" in out and "compensated:" not in out


def test_fail_at_injects_failures(project: Path) -> None:
    code, out, _ = invoke("--set", "sku=A1", "--set", "card=abcd-1234", "--fail-at", "charge", "--json")
    assert code == 1
    doc = json.loads(out)
    assert doc["failed_step"] == "charge" and doc["compensated"] == ["reserve"]
    assert doc["error"]["type"] == "sagalang.InjectedFailure"


def test_invalid_input_exits_3_naming_the_field(project: Path) -> None:
    code, _, err = invoke("--set", "sku=A1", "--set", "qty=many", "--set", "card=x")
    assert code == 3
    assert err == "sagalang: error: --set qty=many: input.qty expects an integer, not 'many'\n"
    (project / "in.json").write_text(json.dumps({"sku": "A1", "card": "x", "qty": "many"}))
    code, _, err = invoke("--input", "in.json")
    assert code == 3 and "input.qty: 'many' is not of type 'integer'" in err
    code, _, err = invoke("--input", "missing.json")
    assert code == 3 and "cannot read input missing.json" in err
    (project / "bad.json").write_text("{nope")
    code, _, err = invoke("--input", "bad.json")
    assert code == 3 and "bad.json:1:2: input is not valid JSON" in err
    code, _, err = invoke("--set", "novalue")
    assert code == 3 and "KEY=VALUE" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff{}", "in.json: input is not UTF-8 text (byte 0xff at offset 0)"),
        (b"[1, 2]", "in.json: input must be a JSON object, not an array"),
        (b"{", "in.json:1:2: input is not valid JSON: Expecting property name enclosed in double quotes"),
    ],
)
def test_a_bad_input_file_exits_3_with_one_line(project: Path, content: bytes, message: str) -> None:
    (project / "in.json").write_bytes(content)
    code, out, err = invoke("--input", "in.json")
    assert code == 3 and out == ""
    assert err == f"sagalang: error: {message}\n"


def test_set_converts_by_the_declared_type(project: Path) -> None:
    code, out, err = invoke(
        "--set", "sku=12345", "--set", "card=4111111111111111", "--set", "qty=3", "--events", "ev.jsonl"
    )
    assert code == 0, out + err  # a card number for a string field stays text
    started = json.loads((project / "ev.jsonl").read_text().splitlines()[0])
    assert started["data"]["input"]["sku"] == "12345" and started["data"]["input"]["qty"] == 3
    assert started["data"]["input"]["card"] == "***"


def test_conflicting_sets_exit_3_naming_both(project: Path) -> None:
    code, _, err = invoke("--set", "sku=A1", "--set", "address=1", "--set", "address.city=Delft")
    assert code == 3
    conflict = "--set address.city=Delft conflicts with --set address=1: both assign input.address"
    assert err == f"sagalang: error: {conflict}\n"
    code, _, err = invoke("--set", "card=1111", "--set", "card=2222")
    assert code == 3 and "--set card=*** conflicts with --set card=***" in err and "1111" not in err


def test_fail_at_an_unknown_step_is_a_usage_error(project: Path) -> None:
    code, out, err = invoke("--set", "sku=A1", "--set", "card=x", "--fail-at", "shipp")
    assert code == 2, out + err
    assert "Error: Invalid value for --fail-at: saga 'order' has no step 'shipp'; did you mean 'ship'?" in err
    code, _, err = invoke("--set", "sku=A1", "--set", "card=x", "--fail-at", "zzz")
    assert code == 2 and "its steps: reserve, charge, ship, notify" in err


def test_submit_reads_input_as_run_does(project: Path) -> None:
    store = f"sqlite:///{project}/queue.db"

    def submit(*args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(
            main, ["submit", "order.saga", "--plugin", "shop.py", "--store", store, "--json", *args]
        )
        return result.exit_code, result.stdout, result.stderr

    code, out, err = submit("--set", "sku=12345", "--set", "card=4111111111111111", "--set", "qty=3", "--id", "q1")
    assert code == 0, out + err
    assert json.loads(out) == {"run_id": "q1", "created": True, "status": "queued"}
    code, _, err = submit("--set", "sku=A1", "--set", "address=1", "--set", "address.city=Delft")
    assert code == 3 and "--set address.city=Delft conflicts with --set address=1" in err
    (project / "in.json").write_bytes(b"\xff{}")
    code, _, err = submit("--input", "in.json")
    assert code == 3 and err == "sagalang: error: in.json: input is not UTF-8 text (byte 0xff at offset 0)\n"


def test_invalid_spec_exits_3_with_diagnostics(project: Path) -> None:
    (project / "order.saga").write_text("saga broken {\n  step a { do shop.reserve(sku: 1) }\n  step a { }\n")
    code, _, err = invoke()
    assert code == 3
    assert "order.saga:" in err and "error[" in err


def test_plain_progress_lines_when_not_a_terminal(project: Path) -> None:
    code, _, err = invoke("--set", "sku=A1", "--set", "card=abcd-1234", "--progress")
    assert code == 0
    lines = err.splitlines()
    assert lines[0] == "saga.started"
    assert "step.started reserve" in lines and "saga.completed" in lines


def test_handlers_lists_plugins(project: Path) -> None:
    result = CliRunner().invoke(main, ["handlers", "--plugin", "shop.py"])
    assert result.exit_code == 0
    line = next(x for x in result.output.splitlines() if x.startswith("shop.reserve"))
    assert "(sku, qty?)" in line and "async" in line and "shop.py" in line
    result = CliRunner().invoke(main, ["handlers", "--plugin", "shop.py", "--json"])
    doc = {h["name"]: h for h in json.loads(result.output)}
    assert doc["shop.charge"]["params"] == [
        {"name": "card", "required": True, "type": "str"},
        {"name": "amount", "required": True, "type": "float"},
    ]
    assert doc["shop.charge"]["async"] is False
    assert doc["shop.ship"]["params"] == [{"name": "sku", "required": True, "type": "str"}]


def test_handlers_reports_a_broken_plugin(project: Path) -> None:
    (project / "broken.py").write_text("raise ImportError('no such backend')\n")
    result = CliRunner().invoke(main, ["handlers", "--plugin", "broken.py"])
    assert result.exit_code == 1
    assert "broken.py failed to import" in result.stderr and "no such backend" in result.stderr


def test_live_progress_redraws_in_place() -> None:
    import io

    from sagalang.cli.cmd_run import Progress
    from sagalang.events import Event

    out = io.StringIO()
    view = Progress(["a", "b"], live=True, color=False, stream=out)
    view(Event("saga.started", "r", 1))
    view(Event("step.started", "r", 2, step="a", attempt=1))
    view(Event("step.failed", "r", 3, step="a", attempt=1, data={"error": {"message": "boom"}, "final": False}))
    view(Event("step.retrying", "r", 4, step="a", attempt=1, data={"delay_ms": 100}))
    view(Event("step.succeeded", "r", 5, step="a", attempt=2))
    text = out.getvalue()
    # After the first frame every frame moves the cursor back up over the previous one.
    assert text.count("\x1b[3F") == 4
    last = text.rsplit("\x1b[3F", 1)[1]
    assert "✓ a" in last and "succeeded" in last and "· b" in last and "pending" in last
    assert "retry in 100 ms" in text
