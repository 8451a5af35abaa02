"""sagalang.semantics: the step-class rules, and every tool answering them as the module does.

The first half runs over every spec of the repository (``specs/`` and ``docs/``,
loaded as ``sagalang validate`` loads them) and checks that the validator's
findings, the plan, the diagram's node roles and ``sagalang test``'s
expectations agree with the module. The second half pins the rules down on
small hand-written sagas.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sagalang import ir
from sagalang import semantics as sem
from sagalang import testing as saga_testing
from sagalang.diagnostics import Diagnostic
from sagalang.errors import SagaError
from sagalang.graph import SagaGraph, build
from sagalang.parser import parse
from sagalang.plan import describe_retry, plan_saga
from sagalang.plugins import Registry
from sagalang.project import Project
from sagalang.render import Cluster, Diagram, Node, RenderError, diagram
from sagalang.spec import load
from sagalang.validate import validate_paths

ROOT = Path(__file__).resolve().parent.parent
SPEC_FILES = sorted(p for folder in ("specs", "docs") for p in (ROOT / folder).rglob("*.saga"))
CLASS_CODES = ("E605", "E606", "E607", "E608", "I609")


@functools.cache
def _validated() -> tuple[Project, list[Diagnostic]]:
    return validate_paths([ROOT / "specs", ROOT / "docs"])


def _sagas(path: Path) -> Iterator[tuple[Project, ir.Saga]]:
    project, _ = _validated()
    sf = project.files.get(path.resolve())
    if sf is None or sf.module is None:
        return
    for saga in sf.module.sagas:
        yield project, saga


def _nested(project: Project, path: Path) -> sem.CalleeScope:
    """``call`` resolved in the file's scope, a callee's calls in its own file's (as the validator does)."""
    names = project.scope(path)

    def resolve(name: str) -> tuple[ir.Saga, sem.CalleeScope] | None:
        found = names.get(name)
        return (found[0], _nested(project, found[1].path)) if found is not None else None

    return resolve


def _flat(project: Project, path: Path) -> dict[str, ir.Saga]:
    return {name: saga for name, (saga, _) in project.scope(path).items()}


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_every_spec_is_covered() -> None:
    assert len(SPEC_FILES) > 50
    assert any(p.name == "pivot_flow.saga" for p in SPEC_FILES)
    project, _ = _validated()
    assert all(p.resolve() in project.files for p in SPEC_FILES)


# ---- validate ------------------------------------------------------------------------------


def _findings(diags: list[Diagnostic], file: str, graph: SagaGraph) -> dict[str, set[str]]:
    """The step-class findings of one saga, by code (I609 split into acting pivot / retriable)."""
    at = {(s.span.line, s.span.col): n for n, s in graph.steps.items()}
    out: dict[str, set[str]] = {c: set() for c in (*CLASS_CODES, "I609-retriable")}
    for d in diags:
        name = at.get((d.span.line, d.span.col))
        if d.file != file or d.code not in CLASS_CODES or name is None:
            continue
        out["I609-retriable" if "acts as a retriable step" in d.message else d.code].add(name)
    return out


def _expected_findings(graph: SagaGraph, classes: sem.Classes, scope: sem.CalleeScope) -> dict[str, set[str]]:
    by = {m: {n for n, c in classes.of.items() if c.misplaced is m} for m in sem.Misplaced}
    pivot = classes.pivot
    implied = pivot is not None and graph.steps[pivot].kind != "pivot"
    retriable = {
        n
        for n, c in classes.of.items()
        if implied and n != pivot and c.misplaced is None and sem.is_pivot_like(graph.steps[n], None, scope)
    }
    return {
        "E605": by[sem.Misplaced.BEFORE_PIVOT],
        "E606": by[sem.Misplaced.AFTER_PIVOT],
        "E607": by[sem.Misplaced.BESIDE_PIVOT],
        "E608": by[sem.Misplaced.BEFORE_COMPENSATABLE],
        "I609": {pivot} if implied and pivot is not None else set(),
        "I609-retriable": retriable,
    }


@pytest.mark.parametrize("path", SPEC_FILES, ids=_id)
def test_validator_step_classes_agree(path: Path) -> None:
    _, diags = _validated()
    for project, saga in _sagas(path):
        graph = build(saga)
        if not graph.is_dag:
            continue
        scope = _nested(project, path.resolve())
        classes = sem.classify(graph, None, scope)
        file = project.files[path.resolve()].display
        assert _findings(diags, file, graph) == _expected_findings(graph, classes, scope), saga.name


# ---- plan ----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", SPEC_FILES, ids=_id)
def test_plan_agrees(path: Path) -> None:
    for project, saga in _sagas(path):
        graph = build(saga)
        if not graph.is_dag:
            continue
        callees = _flat(project, path.resolve())
        p = plan_saga(saga, "", callees)
        forward = sem.forward_only(graph, None, callees)
        assert p.pivot == sem.pivot(graph, None, callees)
        assert p.compensation_order == sem.compensation_order(saga)
        for s in p.steps:
            step = graph.steps[s.name]
            assert (s.undo is not None) == sem.has_undo(step, None, callees), s.name
            assert s.retry == describe_retry(sem.effective_retry(saga, step)), s.name
            assert ("retriable" in s.marks) == (step.kind == "retriable" or s.name in forward), s.name
        for f in p.failures:
            assert (f.recovery == "forward") == (f.step in forward), f.step
            if f.recovery == "backward":
                reach = graph.ancestors(f.step) | graph.concurrent(f.step) | {f.step}
                undone = {u.step for group in f.compensation for u in group}
                assert undone == {n for n in reach if sem.has_undo(graph.steps[n], None, callees)}, f.step


# ---- render --------------------------------------------------------------------------------


def _top_level(d: Diagram) -> tuple[dict[str, str], set[str]]:
    """The diagram's step roles by id (call clusters as "call"), and the ids compensation edges leave."""
    roles: dict[str, str] = {}

    def walk(items: list[Node | Cluster]) -> None:
        for item in items:
            if isinstance(item, Node):
                roles[item.id] = item.role
            elif item.kind == "call":
                roles[item.id] = "call"
            elif item.kind != "legend":
                walk(item.items)

    walk(d.items)
    return roles, {e.src for e in d.edges if e.kind == "compensation" and not e.legend}


def _node_role(step: ir.Step, cls: sem.StepClass) -> str:
    if step.call is not None:
        return "call"
    if cls.role is None or cls.role is sem.Role.COMPENSATABLE:
        return "step"
    return cls.role.value


@pytest.mark.parametrize("path", SPEC_FILES, ids=_id)
def test_render_roles_agree(path: Path) -> None:
    for project, saga in _sagas(path):
        callees = _flat(project, path.resolve())
        try:
            d = diagram({**callees, saga.name: saga}, saga=saga.name)
        except RenderError:
            continue  # a cycle: nothing is drawn
        graph = build(saga)
        classes = sem.classify(graph, None, callees)
        roles, undo_from = _top_level(d)
        for name, step in graph.steps.items():
            node = f"cluster_call_{name}" if f"cluster_call_{name}" in roles else f"s_{name}"
            assert roles[node] == _node_role(step, classes.of[name]), name
            if step.call is None:
                assert (node in undo_from) == sem.has_undo(step, None, callees), name


# ---- sagalang test -------------------------------------------------------------------------


@pytest.mark.parametrize("path", SPEC_FILES, ids=_id)
def test_testing_expectations_agree(path: Path) -> None:
    for _, saga in _sagas(path):
        try:
            spec = load(path, saga=saga.name, check=False)
        except (SagaError, OSError, ValueError):
            continue  # does not load as a runnable spec (an import problem, a name clash, a broken schema)
        graph = spec.graph
        if not graph.is_dag:
            continue
        beyond = sem.no_return(graph, None, spec.sagas)
        forward = sem.forward_only(graph, None, spec.sagas)
        points = saga_testing.failure_points(spec, graph.topo, 1, crashes=False)
        undo_points = {p.step for p in points if p.kind == "undo-fail"}
        own_undo = {n for n, s in graph.steps.items() if s.call is None and sem.has_undo(s)}
        assert undo_points == own_undo - beyond
        for name in graph.topo:
            expected = saga_testing._expected(saga_testing.FailurePoint("fail", name), spec, "completed", None)
            assert (expected == ("stuck",)) == (name in forward), name


# ---- the rules on small sagas --------------------------------------------------------------


def _module(text: str) -> ir.Module:
    return parse(text, "t.saga")


def _classes(text: str, objects: sem.Objects = None) -> tuple[sem.Classes, dict[str, ir.Saga], SagaGraph]:
    module = _module(text)
    sagas = {s.name: s for s in module.sagas}
    graph = build(module.sagas[0])
    return sem.classify(graph, objects, sagas), sagas, graph


def _roles(classes: sem.Classes) -> dict[str, tuple[str | None, bool]]:
    return {n: (c.role.value if c.role else None, c.implied) for n, c in classes.of.items()}


CALLEES = """
saga undoable { step charge { do pay.charge() undo pay.refund() } }
saga irreversible { step hold { do pay.hold() undo pay.release() } pivot step settle { do pay.settle() } }
saga looks { readonly step quote { do pay.quote() } }
"""


def test_explicit_classes_and_retriable_after_the_pivot() -> None:
    classes, _, graph = _classes(
        """
        saga s {
            readonly step check { do a.check() }
            step reserve { do a.reserve() undo a.release() }
            pivot step ship { do a.ship() }
            step notify { do a.mail() retry forever }
            retriable step archive { do a.archive() }
        }
        """
    )
    assert classes.pivot == "ship"
    assert _roles(classes) == {
        "check": ("readonly", False),
        "reserve": ("compensatable", False),
        "ship": ("pivot", False),
        "notify": ("retriable", True),  # no undo after the pivot: retriable by its place
        "archive": ("retriable", False),
    }
    assert sem.pivot_like_steps(graph) == ("ship", "notify", "archive")
    assert sem.forward_only(graph) == {"notify", "archive"}
    assert sem.no_return(graph) == {"ship", "notify", "archive"}
    steps = graph.steps
    assert not sem.has_undo(steps["check"]) and not sem.is_pivot_like(steps["check"])
    assert sem.has_undo(steps["reserve"]) and not sem.is_pivot_like(steps["reserve"])
    assert all(not sem.has_undo(steps[n]) for n in ("ship", "notify", "archive"))


def test_a_step_without_undo_acts_as_the_pivot_when_every_compensatable_step_precedes_it() -> None:
    classes, _, graph = _classes(
        """
        saga s {
            step reserve { do a.reserve() undo a.release() }
            step mail { do a.mail() }
            step log { do a.log() }
        }
        """
    )
    assert classes.pivot == "mail"
    assert _roles(classes)["mail"] == ("pivot", True)
    assert _roles(classes)["log"] == ("retriable", True)
    assert sem.pivot(graph) == "mail"


def test_misplaced_steps() -> None:
    before, _, _ = _classes(
        """
        saga s {
            step mail { do a.mail() }
            step reserve { do a.reserve() undo a.release() }
        }
        """
    )
    assert before.of["mail"] == sem.StepClass(None, False, sem.Misplaced.BEFORE_COMPENSATABLE)
    assert before.pivot is None
    around, _, _ = _classes(
        """
        saga s {
            step mail { do a.mail() }
            pivot step ship { do a.ship() }
            step refundable { do a.x() undo a.y() }
            parallel {
                pivot step second { do a.z() }
                readonly step peek { do a.peek() }
                step side { do a.side() undo a.unside() }
            }
        }
        """
    )
    assert around.pivot == "ship"
    assert around.of["mail"].misplaced is sem.Misplaced.BEFORE_PIVOT
    assert around.of["refundable"] == sem.StepClass(sem.Role.COMPENSATABLE, False, sem.Misplaced.AFTER_PIVOT)
    assert around.of["second"] == sem.StepClass(sem.Role.PIVOT)  # a second pivot: E601's business
    assert around.of["peek"].misplaced is None
    beside, _, _ = _classes(
        """
        saga s {
            step reserve { do a.reserve() undo a.release() }
            parallel {
                pivot step ship { do a.ship() }
                step side { do a.side() undo a.unside() }
                readonly step peek { do a.peek() }
            }
        }
        """
    )
    assert beside.of["side"].misplaced is sem.Misplaced.BESIDE_PIVOT
    assert beside.of["peek"].misplaced is None


def test_call_steps_follow_their_callee() -> None:
    classes, sagas, graph = _classes(
        """
        saga s {
            step pay { call undoable() }
            step look { call looks() }
            step other { call unknown() }
            step settle { call irreversible() }
        }
        """
        + CALLEES
    )
    steps = graph.steps
    # A callee with an undo: compensatable; with nothing to undo and nothing irreversible: readonly.
    assert _roles(classes)["pay"] == ("compensatable", False)
    assert _roles(classes)["look"] == ("readonly", True)
    assert not sem.has_undo(steps["look"], callees=sagas)
    # An unknown callee: compensated like any other (a run undoes whatever it ran).
    assert _roles(classes)["other"] == ("compensatable", False)
    assert sem.has_undo(steps["other"], callees=sagas)
    # A callee that cannot be fully undone: the call is pivot-like, though its completed steps have undos.
    assert sem.is_pivot_like(steps["settle"], callees=sagas)
    assert sem.has_undo(steps["settle"], callees=sagas)
    assert classes.pivot == "settle" and _roles(classes)["settle"] == ("pivot", True)
    assert not sem.saga_reversible(sagas["irreversible"])
    assert sem.saga_reversible(sagas["undoable"]) and sem.saga_reversible(sagas["looks"])


def test_without_callees_a_call_is_judged_by_its_callee_steps_one_by_one() -> None:
    _, sagas, graph = _classes("saga s { step settle { call irreversible() } }" + CALLEES)
    step = graph.steps["settle"]
    assert not sem.is_pivot_like(step)  # a run sees the callee's pivot itself, as settle/settle
    assert sem.has_undo(step)
    assert sem.is_pivot_like(step, callees=sem.scope_of(sagas))


def test_call_cycles_end() -> None:
    _, sagas, graph = _classes(
        """
        saga a { step b { call b() } step x { do h.x() undo h.y() } }
        saga b { step a { call a() } }
        """
    )
    assert not sem.is_pivot_like(graph.steps["b"], callees=sagas)
    assert sem.has_undo(graph.steps["b"], callees=sagas)  # through b, back to a's own undo
    assert sem.saga_reversible(sagas["a"], callees=sagas)


class _NoUndo:
    def execute(self, ctx: Any) -> None:
        return None

    def compensate(self, ctx: Any) -> None:
        return None

    def can_compensate(self) -> bool:
        return False


class _Undo(_NoUndo):
    def can_compensate(self) -> bool:
        return True


def test_use_steps_ask_their_step_object() -> None:
    registry = Registry()
    registry.add("kit.stuck", _NoUndo)
    registry.add("kit.fine", _Undo)
    text = "saga s { step a { use kit.fine() } step c { use kit.missing() } step b { use kit.stuck() } }"
    _, _, graph = _classes(text)
    a, b, c = (graph.steps[n] for n in "abc")
    # Without the registry every step object is assumed to compensate (it provides `compensate`).
    assert all(sem.has_undo(s) and not sem.is_pivot_like(s) for s in (a, b, c))
    assert sem.has_undo(a, registry) and not sem.is_pivot_like(a, registry)
    assert not sem.has_undo(b, registry) and sem.is_pivot_like(b, registry)
    assert sem.has_undo(c, registry)  # unknown to the registry: assumed to compensate
    # A resolver function works as well as the registry.
    objects = {"kit.stuck": _NoUndo()}
    assert sem.is_pivot_like(b, objects.get)
    classes, _, _ = _classes(text, registry)
    assert classes.pivot == "b" and _roles(classes)["b"] == ("pivot", True)


def test_the_validator_and_the_plan_ask_the_registry_about_step_objects(tmp_path: Path) -> None:
    registry = Registry()
    registry.add("kit.stuck", _NoUndo)
    registry.add("app.ship", lambda: None)
    path = tmp_path / "s.saga"
    path.write_text("saga s {\n    step a { use kit.stuck() }\n    pivot step ship { do app.ship() }\n}\n")
    codes = [(d.code, d.message) for d in validate_paths([path], None, root=tmp_path)[1]]
    assert not any(code == "E605" for code, _ in codes)
    codes = [(d.code, d.message) for d in validate_paths([path], registry, root=tmp_path)[1]]
    assert (
        "E605",
        "step 'a' runs before the pivot 'ship' but cannot be undone (its step object cannot compensate)",
    ) in codes
    saga = parse(path.read_text(), str(path)).sagas[0]
    assert plan_saga(saga).step("a").undo == "step object"
    assert plan_saga(saga, objects=registry).step("a").undo is None


def test_effective_policies() -> None:
    module = _module(
        """
        saga s {
            defaults { retry attempts 3 timeout 5s }
            compensation { order parallel retry forever timeout 2s }
            step own { do a.x() retry attempts 7 timeout 1s }
            step inherits { do a.x() }
            step sub { call t() retry attempts 9 timeout 9s }
        }
        saga t { step x { do a.x() undo a.y() } }
        """
    )
    s, t = module.sagas
    own, inherits, sub = s.steps()
    assert sem.effective_retry(s, own) == own.retry and sem.effective_timeout(s, own) == ir.Duration(1000)
    assert sem.effective_retry(s, inherits) == ir.RetryPolicy(3) and sem.effective_timeout(s, inherits) == ir.Duration(
        5000
    )
    # A call is not retried or timed as a whole: its callee's steps have their own policies.
    assert sem.effective_retry(s, sub) is None and sem.effective_timeout(s, sub) is None
    assert sem.compensation_order(s) == "parallel" and sem.compensation_order(t) == "reverse"
    assert sem.compensation_retry(s) == ir.RetryPolicy(None) and sem.compensation_retry(t) is None
    assert sem.compensation_timeout(s) == ir.Duration(2000) and sem.compensation_timeout(t) is None
    assert sem.effective_retry(t, t.steps()[0]) is None and sem.effective_timeout(t, t.steps()[0]) is None


@pytest.mark.parametrize(
    ("policy", "retries", "forever"),
    [
        (None, False, False),
        (ir.RetryPolicy(1), False, False),
        (ir.RetryPolicy(2), True, False),
        (ir.RetryPolicy(None), True, True),
    ],
)
def test_retries(policy: ir.RetryPolicy | None, retries: bool, forever: bool) -> None:
    assert sem.retries(policy) is retries
    assert sem.retries_forever(policy) is forever


def test_a_cycle_gives_natures_and_no_pivot() -> None:
    classes, _, graph = _classes(
        "saga s { step a after b { do x.a() } step b after a { do x.b() undo x.c() } readonly step r { do x.r() } }"
    )
    assert not graph.is_dag
    assert classes.pivot is None
    assert _roles(classes) == {"a": (None, False), "b": ("compensatable", False), "r": ("readonly", False)}


def test_a_call_to_a_readonly_saga_after_the_pivot_is_no_error(tmp_path: Path) -> None:
    path = tmp_path / "s.saga"
    path.write_text(
        "saga s {\n    pivot step ship { do app.ship() }\n    step look { call looks() }\n}\n"
        "saga looks { readonly step quote { do app.quote() } }\n"
    )
    codes = {d.code for d in validate_paths([path], None, root=tmp_path)[1]}
    assert not codes & {"E606", "E607", "W610"}
    saga = parse(path.read_text(), str(path)).sagas
    p = plan_saga(saga[0], "", {s.name: s for s in saga})
    assert p.step("look").undo is None
