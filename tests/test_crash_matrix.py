"""The crash matrix: kill a real `sagalang run` (SIGKILL) after every journal append, resume it, check.

For an example saga, a reference run without a crash gives the number of
appends N, the final status and the effects. Then, for every k in 1..N, the
saga runs in a subprocess under ``python -m sagalang.testing.crash k`` (it is
killed right after the k-th append), must die by SIGKILL, and ``sagalang
resume ID`` in a new process finishes it. For every k:

* the run ends in the reference's terminal state, with resume's exit code;
* every effect is kept by a completed saga or undone exactly once, no
  effect is applied twice for one idempotency key, and a saga that went
  forward to its end kept exactly the reference run's effects;
* ``history --json`` is consistent: seq contiguous from 1, one terminal event
  and it is last, epochs never decrease, every ``step.started`` and
  ``compensation.started`` is followed by its result or by a crash-recovery
  (``saga.resumed``) event.

The same with ``--fail-at STEP`` for each step (backward recovery crashes).
The default run covers order.saga's whole matrix with no failure and with a
failure at its pivot; the rest is marked ``slow``.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner

from sagalang.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "specs" / "examples"
TERMINAL = {"saga.completed", "saga.compensated", "saga.aborted", "saga.stuck", "saga.cancelled"}
EXIT = {"completed": 0, "compensated": 1, "cancelled": 1, "aborted": 4, "stuck": 4}
RESULTS = {"step.succeeded", "step.failed", "step.retrying", "step.skipped"}
UNDO_RESULTS = {"compensation.succeeded", "compensation.failed", "compensation.retrying"}


def _effects_module() -> ModuleType:
    name = "sagalang_examples_effects"  # the name the example handlers load it under
    module = sys.modules.get(name)
    if module is None:
        spec = importlib.util.spec_from_file_location(name, EXAMPLES / "handlers" / "sagalang_examples_effects.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return module


fx = _effects_module()

# example -> the steps --fail-at is tried at (the slow matrix); every example's whole crash matrix is slow
# but order's, which runs by default with no failure and with a failure at its pivot.
STEPS = {
    "order": ["reserve", "charge", "label", "upgrade", "ship", "notify"],
    "travel": ["quote", "seats", "hotel", "car", "payment"],
    "transfer": ["check_balance", "debit", "credit"],
    "containerize": ["analyze", "dockerfile", "build", "push", "deploy"],
}


@pytest.fixture(autouse=True)
def _slow_only_when_selected(request: pytest.FixtureRequest) -> None:
    """The slow matrix runs only under ``-m slow`` (the default run keeps order.saga's matrix)."""
    expr = request.config.option.markexpr or ""
    wanted = "slow" in expr and "not slow" not in expr
    if request.node.get_closest_marker("slow") is not None and not wanted:
        pytest.skip("the slow crash matrix runs with -m slow")


@dataclass
class Outcome:
    """What one run left behind."""

    status: str
    events: list[dict[str, Any]]
    effects: dict[str, str]  # idempotency key (run id replaced by RUN) -> applied | undone


class Harness:
    """Runs the CLI in subprocesses against one store and one effects database."""

    def __init__(self, folder: Path, example: str, spec: Path | None = None) -> None:
        self.folder = folder
        self.example = example
        self.spec = spec or EXAMPLES / f"{example}.saga"
        self.store = f"sqlite:///{folder}/journal.db"
        self.effects_db = folder / "effects.db"

    def env(self) -> dict[str, str]:
        """The subprocess environment: own effects DB, no colour."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SAGALANG_")}
        env["SAGALANG_EXAMPLES_DB"] = str(self.effects_db)
        env["NO_COLOR"] = "1"
        return env

    def cli(self, *args: str, crash_after: int | None = None) -> subprocess.CompletedProcess[str]:
        """``sagalang ARGS`` in a new process (cwd: the repository, whose pyproject names the handlers).

        With ``crash_after``, the process is killed right after its k-th journal append.
        """
        crash = ["sagalang.testing.crash", str(crash_after)] if crash_after is not None else ["sagalang"]
        return subprocess.run(
            [sys.executable, "-m", *crash, *args],
            cwd=ROOT,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )

    def resume_here(self, run_id: str) -> tuple[int, str]:
        """``sagalang resume ID`` in this process (the crashed one is gone; this saves a start-up)."""
        with contextlib.chdir(ROOT):
            result = CliRunner().invoke(main, ["resume", run_id, "--store", self.store], env=self.env())
        return result.exit_code, result.output

    def run(self, run_id: str, fail_at: str | None, crash_after: int | None = None) -> subprocess.CompletedProcess[str]:
        """``sagalang run`` of the example with its sample input."""
        args = ["run", str(self.spec), "--input", str(EXAMPLES / f"{self.example}.input.json")]
        args += ["--store", self.store, "--id", run_id]
        if fail_at:
            args += ["--fail-at", fail_at]
        return self.cli(*args, crash_after=crash_after)

    def outcome(self, run_id: str) -> Outcome:
        """The run's journal (through `history --json`), status (`show --json`) and effects."""
        runner = CliRunner()
        hist = runner.invoke(main, ["history", run_id, "--json", "--store", self.store])
        assert hist.exit_code == 0, hist.output
        events = [json.loads(line) for line in hist.output.splitlines()]
        shown = runner.invoke(main, ["show", run_id, "--json", "--store", self.store])
        assert shown.exit_code == 0, shown.output
        status = json.loads(shown.output)["status"]
        effects = {
            e["key"].replace(run_id, "RUN", 1): e["status"]
            for e in fx.effects(self.effects_db, saga_id=run_id)
            if e["status"] != "tombstone"  # an undo that found nothing to undo
        }
        return Outcome(status, events, effects)


def check_journal(events: list[dict[str, Any]]) -> None:
    """Seq contiguous, one terminal event last, epochs non-decreasing, every start answered."""
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events and events[0]["event"] == "saga.started"
    terminal = [i for i, e in enumerate(events) if e["event"] in TERMINAL]
    assert terminal == [len(events) - 1], [e["event"] for e in events]
    epochs = [e.get("epoch", 0) for e in events]
    assert epochs == sorted(epochs), epochs
    for i, e in enumerate(events):
        if e["event"] not in ("step.started", "compensation.started"):
            continue
        answers = RESULTS if e["event"] == "step.started" else UNDO_RESULTS
        where = (e.get("step"), e.get("item"))
        for later in events[i + 1 :]:
            if later["event"] == "saga.resumed":
                break  # the process died with this call in flight; the resume dealt with it
            if (later.get("step"), later.get("item")) == where and later["event"] in answers:
                break
        else:
            raise AssertionError(f"event {e['seq']} {e['event']} {where} has no result and no recovery")


def check_effects(h: Harness, run_id: str, status: str) -> None:
    """Effects are kept by a completed saga or undone exactly once; none applied twice.

    A ``stuck`` saga failed after its pivot: there is no going back, so its effects are kept too.
    """
    completed = [run_id] if status in ("completed", "stuck") else []
    assert fx.violations(completed, h.effects_db, saga_ids=[run_id]) == []
    for e in fx.effects(h.effects_db, saga_id=run_id):
        assert e["undone"] <= 1, e


def reference(folder: Path, example: str, fail_at: str | None) -> tuple[Outcome, int]:
    """A run without a crash: its outcome and how many journal appends it made (its crash points)."""
    h = Harness(folder / "reference", example)
    h.folder.mkdir()
    proc = h.run("ref", fail_at, crash_after=0)
    out = h.outcome("ref")
    assert proc.returncode == EXIT[out.status], proc.stderr
    check_journal(out.events)
    check_effects(h, "ref", out.status)
    counted = re.search(r"sagalang\.testing\.crash: (\d+) appends", proc.stderr)
    assert counted is not None, proc.stderr
    return out, int(counted.group(1))


def crash_and_resume(folder: Path, example: str, fail_at: str | None, k: int, ref: Outcome) -> None:
    """Kill the run after its k-th append, resume it, and check everything."""
    h = Harness(folder / f"k{k}", example)
    h.folder.mkdir()
    run_id = f"crash-{example}-{fail_at or 'none'}-{k}"
    proc = h.run(run_id, fail_at, crash_after=k)
    assert proc.returncode == -signal.SIGKILL, (k, proc.returncode, proc.stderr)
    before = h.outcome(run_id)
    # Every acknowledged append survived the kill; appends committed in the same group commit
    # as the k-th (a parallel sibling's) may have survived too.
    assert len(before.events) >= k
    code, output = h.resume_here(run_id)
    out = h.outcome(run_id)
    if any(e["event"] in TERMINAL for e in before.events):  # killed after its terminal event: nothing to do
        assert code == 1 and "has already finished" in output
    else:
        assert code == EXIT[ref.status], (k, output)
        assert any(e["event"] == "saga.resumed" for e in out.events)
    assert out.status == ref.status, (k, out.status, ref.status)
    check_journal(out.events)
    check_effects(h, run_id, out.status)
    if ref.status in ("completed", "stuck"):
        # Forward to the end: exactly the reference's effects are kept. (A rolled-back run's set may
        # differ: whether a parallel sibling got to run before the failure depends on timing, and
        # violations() above already holds every one of them to "undone exactly once".)
        assert out.effects == ref.effects, (k, out.effects, ref.effects)


def matrix(folder: Path, example: str, fail_at: str | None, shard: int = 0, shards: int = 1) -> int:
    """Every crash point (of this shard); returns how many were checked."""
    ref, total = reference(folder, example, fail_at)
    checked = 0
    for k in range(1, total + 1):
        if k % shards == shard:
            crash_and_resume(folder, example, fail_at, k, ref)
            checked += 1
    return checked


# -- the default run: order.saga's full matrix, split in shards so two workers share it ----------

SHARDS = 2


@pytest.mark.parametrize("shard", range(SHARDS))
@pytest.mark.parametrize("fail_at", [None, "ship"])
def test_order_crash_matrix(tmp_path: Path, fail_at: str | None, shard: int) -> None:
    assert matrix(tmp_path, "order", fail_at, shard, SHARDS) > 0


# -- the slow matrix: every example, with no failure and with a failure at each step -----------------


def _slow_cases() -> Iterator[Any]:
    for example, steps in STEPS.items():
        for fail_at in [None, *steps]:
            if example == "order" and fail_at in (None, "ship"):
                continue  # in the default run
            yield pytest.param(example, fail_at, id=f"{example}-{fail_at or 'nofail'}")


@pytest.mark.slow
@pytest.mark.parametrize(("example", "fail_at"), list(_slow_cases()))
def test_crash_matrix_slow(tmp_path: Path, example: str, fail_at: str | None) -> None:
    assert matrix(tmp_path, example, fail_at) > 0


# -- resume edge cases, as real processes ---------------------------------------------------------


def test_resume_unknown_and_finished(tmp_path: Path) -> None:
    h = Harness(tmp_path, "order")
    proc = h.cli("resume", "no-such-run", "--store", h.store)
    assert proc.returncode == 1
    assert "sagalang: error: no run 'no-such-run'" in proc.stderr and "Traceback" not in proc.stderr
    assert h.run("done", None).returncode == 0
    proc = h.cli("resume", "done", "--store", h.store)
    assert proc.returncode == 1 and "run done has already finished (completed)" in proc.stderr
    # run --id is idempotent: the same id again returns the finished run, runs nothing twice.
    again = h.run("done", None)
    assert again.returncode == 0, again.stderr
    assert len(h.outcome("done").events) == len(Harness(tmp_path, "order").outcome("done").events)
    assert all(e["calls"] == 1 for e in fx.effects(h.effects_db, saga_id="done"))


@pytest.mark.parametrize("change", ["edited", "deleted"])
def test_resume_uses_the_definition_the_run_started_with(tmp_path: Path, change: str) -> None:
    spec = tmp_path / "specs" / "order.saga"
    spec.parent.mkdir()
    shutil.copy(EXAMPLES / "order.saga", spec)
    h = Harness(tmp_path, "order", spec=spec)
    proc = h.run("r1", None, crash_after=4)  # killed after charge has started
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    if change == "edited":
        # Drop the notify step: a resume that read the file would not send the e-mail.
        text = spec.read_text()
        start = text.index("    step notify")
        end = text.index("    output {")
        spec.write_text(text[:start] + text[end:])
    else:
        spec.unlink()
    resumed = h.cli("resume", "r1", "--store", h.store)
    assert resumed.returncode == 0, resumed.stderr
    expected = "order.saga changed since run r1 started" if change == "edited" else "no longer exists"
    assert expected in resumed.stderr and "resuming with the definition it started with" in resumed.stderr
    out = h.outcome("r1")
    assert out.status == "completed"
    assert any(e.get("step") == "notify" and e["event"] == "step.succeeded" for e in out.events)
    check_journal(out.events)
    check_effects(h, "r1", "completed")
