"""Golden capture: what the CLI answers on every spec, and every example run's journal, stay as recorded.

tests/golden/README.md says what is captured and how; regenerate with
``SAGALANG_UPDATE_GOLDENS=1 .venv/bin/pytest tests/test_golden.py`` (or
``scripts/update_goldens.py``) and review the diff before committing it.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from golden.capture import (
    COMMANDS,
    GOLDEN,
    ROOT,
    RunCase,
    capture_run,
    full_specs,
    golden_dir,
    run_cases,
    run_cli,
    validate_only_specs,
)
from golden.compare import diff_journal, diff_output

UPDATE = os.environ.get("SAGALANG_UPDATE_GOLDENS") == "1"
HOW = "if the change is intended, regenerate: SAGALANG_UPDATE_GOLDENS=1 .venv/bin/pytest tests/test_golden.py"
META = "commands.json"  # per spec: each command's argv, exit code, standard error and output file
FULL = full_specs()
VALIDATE_ONLY = validate_only_specs()
RUNS = run_cases()


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    # The commands run from the repository root, whose [tool.sagalang] plugins hold the example handlers.
    monkeypatch.chdir(ROOT)


def _read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _capture(spec: str, names: list[str]) -> dict[str, str]:
    """The golden files of ``spec``'s commands: each non-empty output, and commands.json."""
    files: dict[str, str] = {}
    meta: dict[str, dict[str, object]] = {}
    for name in names:
        out, info = run_cli(spec, name)
        meta[name] = {**info, "stdout": name if out else None}
        if out:
            files[name] = out
    files[META] = json.dumps(meta, indent=2, ensure_ascii=False) + "\n"
    return files


def _check_files(folder: Path, files: dict[str, str], label: str) -> None:
    """Compare (or, when updating, write) every file of ``files`` in ``folder``; no other file may be there."""
    present = {p.name for p in folder.iterdir() if p.is_file()} if folder.is_dir() else set()
    if UPDATE:
        for name in present - files.keys():
            (folder / name).unlink()
        for name, text in files.items():
            if _read(folder / name) != text:
                _write(folder / name, text)
        return
    problems = [
        f"{label}: no golden {name} (run with SAGALANG_UPDATE_GOLDENS=1 to record it)"
        for name in sorted(files.keys() - present)
    ]
    problems += [f"{label}: golden {name} is no longer produced" for name in sorted(present - files.keys())]
    for name in sorted(files.keys() & present):
        expected = _read(folder / name)
        assert expected is not None
        diff = diff_output(expected, files[name], name)
        if diff is not None:
            problems.append(f"{label}: {name} changed:\n{diff}")
    assert not problems, "\n\n".join([*problems, HOW])


@pytest.mark.parametrize("spec", FULL)
def test_cli_outputs(spec: str) -> None:
    _check_files(golden_dir(spec), _capture(spec, list(COMMANDS)), spec)


@pytest.mark.parametrize("spec", VALIDATE_ONLY)
def test_validate_of_invalid_spec(spec: str) -> None:
    _check_files(golden_dir(spec), _capture(spec, ["validate.json"]), spec)


@pytest.mark.parametrize("case", RUNS, ids=lambda c: c.id)
def test_run_journal(case: RunCase, tmp_path: Path) -> None:
    actual = capture_run(case, tmp_path)
    expected = _read(case.path)
    if UPDATE:
        if expected != actual:
            _write(case.path, actual)
        return
    assert expected is not None, f"no golden {case.path.relative_to(ROOT)}; {HOW}"
    diff = diff_journal(expected, actual, case.path.name)
    assert diff is None, f"{case.id}: the run changed:\n{diff}\n\n{HOW}"


def test_no_stale_goldens() -> None:
    """Every folder and run file under tests/golden belongs to a spec or run that is still captured."""
    wanted_dirs = {golden_dir(s) for s in FULL + VALIDATE_ONLY}
    wanted_runs = {c.path for c in RUNS}
    stale = [p.parent for p in GOLDEN.rglob(META) if p.parent not in wanted_dirs]
    stale += [p for p in GOLDEN.rglob("runs/*.jsonl") if p not in wanted_runs]
    if UPDATE:
        for p in stale:
            if p.is_dir():
                shutil.rmtree(p)
            else:
                p.unlink()
        return
    assert not stale, "stale goldens: " + ", ".join(str(p.relative_to(ROOT)) for p in stale) + f"; {HOW}"


def test_the_capture_covers_the_project() -> None:
    """The globs still find the specs they are meant to find (a moved folder would silently drop them)."""
    assert len(FULL) >= 20 and len(VALIDATE_ONLY) >= 80
    assert {c.spec for c in RUNS} >= {
        "specs/examples/order.saga",
        "specs/examples/travel.saga",
        "specs/examples/transfer.saga",
        "specs/examples/containerize.saga",
        "docs/tutorial/trip.saga",
    }
    assert any(c.fail_at == "push/upload" for c in RUNS), "sub-saga steps get a fail_at run too"
    assert any(c.flaky == "registry.push" for c in RUNS), "and their handlers a flaky run"


# ---- the comparison explains what kind of change it found -----------------------------------

ORDER_RUN = GOLDEN / "specs" / "examples" / "order" / "runs" / "fail-at-ship.jsonl"


def _journal(lines: list[dict[str, object]]) -> str:
    return "".join(json.dumps(line) + "\n" for line in lines)


def _order_run() -> list[dict[str, object]]:
    return [json.loads(line) for line in ORDER_RUN.read_text(encoding="utf-8").splitlines()]


def _swap_concurrent_successes(lines: list[dict[str, object]]) -> list[dict[str, object]]:
    """The same run with label and upgrade (a parallel block) finishing in the other order."""
    at = [i for i, ev in enumerate(lines) if ev.get("kind") == "step.succeeded" and ev["step"] in ("label", "upgrade")]
    assert len(at) == 2
    a, b = at
    lines[a], lines[b] = {**lines[b], "seq": lines[a]["seq"]}, {**lines[a], "seq": lines[b]["seq"]}
    return lines


def test_an_identical_journal_has_no_diff() -> None:
    text = ORDER_RUN.read_text(encoding="utf-8")
    assert diff_journal(text, text, "x") is None


def test_a_change_of_interleaving_alone_is_named_as_such() -> None:
    text = ORDER_RUN.read_text(encoding="utf-8")
    diff = diff_journal(text, _journal(_swap_concurrent_successes(_order_run())), "x")
    assert diff is not None and diff.startswith("ONLY THE INTERLEAVING OF CONCURRENT STEPS DIFFERS")
    moved = {line[1:] for line in diff.splitlines() if line[:1] in "+-" and line[:3] not in ("+++", "---")}
    assert moved and moved <= {"step.succeeded label attempt=1", "step.succeeded upgrade attempt=1"}


def test_a_step_that_did_something_else_is_named() -> None:
    lines = _order_run()
    for ev in lines:
        if ev.get("kind") == "compensation.started" and ev["step"] == "charge":
            ev["attempt"] = 2
    diff = diff_journal(ORDER_RUN.read_text(encoding="utf-8"), _journal(lines), "x")
    assert diff is not None and diff.startswith("the events of charge differ")
    assert "INTERLEAVING" not in diff


def test_a_changed_outcome_and_a_changed_time_are_named() -> None:
    lines = _order_run()
    lines[0]["run"] = {**lines[0]["run"], "compensated": ["reserve"]}  # type: ignore[dict-item]
    diff = diff_journal(ORDER_RUN.read_text(encoding="utf-8"), _journal(lines), "x")
    assert diff is not None and diff.startswith("the run's outcome differs")
    lines = _order_run()
    lines[-1]["t"] = 1.5
    diff = diff_journal(ORDER_RUN.read_text(encoding="utf-8"), _journal(lines), "x")
    assert diff is not None and diff.startswith("only the fake-clock times")


def test_json_outputs_compare_as_data() -> None:
    assert diff_output('{"a": 1, "b": [1, 2]}', '{"b": [1, 2], "a": 1}', "plan.json") is None
    diff = diff_output('{"a": 1}\n', '{"a": 2}\n', "plan.json")
    assert diff is not None and '-{"a": 1}' in diff and '+{"a": 2}' in diff
    assert diff_output("digraph {}\n", "digraph  {}\n", "render.dot") is not None
