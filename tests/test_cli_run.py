"""``sagalang run`` and ``sagalang handlers`` through the CLI."""

from __future__ import annotations

import asyncio
import io
import json
import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from sagalang.cli import main
from sagalang.cli.progress_view import ProgressView, mode_for
from sagalang.events import Event
from sagalang.progress import Board, Plan

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
    code, out, err = invoke("--set", "sku=A1", "--set", "card=abcd-1234", "--progress", "--id", "p-1")
    assert code == 0
    lines = err.splitlines()
    assert lines[0] == "run p-1: saga order started"  # the run id first, before any step
    assert "reserve: started" in lines and "notify: started" in lines
    assert re.fullmatch(r"reserve: done in \d+ ms", lines[lines.index("reserve: started") + 1])
    assert re.fullmatch(r"run p-1: completed \(took [0-9.]+ m?s\)", lines[-1])
    assert not [line for line in lines if re.search(r"\b(saga|step|compensation)\.[a-z_]+\b", line)]
    assert out.startswith("run p-1: completed\n")
    code, _, err = invoke("--set", "sku=A1", "--set", "card=abcd-1234", "--no-progress")
    assert code == 0 and err == ""


RETRY_SPEC = """
saga flaky version "1" {
    timeout 300ms
    step charge {
        do flaky.charge(tries: input.tries)
        undo flaky.refund()
        retry attempts 5 backoff 10ms x2 on flaky.Timeout
    }
    step hang { do flaky.hang(when: input.hang) undo flaky.refund() }
}
"""

RETRY_HANDLERS = """
import asyncio
from sagalang.plugins import handler
from sagalang.context import Failure

@handler("flaky.charge")
async def charge(ctx, tries: int) -> dict:
    if ctx.attempt <= tries:
        raise Failure("flaky.Timeout", f"gateway slow (call {ctx.attempt})")
    return {"ok": ctx.attempt}

@handler("flaky.refund")
async def refund() -> None:
    return None

@handler("flaky.hang")
async def hang(when: bool) -> dict:
    if when:
        await asyncio.Event().wait()  # never answers: only the saga's timeout ends it
    return {}
"""


def _flaky(project: Path, *args: str) -> tuple[int, str, str]:
    (project / "flaky.py").write_text(RETRY_HANDLERS)
    (project / "flaky.saga").write_text(RETRY_SPEC)
    result = CliRunner().invoke(
        main, ["run", "flaky.saga", "--plugin", "flaky.py", "--store", "memory:", "--id", "f-1", *args]
    )
    return result.exit_code, result.stdout, result.stderr


def test_progress_tells_attempt_n_of_n_and_the_next_delay(project: Path) -> None:
    code, _, err = _flaky(project, "--set", "tries=2", "--set", "hang=false", "--progress")
    assert code == 0, err
    lines = err.splitlines()
    # N is the spec's: the step's own policy (5 attempts); the delays its backoff (10 ms, then x2).
    assert "charge: retrying in 10 ms (attempt 2/5): flaky.Timeout: gateway slow (call 1)" in lines
    assert "charge: retrying in 20 ms (attempt 3/5): flaky.Timeout: gateway slow (call 2)" in lines
    assert "charge: attempt 3/5" in lines


def test_a_saga_timeout_reads_as_such(project: Path) -> None:
    code, out, err = _flaky(project, "--set", "tries=0", "--set", "hang=true", "--progress")
    assert code == 1, out + err
    assert out.splitlines() == [
        "run f-1: cancelled: saga timeout after 300ms",
        "interrupted: hang",
        "compensated: hang, charge",
    ]
    assert "rolling back: saga timeout after 300ms" in err.splitlines()


class _Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def test_progress_mode_follows_the_terminal_no_color_and_the_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    tty, pipe = _Terminal(), io.StringIO()
    assert [mode_for(None, tty), mode_for(True, tty), mode_for(False, tty)] == ["live", "live", "off"]
    assert [mode_for(None, pipe), mode_for(True, pipe), mode_for(False, pipe)] == ["off", "lines", "off"]
    monkeypatch.setenv("NO_COLOR", "1")
    assert [mode_for(None, tty), mode_for(False, tty)] == ["lines", "off"]
    monkeypatch.delenv("NO_COLOR")
    monkeypatch.setenv("TERM", "dumb")
    assert mode_for(None, tty) == "lines"


def test_live_progress_redraws_a_table_in_place(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    out = _Terminal()
    plan = Plan(steps=("charge", "lines"), attempts={"charge": 5, "lines": 1})
    view = ProgressView(Board(plan), out, "live", clock=lambda: 1000.0)
    timeout = {"type": "payments.Timeout", "message": "gateway slow"}

    async def feed() -> None:
        for e in [
            Event("saga.started", "r-9", 1, 999.0, data={"saga": "order"}),
            Event("step.started", "r-9", 2, 999.0, step="charge", attempt=1),
            Event("step.failed", "r-9", 3, 999.1, step="charge", attempt=1, data={"error": timeout, "final": False}),
            Event("step.retrying", "r-9", 4, 999.1, step="charge", attempt=1, data={"delay_ms": 200, "error": timeout}),
            Event("step.started", "r-9", 5, 999.3, step="lines", attempt=1, data={"items": 10}),
            *[Event("step.succeeded", "r-9", 6 + i, 999.4, step="lines", item=i, attempt=1) for i in range(3)],
        ]:
            view(e)

    asyncio.run(view.during(feed()))
    text = out.getvalue()
    assert "\x1b[1A" in text and "\x1b[2K" in text  # each frame moves back over the last one
    last = text.rsplit("run r-9", 1)[1]
    assert "1.0 s" in last  # the run's elapsed time, from its start to the view's clock
    assert "attempt 1/5" in last and "retrying in 200 ms: payments.Timeout: gateway slow" in last
    assert "3/10 items" in last and "━" in last  # a fan-out's items, with a bar
    assert "lines[2]: done (3/10 items)" in last  # the latest event, in words, at the bottom
    assert "step." not in text


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
