"""What the golden test captures: the CLI's answers on every spec, and the journal of every example run.

Everything here turns one case (a spec and a command, or a saga run) into the
text of its golden files, normalised so that it depends on nothing but the
code and the specs: absolute paths read ``<ROOT>``, run ids ``<RUN>``, timings
``<SECONDS>``; runs use a fake clock, an inline executor and a fresh copy of
the example services' state.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import sys
from collections.abc import Iterator, Mapping
from concurrent.futures import Executor, Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from sagalang import ir
from sagalang.cli import main
from sagalang.events import Event
from sagalang.interpreter import run
from sagalang.journal.memory import MemoryStore
from sagalang.plugins import Registry
from sagalang.spec import Spec, load

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent

# Specs every command is captured for, and those only `validate` makes sense for.
FULL_GLOBS = (
    "specs/examples/*.saga",
    "specs/examples/lib/*.saga",
    "specs/valid/*.saga",
    "specs/flawed/*.saga",
    "docs/examples/*.saga",
    "docs/tutorial/*.saga",
)
VALIDATE_ONLY_GLOBS = ("specs/invalid/*.saga", "docs/examples/invalid/*.saga")
# Sagas whose runs are captured: the examples with their inputs, and the tutorial's trip.
RUN_GLOBS = ("specs/examples/*.saga", "docs/tutorial/trip.saga")

# Options a spec needs beyond the repository's [tool.sagalang] plugins.
_PLUGINS = {
    "docs/tutorial": ("--plugin", "docs/tutorial/trip_handlers.py"),
    "specs/invalid": ("--root", "specs/invalid", "--plugin", "specs/invalid/handlers.py"),
}
# The commands: golden file name -> arguments before the spec path.
COMMANDS: dict[str, tuple[str, ...]] = {
    "validate.json": ("validate", "--format", "json"),
    "plan.json": ("plan", "--json"),
    "render.dot": ("render", "--format", "dot", "-o", "-"),
    "render.mmd": ("render", "--format", "mermaid", "-o", "-"),
    "export.json": ("export",),
    "test.json": ("test", "--fake", "--json"),
}
# Options each command accepts, where not all of them (render needs no handlers; test has no --root).
_ACCEPTS = {"render": ("--root",), "test": ("--plugin",)}
FAKE_T0 = 1_700_000_000.0
RUN_PLACEHOLDER = "<RUN>"
FAILED_ITEM = "<one of the failed items>"
# Transient failures of a flaky handler: two, so that a retry policy's backoff shows its growth;
# one for a fan-out's handler, else two items fail at once with different messages, and which
# of them the step reports is not decided (see _fanout_failures).
FLAKY_FAILURES = 2
FLAKY_FANOUT_FAILURES = 1


def rel(path: Path) -> str:
    """``path`` relative to the repository root, with forward slashes."""
    return path.resolve().relative_to(ROOT).as_posix()


def _specs(globs: tuple[str, ...]) -> list[str]:
    return sorted({rel(p) for g in globs for p in ROOT.glob(g)})


def full_specs() -> list[str]:
    """Specs every command is captured for."""
    return _specs(FULL_GLOBS)


def validate_only_specs() -> list[str]:
    """Invalid specs: only ``validate`` is captured."""
    return _specs(VALIDATE_ONLY_GLOBS)


def golden_dir(spec: str) -> Path:
    """Where a spec's golden files live: its repository path without ``.saga``."""
    return GOLDEN / spec.removesuffix(".saga")


def normalise_text(text: str) -> str:
    """Absolute paths of this checkout replaced by ``<ROOT>``."""
    for root in {str(ROOT), str(ROOT.resolve())}:
        text = text.replace(root, "<ROOT>")
    return text


# ---- the CLI ------------------------------------------------------------------------------


def _extra_options(spec: str, command: str) -> list[str]:
    folder = spec.rsplit("/", 1)[0]
    opts = _PLUGINS.get(folder, ())
    allowed = _ACCEPTS.get(command)
    out: list[str] = []
    for flag, value in zip(opts[::2], opts[1::2]):
        if allowed is None or flag in allowed:
            out += [flag, value]
    return out


def argv(spec: str, name: str) -> list[str]:
    """The command line of golden file ``name`` for ``spec`` (run from the repository root)."""
    head = COMMANDS[name]
    return [*head, *_extra_options(spec, head[0]), spec]


def _normalise_report(reports: Any) -> Any:
    # `sagalang test` says how long the exploration took: the one wall-clock figure it prints.
    if isinstance(reports, list):
        for r in reports:
            if isinstance(r, dict) and "seconds" in r:
                r["seconds"] = "<SECONDS>"
    return reports


def run_cli(spec: str, name: str) -> tuple[str, dict[str, Any]]:
    """Run one command: its normalised standard output, and its exit code and standard error."""
    args = argv(spec, name)
    result = CliRunner().invoke(main, args, catch_exceptions=False)
    out = normalise_text(result.stdout)
    if name == "test.json" and result.stdout.strip():
        out = json.dumps(_normalise_report(json.loads(out)), indent=2) + "\n"
    # Standard error as a list of lines: readable in the golden file, exact all the same.
    err = normalise_text(result.stderr)
    stderr = err.split("\n") if err else []
    meta = {"argv": ["sagalang", *args], "exit_code": result.exit_code, "stderr": stderr}
    return out, meta


# ---- runs ------------------------------------------------------------------------------


class FakeClock:
    """Deterministic time: ``sleep`` returns at once and moves the clock on; ``random`` is constant."""

    def __init__(self) -> None:
        self.now = FAKE_T0

    def time(self) -> float:
        """The fake time."""
        return self.now

    def random(self) -> float:
        """Jitter's random number: always the middle of [0, 1)."""
        return 0.5

    async def sleep(self, seconds: float) -> None:
        """Advance the clock; yield once so other tasks run as they would while waiting."""
        self.now += seconds
        await asyncio.sleep(0)


class InlineExecutor(Executor):
    """Runs a sync handler at once on the loop's thread.

    In the default thread pool, the order in which concurrent steps' handlers
    finish is decided by the OS scheduler; inline, it is decided by asyncio alone.
    """

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        """Call ``fn`` now; the future holds its result or exception."""
        future: Future[Any] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:
            future.set_exception(exc)
        return future


@dataclass(frozen=True)
class RunCase:
    """One captured run of a saga with its input: clean, with ``fail_at`` one step, or with a flaky handler."""

    spec: str
    fail_at: str | None = None
    flaky: str | None = None  # a handler whose first ``failures`` calls fail transiently
    failures: int = 0

    @property
    def name(self) -> str:
        """The golden file's name (``/`` of a sub-saga step written ``__``)."""
        if self.fail_at is not None:
            return "fail-at-" + self.fail_at.replace("/", "__")
        return "clean" if self.flaky is None else f"flaky-{self.flaky}"

    @property
    def path(self) -> Path:
        """The golden file."""
        return golden_dir(self.spec) / "runs" / f"{self.name}.jsonl"

    @property
    def id(self) -> str:
        """The pytest id."""
        return f"{self.spec}:{self.name}"


def _plugins(spec: str) -> list[str]:
    return [str(ROOT / "docs/tutorial/trip_handlers.py")] if spec.startswith("docs/tutorial/") else []


def _input_file(spec: str) -> Path:
    return ROOT / spec.replace(".saga", ".input.json")


def steps_of(spec: Spec, saga: ir.Saga | None = None, prefix: str = "") -> Iterator[tuple[str, ir.Step]]:
    """Every step of the entry saga in declaration order, a sub-saga's steps as ``caller/step`` after it."""
    saga = saga if saga is not None else spec.saga
    for step in saga.steps():
        yield prefix + step.name, step
        if step.call is not None and step.call.saga in spec.sagas:
            yield from steps_of(spec, spec.sagas[step.call.saga], f"{prefix}{step.name}/")


def run_specs() -> list[str]:
    """Sagas whose runs are captured (those with an input file)."""
    return [s for s in _specs(RUN_GLOBS) if _input_file(s).is_file()]


def run_cases() -> list[RunCase]:
    """Per saga of :func:`run_specs`: a clean run, a ``fail_at`` run per step, a run per flaky handler.

    Only the example services can be told to fail transiently, so only their sagas get
    flaky runs (these are the runs where retries, backoff and jitter show).
    """
    cases = []
    for spec in run_specs():
        loaded = load(ROOT / spec, registry=Registry.discover(_plugins(spec), cwd=ROOT))
        steps = list(steps_of(loaded))
        cases.append(RunCase(spec))
        cases.extend(RunCase(spec, fail_at=name) for name, _ in steps)
        if spec.startswith("specs/examples/"):
            cases.extend(_flaky_cases(spec, [step for _, step in steps]))
    return cases


def _flaky_cases(spec: str, steps: list[ir.Step]) -> list[RunCase]:
    """One run per handler the steps call with ``do``, in the order the steps name them."""
    fanout = {s.do.handler for s in steps if s.do is not None and s.foreach is not None}
    handlers = dict.fromkeys(s.do.handler for s in steps if s.do is not None)
    return [RunCase(spec, flaky=h, failures=FLAKY_FANOUT_FAILURES if h in fanout else FLAKY_FAILURES) for h in handlers]


def _effects() -> Any:
    """The example services' shared state module (it sits beside their handler files)."""
    folder = str(ROOT / "specs" / "examples" / "handlers")
    if folder not in sys.path:
        sys.path.append(folder)
    return importlib.import_module("sagalang_examples_effects")


def _placeholders(value: Any, run_id: str) -> Any:
    if isinstance(value, str):
        return normalise_text(value.replace(run_id, RUN_PLACEHOLDER))
    if isinstance(value, Mapping):
        return {k: _placeholders(v, run_id) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_placeholders(v, run_id) for v in value]
    return value


def _event_line(ev: Event, run_id: str, clock: FakeClock) -> dict[str, Any]:
    # Times from the fake clock are kept as offsets (they show the backoff waited); any
    # other time came from the wall clock and is replaced.
    t: float | str = round(ev.time - FAKE_T0, 6) if FAKE_T0 <= ev.time <= clock.now else "<WALL>"
    line = {"seq": ev.seq, "kind": ev.kind, "step": ev.step, "item": ev.item, "attempt": ev.attempt, "t": t}
    line["data"] = _placeholders(dict(ev.data), run_id)
    return line


async def _run(case: RunCase) -> list[dict[str, Any]]:
    registry = Registry.discover(_plugins(case.spec), cwd=ROOT)
    spec = load(ROOT / case.spec, registry=registry)
    data = json.loads(_input_file(case.spec).read_text(encoding="utf-8"))
    store = MemoryStore()
    await store.open()
    clock = FakeClock()
    run_id = f"{spec.entry}-golden"
    if case.flaky is not None:
        _effects().inject_fault(case.flaky, case.failures)
    result = await run(
        spec,
        data,
        store=store,
        registry=registry,
        run_id=run_id,
        fail_at=[case.fail_at] if case.fail_at else [],
        clock=clock,
        executor=InlineExecutor(),
    )
    summary = {
        "spec": case.spec,
        "input": rel(_input_file(case.spec)),
        "fail_at": case.fail_at,
        "flaky": {"handler": case.flaky, "transient_failures": case.failures} if case.flaky else None,
        **{k: v for k, v in result.to_json().items() if k != "run_id"},
    }
    lines: list[dict[str, Any]] = [{"run": _placeholders(summary, run_id)}]
    lines += _fanout_failures([_event_line(ev, run_id, clock) for ev in await store.events(run_id)])
    return lines


def _fanout_failures(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A fan-out step's own ``step.failed`` names one of its failed items, not always the same one.

    When several items end in the same wake-up of the event loop, the engine takes
    the first of a set of tasks, whose order follows memory addresses. Where more than
    one item failed for good, the item it names is written as a placeholder (a name
    outside the failed items would still show). The error it reports is that item's:
    the captured runs keep it decided by never failing two items with different errors.
    """
    failed: dict[str, set[int]] = {}
    for ev in events:
        if ev["kind"] == "step.failed" and ev["item"] is not None and ev["data"].get("final"):
            failed.setdefault(ev["step"], set()).add(ev["item"])
    for ev in events:
        data = ev["data"]
        items = failed.get(ev["step"], set())
        if ev["kind"] == "step.failed" and ev["item"] is None and len(items) > 1 and data.get("item") in items:
            ev["data"] = {**data, "item": FAILED_ITEM}
    return events


def capture_run(case: RunCase, state_dir: Path) -> str:
    """The golden text of one run: a summary line, then one line per journal event.

    The example services keep their state in ``state_dir`` (a fresh folder), so a
    run does not see what earlier runs did.
    """
    saved = {k: os.environ.get(k) for k in ("SAGALANG_EXAMPLES_DB", "TRIP_STATE")}
    os.environ["SAGALANG_EXAMPLES_DB"] = str(state_dir / "examples.db")
    os.environ["TRIP_STATE"] = str(state_dir / "bookings.json")
    try:
        lines = asyncio.run(_run(case))
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
