"""`sagalang test` and the fault-injection library: examples pass, flawed specs are caught."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from sagalang.cli import main
from sagalang.events import Event
from sagalang.plugins import Registry
from sagalang.spec import load
from sagalang.testing import EffectLog, FailurePoint, _check, explore_file, scenario

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "specs" / "examples").glob("*.saga"))
FLAWED = ROOT / "specs" / "flawed"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_every_example_keeps_every_invariant(path: Path) -> None:
    report = explore_file(path)
    assert report.baseline == "completed"
    bad = {o.point.id: o.violations for o in report.outcomes if o.violations}
    assert not bad
    kinds = {o.point.kind for o in report.outcomes}
    assert {"fail", "timeout", "cancel", "crash"} <= kinds
    # every step that ran is a failure point of its own
    assert len([o for o in report.outcomes if o.point.kind == "fail"]) >= 3


@pytest.mark.parametrize(
    ("name", "point", "invariant"),
    [
        ("undo_reads_missing_output", "timeout:charge", "undo-data"),
        ("leaky_compensation", "undo-flaky:bucket", "kept-or-undone"),
        ("pivot_before_compensatable", "fail:email", "kept-or-undone"),
    ],
)
def test_flawed_specs_are_caught_at_the_right_failure_point(name: str, point: str, invariant: str) -> None:
    report = explore_file(FLAWED / f"{name}.saga", unchecked=True)
    found = {o.point.id: o.violations for o in report.outcomes if o.violations}
    assert point in found, f"{point} not caught; caught: {sorted(found)}"
    assert any(v.startswith(invariant + ":") for v in found[point]), found[point]


def test_cli_passes_an_example_and_reports_counts(runner) -> None:  # type: ignore[no-untyped-def]
    res = runner.invoke(main, ["test", "--fake", str(ROOT / "specs/examples/order.saga")])
    assert res.exit_code == 0, res.output
    assert "failure points explored" in res.output
    assert "every invariant held" in res.output


def test_cli_fails_a_flawed_spec_with_a_reproducer(runner) -> None:  # type: ignore[no-untyped-def]
    path = FLAWED / "undo_reads_missing_output.saga"
    res = runner.invoke(main, ["test", "--fake", str(path)])
    assert res.exit_code == 1
    assert "FAIL timeout:charge" in res.output
    assert f"sagalang test {path} --only timeout:charge --fake" in res.output


def test_cli_json_and_only(runner) -> None:  # type: ignore[no-untyped-def]
    res = runner.invoke(
        main, ["test", "--fake", "--json", "--only", "fail:charge", str(ROOT / "specs/examples/order.saga")]
    )
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert [o["point"] for o in doc[0]["outcomes"]] == ["fail:charge"]
    assert doc[0]["outcomes"][0]["status"] == "compensated"
    assert doc[0]["outcomes"][0]["compensated"] == ["reserve"]


def test_cli_invalid_spec_shows_diagnostics_and_explores(runner) -> None:  # type: ignore[no-untyped-def]
    res = runner.invoke(main, ["test", "--fake", str(FLAWED / "pivot_before_compensatable.saga")])
    assert res.exit_code == 1
    assert "error[" in res.output
    assert "FAIL fail:email" in res.output


def test_scenario_given_when_expect() -> None:
    s = scenario(ROOT / "specs/examples/order.saga").given(order_id="A", sku="S", qty=1, amount=1.0, card="4111")
    s.when_fails("charge").run().expect(status="compensated", compensated=["reserve"])
    with pytest.raises(AssertionError, match="expected undo order"):
        s.when_fails("charge").run().expect(compensated=["charge", "reserve"])


def _ev(seq: int, kind: str, step: str | None = None, **data: object) -> Event:
    return Event(kind, "r", seq, 0.0, step, None, None, data)


def test_the_checker_catches_a_wrong_undo_order() -> None:
    # a -> b: b's undo must end before a's starts; here it is the other way round.
    spec = load(ROOT / "specs/examples/order.saga", registry=Registry())
    events = [
        _ev(1, "saga.started"),
        _ev(2, "step.started", "reserve"),
        _ev(3, "step.succeeded", "reserve"),
        _ev(4, "step.started", "charge"),
        _ev(5, "step.succeeded", "charge"),
        _ev(6, "step.started", "label"),
        _ev(7, "step.failed", "label", error={"type": "X"}),
        _ev(8, "compensation.started", "reserve"),
        _ev(9, "compensation.succeeded", "reserve"),
        _ev(10, "compensation.started", "charge"),
        _ev(11, "compensation.succeeded", "charge"),
        _ev(12, "saga.compensated"),
    ]
    log = EffectLog()
    log.apply("r/reserve", "reserve", "inventory.reserve")
    log.apply("r/charge", "charge", "payments.charge")
    log.undo("r/reserve", "reserve", "inventory.release", {})
    log.undo("r/charge", "charge", "payments.refund", {})
    status, violations, undone = _check(FailurePoint("fail", "label"), spec, events, log, ("compensated",), None)
    assert status == "compensated"
    assert undone == ["reserve", "charge"]
    assert any(v.startswith("reverse-order:") for v in violations)


def test_the_checker_catches_double_application_and_undo_of_unstarted_steps() -> None:
    spec = load(ROOT / "specs/examples/order.saga", registry=Registry())
    events = [
        _ev(1, "saga.started"),
        _ev(2, "step.started", "reserve"),
        _ev(3, "step.failed", "reserve", error={"type": "X"}),
        _ev(4, "compensation.started", "charge"),
        _ev(5, "compensation.succeeded", "charge"),
        _ev(6, "saga.compensated"),
    ]
    log = EffectLog()
    eff = log.apply("r/reserve", "reserve", "inventory.reserve")
    eff.applied = 2  # an engine that changed the key on retry would do this
    eff.calls = 2
    _, violations, _ = _check(FailurePoint("fail", "reserve"), spec, events, log, ("compensated",), None)
    assert any(v.startswith("applied-once:") for v in violations)
    assert any(v.startswith("never-started:") for v in violations)
    assert any(v.startswith("kept-or-undone:") for v in violations)


def test_worked_example_in_the_docs_passes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(ROOT / "docs/testing")],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout
