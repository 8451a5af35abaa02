"""``sagalang plan`` and sagalang.plan: forward levels and what each failure triggers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from sagalang import ir
from sagalang.cli import main
from sagalang.parser import parse
from sagalang.plan import SagaPlan, Undo, describe_duration, describe_retry, format_plans, plan_module, plan_saga

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "specs" / "examples"


def _plan(name: str, saga: int = 0) -> SagaPlan:
    path = EXAMPLES / f"{name}.saga"
    return plan_module(parse(path.read_text(encoding="utf-8"), str(path)))[saga]


def _order(p: SagaPlan, step: str) -> list[list[tuple[str, str]]]:
    return [[(u.step, u.certainty) for u in group] for group in p.failure(step).compensation]


def _text_plan(src: str) -> SagaPlan:
    return plan_saga(parse(src, "t.saga").sagas[0], "t.saga")


# ---- the examples ------------------------------------------------------------------------


def test_order_plan() -> None:
    p = _plan("order")
    assert p.levels == (("reserve",), ("charge",), ("label", "upgrade"), ("ship",), ("notify",))
    assert p.pivot == "ship" and p.compensation_order == "reverse"
    assert p.step("upgrade").marks == ("conditional",)
    assert p.step("ship").marks == ("pivot",) and p.step("ship").undo is None
    assert p.step("notify").marks == ("retriable",)
    assert p.step("charge").retry == "attempts 5 backoff 100ms x2 max 2s on payments.Timeout"
    # the seed's case: shipping fails -> refund, then release (and the express upgrade first, if it ran)
    assert _order(p, "ship") == [
        [("label", "completed"), ("upgrade", "completed")],  # independent: the latest completed first
        [("charge", "completed")],
        [("reserve", "completed")],
    ]
    assert p.failure("ship").compensation[0][1] == Undo("upgrade", "completed", conditional=True)
    # charging fails -> the reservation is released; the charge only if its outcome is unknown
    assert _order(p, "charge") == [[("charge", "if uncertain")], [("reserve", "completed")]]
    assert _order(p, "reserve") == [[("reserve", "if uncertain")]]
    # a label failure: its sibling may have completed meanwhile
    assert _order(p, "label") == [
        [("label", "if uncertain"), ("upgrade", "may have completed")],
        [("charge", "completed")],
        [("reserve", "completed")],
    ]
    notify = p.failure("notify")
    assert notify.recovery == "forward" and notify.compensation == ()
    assert notify.notes == ("past ship there is no going back; retry forever backoff 1s x2 max 1m until it succeeds",)


def test_travel_plan_groups_parallel_compensation() -> None:
    p = _plan("travel")
    assert p.levels == (("quote",), ("seats", "hotel", "car"), ("payment",), ("itinerary",))
    assert p.compensation_order == "parallel"
    assert p.step("seats").marks == ("fan-out",)
    assert p.step("quote").marks == ("readonly",) and p.step("quote").undo is None
    assert _order(p, "payment") == [
        [("payment", "if uncertain")],
        [("seats", "completed"), ("hotel", "completed"), ("car", "completed")],
    ]
    assert _order(p, "hotel") == [
        [("seats", "may have completed"), ("hotel", "if uncertain"), ("car", "may have completed")]
    ]
    seats = p.failure("payment").compensation[1][0]
    assert seats.fan_out and seats.label() == "seats[each item]"
    assert _order(p, "quote") == [] and p.failure("quote").notes[0].startswith("nothing to undo")
    # itinerary has no undo and nothing compensatable follows it: it is the point of no return
    assert p.pivot == "itinerary"
    assert any("siblings still running" in n for n in p.notes)
    assert any("saga timeout 1d" in n for n in p.notes)


def test_transfer_plan_forward_recovery_after_the_pivot() -> None:
    p = _plan("transfer")
    assert p.pivot == "credit"
    assert _order(p, "credit") == [[("debit", "completed")]]
    assert _order(p, "debit") == [[("debit", "if uncertain")]]
    assert _order(p, "check_balance") == []
    for step in ("ledger", "receipt"):
        failure = p.failure(step)
        assert failure.recovery == "forward"
        assert failure.notes[0].startswith("past credit there is no going back; retry forever")
    assert p.step("receipt").marks == ("retriable", "conditional", "fan-out")


def test_containerize_plan() -> None:
    p = _plan("containerize")
    assert [lvl for (lvl,) in p.levels] == [
        "analyze",
        "dockerfile",
        "build",
        "scan",
        "push",
        "manifests",
        "deploy",
        "verify",
    ]
    assert p.pivot is None
    assert p.step("dockerfile").undo == "step object" and p.step("push").undo == "sub-saga"
    assert _order(p, "verify") == [
        [("deploy", "completed")],
        [("manifests", "completed")],
        [("push", "completed")],
        [("build", "completed")],
        [("dockerfile", "completed")],
    ]
    assert p.failure("verify").compensation[2][0].sub_saga
    assert any("3 attempts in all" in n and "containerkit.analyze_failure" in n for n in p.notes)


def test_registry_library_has_two_sagas() -> None:
    path = EXAMPLES / "lib" / "registry.saga"
    publish, unpublish = plan_module(parse(path.read_text(encoding="utf-8"), str(path)))
    assert _order(publish, "upload") == [[("upload", "if uncertain")], [("tag", "completed")]]
    assert unpublish.pivot == "remove" and _order(unpublish, "remove") == []


# ---- hand-written graphs -----------------------------------------------------------------


def test_after_edges_and_parallel_compensation_levels() -> None:
    p = _text_plan(
        """saga s {
          compensation { order parallel }
          step a { do x.a() undo x.ua() }
          step b after a { do x.b() undo x.ub() }
          step c after a { do x.c() undo x.uc() }
          step d after b, c { do x.d() undo x.ud() }
          step e { do x.e() undo x.ue() }
        }"""
    )
    assert "undo e (if its outcome is uncertain) -> d -> b + c -> a" in format_plans([p])
    assert p.levels == (("a",), ("b", "c"), ("d",), ("e",))
    assert _order(p, "e") == [
        [("e", "if uncertain")],
        [("d", "completed")],
        [("b", "completed"), ("c", "completed")],
        [("a", "completed")],
    ]
    # b fails while c may be running: c is undone if it completed, b only if uncertain
    assert _order(p, "b") == [[("b", "if uncertain"), ("c", "may have completed")], [("a", "completed")]]


def test_a_concurrent_point_of_no_return_is_pointed_out() -> None:
    p = _text_plan(
        """saga s {
          step a { do x.a() undo x.ua() }
          parallel {
            pivot step p { do x.p() }
            step q { do x.q() undo x.uq() }
          }
        }"""
    )
    assert _order(p, "q") == [[("q", "if uncertain")], [("a", "completed")]]
    assert "p may run at the same time" in p.failure("q").notes[0]


def test_a_step_after_the_pivot_without_retry_is_stuck_at_once() -> None:
    p = _text_plan("saga s { pivot step p { do x.p() } step n { do x.n() } }")
    assert p.failure("n").notes == (
        "past p there is no going back; no retry policy, so the saga is stuck at its first failure",
    )
    limited = _text_plan("saga s { pivot step p { do x.p() } step n { do x.n() retry attempts 4 } }")
    assert limited.failure("n").notes == ("past p there is no going back; retry attempts 4, then the saga is stuck",)


def test_a_cyclic_saga_has_no_plan() -> None:
    with pytest.raises(ValueError, match="cycle"):
        _text_plan("saga s { step a after b { do x.a() } step b after a { do x.b() } }")


def test_described_policies_parse_back_to_the_same_ir() -> None:
    policies = []
    for path in sorted(EXAMPLES.rglob("*.saga")):
        for saga in parse(path.read_text(encoding="utf-8"), str(path)).sagas:
            policies += [s.retry for s in saga.steps() if s.retry is not None]
            if saga.defaults is not None and saga.defaults.retry is not None:
                policies.append(saga.defaults.retry)
    assert len(policies) > 10
    for policy in policies:
        text = describe_retry(policy)
        again = parse(f"saga s {{ defaults {{ retry {text} }} step a {{ do x.y() }} }}").sagas[0].defaults
        assert again is not None and again.retry == policy, text
    assert [describe_duration(ir.Duration(ms)) for ms in (250, 1500, 60_000, 90_000, 7_200_000, 86_400_000)] == [
        "250ms",
        "1.5s",
        "1m",
        "1.5m",
        "2h",
        "1d",
    ]


def test_text_output_mentions_every_step() -> None:
    text = format_plans([_plan("order")])
    assert "     3. label | upgrade [conditional]" in text
    assert "    ship     undo label / upgrade (if it ran) -> charge -> reserve" in text
    assert "point of no return: ship" in text


# ---- the CLI -----------------------------------------------------------------------------


def test_cli_plan_text_and_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    runner = CliRunner()
    text = runner.invoke(main, ["plan", "specs/examples/travel.saga"])
    assert text.exit_code == 0, text.output
    assert text.output.startswith("saga book_trip  (specs/examples/travel.saga)\n")
    assert (
        "payment    undo payment (if its outcome is uncertain) -> seats[each item] + hotel + car (if it ran)"
        in text.output
    )
    data = json.loads(runner.invoke(main, ["plan", "specs/examples/travel.saga", "--json"]).output)
    assert data["format"] == "sagalang-plan" and data["version"] == 1
    [saga] = data["sagas"]
    assert saga["levels"] == [["quote"], ["seats", "hotel", "car"], ["payment"], ["itinerary"]]
    payment = next(f for f in saga["failures"] if f["step"] == "payment")
    assert [[u["step"] for u in g] for g in payment["compensation"]] == [["payment"], ["seats", "hotel", "car"]]


def test_cli_plan_picks_one_saga(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    runner = CliRunner()
    one = runner.invoke(main, ["plan", "specs/examples/lib/registry.saga", "--saga", "unpublish"])
    assert one.exit_code == 0 and "saga unpublish" in one.output and "saga publish" not in one.output
    none = runner.invoke(main, ["plan", "specs/examples/lib/registry.saga", "--saga", "nope"])
    assert none.exit_code == 1
    assert "no saga 'nope'" in none.stderr and "publish, unpublish" in none.stderr


def test_cli_plan_of_an_invalid_spec(tmp_path: Path) -> None:
    bad = tmp_path / "cyc.saga"
    bad.write_text("saga s {\n  step a after b { do x.a() }\n  step b after a { do x.b() }\n}\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["plan", str(bad)])
    assert result.exit_code == 1
    assert "error[E202]: dependency cycle" in result.stderr and result.stdout == ""


def test_the_cli_reference_shows_the_real_output(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    doc = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    section = doc[doc.index("## `sagalang plan SPEC`") :]
    shown = section[section.index("```text\n") + len("```text\n") : section.index("```\n", section.index("```text"))]
    assert CliRunner().invoke(main, ["plan", "specs/examples/order.saga"]).output == shown


def test_sub_saga_compensation_is_spelled_out() -> None:
    module = parse(
        """saga outer {
          step a { do x.a() undo x.ua() }
          step b { call middle() }
        }
        saga middle {
          step m1 { do x.m() undo x.um() }
          step m2 { call inner() }
          readonly step m3 { do x.look() }
        }
        saga inner {
          step i1 { do x.i() undo x.ui() }
          step i2 { do x.j() undo x.uj() }
        }""",
        "t.saga",
    )
    outer = plan_module(module)[0]
    [undo_b] = outer.failure("b").compensation[0]
    assert undo_b.inner == ("m2/i2", "m2/i1", "m1")
    assert undo_b.label() == "b (if its outcome is uncertain; its completed steps: m2/i2, m2/i1, m1)"
    # without the callee's definition the plan still says a sub-saga is compensated
    alone = plan_saga(module.sagas[0])
    assert alone.failure("b").compensation[0][0].inner == ()


def test_cli_plan_follows_imports_into_sub_sagas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    runner = CliRunner()
    text = runner.invoke(main, ["plan", "specs/examples/containerize.saga"]).output
    assert "verify      undo deploy -> manifests -> push (its completed steps: upload, tag) -> build" in text
    data = json.loads(runner.invoke(main, ["plan", "docs/examples/header.saga", "--json"]).output)
    checkout = data["sagas"][0]
    failure = next(f for f in checkout["failures"] if f["step"] == "pay")
    assert failure["compensation"][0][0]["sub_saga_undo"] == ["charge"]
