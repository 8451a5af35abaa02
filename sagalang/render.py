"""Diagrams of a saga definition, optionally overlaid with a run's state.

``render(saga_or_spec, run=None, format="dot")`` returns DOT or Mermaid text, or
SVG/PNG bytes made by Graphviz's ``dot``. Both text formats come from one
format-neutral model (:class:`Diagram`) built from the IR and
:mod:`sagalang.graph`, so they always carry the same information:

* ``start``/``end`` nodes, forward edges (solid) with ``when`` conditions as
  labels, compensation edges (dashed, reversed: from a step to the step whose
  undo runs next, per the saga's compensation order) ending in ``rolled back``;
* one node per step showing its handler, undo and retry/timeout summary; the
  pivot, readonly, retriable and sub-saga steps each drawn differently;
* clusters for ``parallel`` blocks, fan-outs and sub-saga calls (the callee's
  steps inside when the callee is known), and a legend;
* with ``run=`` each step coloured by its state, the failed step's error in its
  label and the compensation path actually taken in bold, numbered.

Output is deterministic: ids come from step names and source order only.
"""

from __future__ import annotations

import html
import itertools
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from . import ir
from . import semantics as sem
from .errors import SagaError
from .fmt import format_expr
from .graph import SagaGraph, build

if TYPE_CHECKING:
    from .diagnostics import Diagnostic
    from .events import Event
    from .journal.base import RunRecord, Store
    from .project import Project
    from .state import RunState, StepState

__all__ = [
    "FORMATS",
    "STATUS_FILL",
    "TEXT_FORMATS",
    "Diagram",
    "GraphvizNotFoundError",
    "RenderError",
    "diagram",
    "expr_text",
    "format_for_path",
    "load_run_state",
    "load_spec",
    "mermaid_escape",
    "render",
    "to_dot",
    "to_mermaid",
]

FORMATS = ("dot", "svg", "png", "mermaid")
TEXT_FORMATS = frozenset({"dot", "mermaid"})
_SUFFIXES = {
    ".dot": "dot",
    ".gv": "dot",
    ".svg": "svg",
    ".png": "png",
    ".mmd": "mermaid",
    ".mermaid": "mermaid",
    ".md": "mermaid",
}
GRAPHVIZ_HINT = "install Graphviz: `apt-get install graphviz` (Debian/Ubuntu) or `brew install graphviz` (macOS)"

Role = Literal["step", "pivot", "readonly", "retriable", "call", "group", "start", "end", "rolled_back"]
_NODE_ROLE: dict[sem.Role, Role] = {
    sem.Role.PIVOT: "pivot",
    sem.Role.RETRIABLE: "retriable",
    sem.Role.READONLY: "readonly",
}
EdgeKind = Literal["forward", "compensation"]

# Longest text on one label line; longer text is cut with an ellipsis.
_MAX_LINE = 44
_MAX_ERROR = 90


class RenderError(SagaError):
    """A diagram cannot be produced (unknown format, bad input, Graphviz failed)."""


class GraphvizNotFoundError(RenderError):
    """Graphviz's ``dot`` program is not installed (needed for SVG and PNG only)."""

    def __init__(self, fmt: str) -> None:
        super().__init__(
            f"cannot render {fmt.upper()}: Graphviz's `dot` program was not found on PATH; {GRAPHVIZ_HINT} "
            "(DOT and Mermaid output need no Graphviz)"
        )


# ---- the format-neutral model -------------------------------------------------


@dataclass
class Node:
    """One box: a step, a collapsed group, or a start/end marker."""

    id: str
    role: Role
    title: str
    lines: list[str] = field(default_factory=list)
    status: str | None = None  # run overlay: a StepState status, or a run status for markers
    notes: list[str] = field(default_factory=list)  # run overlay: attempts, items, error


@dataclass
class Cluster:
    """A boxed group: a parallel block, a fan-out, a sub-saga call, or the legend."""

    id: str
    kind: Literal["parallel", "foreach", "call", "legend"]
    label: str
    items: list[Node | Cluster] = field(default_factory=list)


@dataclass
class Edge:
    """An arrow; ``src_cluster``/``dst_cluster`` clip it at a cluster's border."""

    src: str
    dst: str
    kind: EdgeKind
    label: str | None = None
    src_cluster: str | None = None
    dst_cluster: str | None = None
    taken: bool = False  # run overlay: on the compensation path actually taken
    legend: bool = False


@dataclass
class Diagram:
    """Everything a picture shows; emitted as DOT or Mermaid."""

    name: str
    title: list[str]
    items: list[Node | Cluster]
    edges: list[Edge]
    rankdir: str = "TB"
    has_run: bool = False


# An anchor is where edges attach for a step: (node id, enclosing cluster to clip at).
Anchor = tuple[str, str | None]


# ---- small text helpers -------------------------------------------------------


def _short(text: str, limit: int = _MAX_LINE) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _duration(ms: int) -> str:
    for unit, size in (("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms >= size and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def _number(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(v)


def _retry_text(policy: ir.RetryPolicy) -> str:
    parts = ["retry " + ("forever" if policy.attempts is None else f"{policy.attempts}x")]
    if policy.backoff is not None:
        b = policy.backoff
        text = _duration(b.initial.ms)
        if b.multiplier is not None:
            text += f" x{_number(b.multiplier)}"
        if b.max is not None:
            text += f" max {_duration(b.max.ms)}"
        parts.append(text)
    if policy.jitter:
        parts.append("jitter")
    return " · ".join(parts)


def expr_text(e: ir.Expr) -> str:
    """An expression back in the language's syntax (for labels), as the formatter prints it."""
    return format_expr(e)


def _foreach_text(fe: ir.ForEach) -> str:
    text = f"for {fe.var} in {expr_text(fe.iterable)}"
    return text + (f" limit {fe.limit}" if fe.limit is not None else "")


# ---- inputs -------------------------------------------------------------------


def _library(saga_or_spec: object, name: str | None) -> tuple[ir.Saga, dict[str, ir.Saga]]:
    """The saga to draw and the sagas its ``call`` steps may expand into."""
    main: ir.Saga | None = None
    sagas: dict[str, ir.Saga] = {}
    if isinstance(saga_or_spec, ir.Saga):
        main = saga_or_spec
        sagas[main.name] = main
    elif isinstance(saga_or_spec, ir.Module):
        sagas = {s.name: s for s in reversed(saga_or_spec.sagas)}
        sagas = dict(reversed(list(sagas.items())))  # first definition wins, source order kept
    elif isinstance(saga_or_spec, Mapping):
        for key, value in saga_or_spec.items():
            if not isinstance(value, ir.Saga):
                raise RenderError(
                    f"expected a mapping of saga names to Saga objects; {key!r} maps to {type(value).__name__}"
                )
            sagas.setdefault(str(key), value)
    else:
        # A Spec-like object: `.saga` (the entry saga) and/or `.sagas` (a mapping or a sequence).
        entry = getattr(saga_or_spec, "saga", None)
        if isinstance(entry, ir.Saga):
            main = entry
        more = getattr(saga_or_spec, "sagas", None)
        if isinstance(more, Mapping):
            for key, value in more.items():
                if isinstance(value, ir.Saga):
                    sagas.setdefault(str(key), value)
        elif isinstance(more, Iterable) and not isinstance(more, str | bytes):
            for value in more:
                if isinstance(value, ir.Saga):
                    sagas.setdefault(value.name, value)
        if main is None and not sagas:
            raise RenderError(
                f"cannot draw a {type(saga_or_spec).__name__}: pass a Saga, a Module, "
                "a mapping of sagas, or an object with .saga/.sagas"
            )
        if main is not None:
            sagas.setdefault(main.name, main)
    if name is not None:
        if name not in sagas:
            known = ", ".join(sorted(sagas)) or "none"
            raise RenderError(f"no saga named {name!r} (known: {known})")
        main = sagas[name]
    if main is None:
        if not sagas:
            raise RenderError("nothing to draw: no saga given")
        main = next(iter(sagas.values()))
    return main, sagas


# ---- building the model -------------------------------------------------------

_STATUS_RANK = {
    "compensation_failed": 8,
    "failed": 7,
    "running": 6,
    "compensating": 5,
    "compensated": 4,
    "succeeded": 3,
    "skipped": 2,
    "pending": 1,
}


def _aggregate(statuses: list[str]) -> str:
    """One status for a collapsed group: the most telling of its members'."""
    if not statuses:
        return "pending"
    if all(s == "skipped" for s in statuses):
        return "skipped"
    if all(s in ("succeeded", "skipped") for s in statuses):
        return "succeeded"
    return max(statuses, key=lambda s: _STATUS_RANK.get(s, 0))


def _error_text(error: Mapping[str, Any] | None) -> str | None:
    if not error:
        return None
    kind = str(error.get("type") or "").strip()
    message = str(error.get("message") or "").strip()
    text = f"{kind}: {message}" if kind and message else kind or message
    return _short(text, _MAX_ERROR) if text else None


class _Builder:
    """Walks a saga (and the sub-sagas it calls) into nodes, clusters and edges."""

    def __init__(self, library: Mapping[str, ir.Saga], run: RunState | None, collapse: bool) -> None:
        self.library = library
        self.run = run
        self.collapse = collapse
        self.used_ids: set[str] = set()
        self.edges: list[Edge] = []
        self.edge_keys: set[tuple[str, str, str]] = set()
        self.roles: set[str] = set()
        # step path ("pay/authorize") -> node id, for the compensation path of a run
        self.path_nodes: dict[str, Anchor] = {}

    # ids ---------------------------------------------------------------------
    def uid(self, base: str) -> str:
        base = re.sub(r"[^A-Za-z0-9_]", "_", base)
        out, n = base, 1
        while out in self.used_ids:
            n += 1
            out = f"{base}_{n}"
        self.used_ids.add(out)
        return out

    # run state ----------------------------------------------------------------
    def state(self, path: str) -> StepState | None:
        return None if self.run is None else self.run.steps.get(path)

    def overlay(self, node: Node, paths: list[str]) -> None:
        """Set a node's status and notes from the run (several paths: a collapsed group)."""
        if self.run is None:
            return
        states = [self.state(p) for p in paths]
        node.status = _aggregate([s.status if s is not None else "pending" for s in states])
        if len(paths) == 1 and states[0] is not None:
            st = states[0]
            if st.attempts > 1:
                node.notes.append(f"attempt {st.attempts}")
            if st.items:
                counts: dict[str, int] = {}
                for item in st.items.values():
                    counts[item.status] = counts.get(item.status, 0) + 1
                summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: -_STATUS_RANK[kv[0]]))
                node.notes.append(f"{len(st.items)} items: {summary}")
            if st.uncertain:
                node.notes.append("outcome uncertain")
        if node.status in ("failed", "compensation_failed"):
            for maybe in states:
                if maybe is None:
                    continue
                err = maybe.error
                if err is None:
                    err = next((i.error for _, i in sorted(maybe.items.items()) if i.error), None)
                text = _error_text(err)
                if text:
                    node.notes.append(text)
                    break

    # steps ----------------------------------------------------------------------
    def classes(self, g: SagaGraph) -> dict[str, Role]:
        """Each step's node role: its class, implied ones included (as the validator infers them, rule I609)."""
        out: dict[str, Role] = {}
        for name, cls in sem.classify(g, callees=self.library).of.items():
            if g.steps[name].call is not None:
                out[name] = "call"
            elif cls.role is None or cls.role is sem.Role.COMPENSATABLE:
                out[name] = "step"  # a misplaced step without undo is drawn as a step, titled "no undo"
            else:
                out[name] = _NODE_ROLE[cls.role]
        return out

    def compensatable(self, step: ir.Step) -> bool:
        """Whether compensation visits ``step`` (it has an undo, or is a call of a saga with one)."""
        return sem.has_undo(step, callees=self.library)

    def step_lines(self, saga: ir.Saga, step: ir.Step, with_foreach: bool) -> list[str]:
        lines: list[str] = []
        if step.do is not None:
            lines.append(_short(f"do {step.do.handler}"))
        if step.use is not None:
            lines.append(_short(f"use {step.use.handler}"))
        if step.undo is not None:
            lines.append(_short(f"undo {step.undo.handler}"))
        if with_foreach and step.foreach is not None:
            lines.append(_short(_foreach_text(step.foreach)))
        retry = sem.effective_retry(saga, step)
        if retry is not None:
            lines.append(_short(_retry_text(retry)))
        timeout = sem.effective_timeout(saga, step)
        if timeout is not None:
            lines.append(f"timeout {_duration(timeout.ms)}")
        return lines

    def step_title(self, step: ir.Step, role: Role) -> str:
        if role == "call" and step.call is not None:
            return f"{step.name} · call {step.call.saga}"
        if role in ("pivot", "retriable") and step.kind != role:
            return f"{step.name} · {role} (implied)"
        if role in ("pivot", "readonly", "retriable"):
            return f"{step.name} · {role}"
        if step.undo is None and step.use is None:
            return f"{step.name} · no undo"
        return step.name

    def step_item(
        self, saga: ir.Saga, step: ir.Step, prefix: str, role: Role, stack: tuple[str, ...]
    ) -> tuple[Node | Cluster, Anchor, Anchor]:
        """A step as a node (or a call cluster), wrapped in a fan-out cluster when it has ``for``."""
        path = prefix + step.name
        self.roles.add(role)
        callee = self.library.get(step.call.saga) if step.call is not None else None
        inner: Node | Cluster
        if callee is not None and not self.collapse and callee.name not in stack and callee.body:
            cluster = Cluster(self.uid(f"cluster_call_{path}"), "call", f"{step.name}: call {callee.name}")
            self.roles.add("call")
            entry, exit_ = self.saga_into(callee, path + "/", cluster.items, (*stack, callee.name), top=False)
            if self.run is not None:
                st = self.state(path)
                if st is not None:
                    cluster.label += f" [{st.status}]"
            inner = cluster
            entry_a: Anchor = (entry[0], cluster.id)
            exit_a: Anchor = (exit_[0], cluster.id)
        else:
            lines = self.step_lines(saga, step, with_foreach=self.collapse)
            node = Node(self.uid(f"s_{path}"), role, _short(self.step_title(step, role)), lines)
            self.overlay(node, [path])
            inner = node
            entry_a = exit_a = (node.id, None)
        self.path_nodes[path] = exit_a
        if step.foreach is not None and not self.collapse:
            wrapper = Cluster(self.uid(f"cluster_for_{path}"), "foreach", _short(_foreach_text(step.foreach)), [inner])
            return wrapper, entry_a, exit_a
        return inner, entry_a, exit_a

    def saga_into(
        self, saga: ir.Saga, prefix: str, container: list[Node | Cluster], stack: tuple[str, ...], top: bool
    ) -> tuple[Anchor, Anchor]:
        """Add a saga's steps and edges; returns the anchors of its first and last step."""
        g = build(saga)
        if not g.is_dag:
            raise RenderError(f"saga {saga.name!r} has a dependency cycle; run `sagalang validate` to see it")
        roles = self.classes(g)
        anchors: dict[str, tuple[Anchor, Anchor]] = {}
        seen: set[str] = set()
        for item in saga.body:
            if isinstance(item, ir.Parallel):
                members = [s for s in item.steps if s.name in g.steps and g.steps[s.name] is s and s.name not in seen]
                if not members:
                    continue
                seen.update(s.name for s in members)
                if self.collapse:
                    node = self.group_node(saga, members, prefix)
                    container.append(node)
                    for s in members:
                        anchors[s.name] = ((node.id, None), (node.id, None))
                        self.path_nodes[prefix + s.name] = (node.id, None)
                    continue
                cluster = Cluster(self.uid(f"cluster_par_{prefix}{members[0].name}"), "parallel", "parallel")
                for s in members:
                    element, entry, exit_ = self.step_item(saga, s, prefix, roles[s.name], stack)
                    cluster.items.append(element)
                    anchors[s.name] = (entry, exit_)
                container.append(cluster)
            else:
                if item.name in seen or g.steps.get(item.name) is not item:
                    continue
                seen.add(item.name)
                element, entry, exit_ = self.step_item(saga, item, prefix, roles[item.name], stack)
                container.append(element)
                anchors[item.name] = (entry, exit_)
        if top:
            start = Node("n_start", "start", "start")
            container.insert(0, start)
        self.forward_edges(g, anchors, top)
        self.compensation_edges(saga, g, anchors, top)
        if top:
            end = Node("n_end", "end", "end")
            container.append(end)
            if self.run is not None:
                start.status = "succeeded" if self.run.status != "queued" else "pending"
                end.status = "succeeded" if self.run.status == "completed" else "pending"
            return (start.id, None), (end.id, None)
        if not g.topo:
            raise RenderError(f"saga {saga.name!r} has no steps")
        return anchors[g.topo[0]][0], anchors[g.topo[-1]][1]

    def group_node(self, saga: ir.Saga, members: list[ir.Step], prefix: str) -> Node:
        names = [s.name for s in members]
        shown = ", ".join(names[:3]) + (f", +{len(names) - 3} more" if len(names) > 3 else "")
        lines = [_short(shown)]
        conditional = sum(1 for s in members if s.when is not None)
        if conditional:
            lines.append(f"{conditional} conditional")
        node = Node(self.uid(f"g_{prefix}{names[0]}"), "group", f"parallel · {len(names)} steps", lines)
        self.roles.add("group")
        self.overlay(node, [prefix + n for n in names])
        return node

    def add_edge(self, edge: Edge) -> Edge | None:
        if edge.src == edge.dst:
            return None
        key = (edge.src, edge.dst, edge.kind)
        if key in self.edge_keys:
            return None
        self.edge_keys.add(key)
        self.edges.append(edge)
        return edge

    def forward_edges(self, g: SagaGraph, anchors: Mapping[str, tuple[Anchor, Anchor]], top: bool) -> None:
        dependents: set[str] = {d for ds in g.deps.values() for d in ds}
        for name in g.topo:
            step = g.steps[name]
            entry = anchors[name][0]
            label = _short("when " + expr_text(step.when)) if step.when is not None else None
            if label is not None and self.collapse and entry[0].startswith("g_"):
                label = None  # a collapsed block: the label would wrongly apply to every member
            sources = [anchors[d][1] for d in g.deps[name]] if g.deps[name] else ([("n_start", None)] if top else [])
            for src in sources:
                self.add_edge(Edge(src[0], entry[0], "forward", label, src[1], entry[1]))
        if top:
            for name in g.topo:
                if name not in dependents:
                    src = anchors[name][1]
                    self.add_edge(Edge(src[0], "n_end", "forward", None, src[1], None))
            if not g.topo:
                self.add_edge(Edge("n_start", "n_end", "forward"))

    def compensation_edges(
        self, saga: ir.Saga, g: SagaGraph, anchors: Mapping[str, tuple[Anchor, Anchor]], top: bool
    ) -> None:
        comp = {n for n, s in g.steps.items() if self.compensatable(s)}
        if not comp:
            return
        pairs: list[tuple[str, str | None]] = []
        if sem.compensation_order(saga) == "parallel":
            # Independent undos run together: each undo leads to the nearest compensatable steps it depends on.
            for name in g.reverse_order(comp):
                below = g.ancestors(name) & comp
                nearest = [a for a in below if not any(a in g.ancestors(b) for b in below)]
                pairs.extend((name, a) for a in g.reverse_order(set(nearest)))
                if not nearest:
                    pairs.append((name, None))
        else:
            chain = g.reverse_order(comp)
            pairs.extend(itertools.pairwise(chain))
            pairs.append((chain[-1], None))
        for src_name, dst_name in pairs:
            # A sub-saga is undone from its last step back to its first: the edge into its cluster
            # reaches the last step, the edge out of it leaves from the first.
            src = anchors[src_name][0]
            if dst_name is None:
                if top:
                    self.add_edge(Edge(src[0], "n_rolled_back", "compensation", None, src[1], None))
                continue
            dst = anchors[dst_name][1]
            self.add_edge(Edge(src[0], dst[0], "compensation", None, src[1], dst[1]))
        if top:
            self.roles.add("rolled_back")

    def taken_path(self, run: RunState) -> None:
        """Bold, numbered compensation edges along the undo order the run actually took."""
        nodes: list[Anchor] = []
        if run.failed_step is not None and run.failed_step in self.path_nodes:
            nodes.append(self.path_nodes[run.failed_step])
        for name in run.compensation_path:
            inner = name + "/"
            drawn = any(p.startswith(inner) for p in self.path_nodes)
            if drawn and any(p.startswith(inner) for p in run.compensation_path):
                continue  # a sub-saga call: the undos of its steps, drawn inside its cluster, stand for it
            anchor = self.path_nodes.get(name)
            parts = name.split("/")
            while anchor is None and len(parts) > 1:
                # A sub-saga step not drawn on its own (a collapsed call): count it as its caller.
                parts.pop()
                anchor = self.path_nodes.get("/".join(parts))
            if anchor is not None and (not nodes or nodes[-1] != anchor):
                nodes.append(anchor)
        if not run.compensation_path:
            return
        if run.status in ("compensated", "cancelled"):
            nodes.append(("n_rolled_back", None))
        index = {(e.src, e.dst): e for e in self.edges if e.kind == "compensation"}
        for n, (a, b) in enumerate(itertools.pairwise(nodes), start=1):
            edge = index.get((a[0], b[0]))
            if edge is None:
                edge = Edge(a[0], b[0], "compensation", None, a[1], b[1])
                self.edges.append(edge)
                index[(a[0], b[0])] = edge
            edge.taken = True
            edge.label = f"undo {n}" if edge.label is None else f"{edge.label}, {n}"


def _legend(roles: set[str], has_run: bool, statuses: set[str]) -> tuple[Cluster, list[Edge]]:
    items: list[Node | Cluster] = []
    samples: list[tuple[Role, str]] = [
        ("step", "compensatable step"),
        ("pivot", "pivot (no undo after it)"),
        ("readonly", "readonly (no side effects)"),
        ("retriable", "retriable (retried, no undo)"),
        ("call", "sub-saga call"),
        ("group", "collapsed parallel block"),
    ]
    for role, text in samples:
        if role in roles:
            items.append(Node(f"legend_{role}", role, text))
    if has_run:
        for status in (
            "succeeded",
            "failed",
            "compensated",
            "compensation_failed",
            "skipped",
            "running",
            "compensating",
            "pending",
        ):
            if status in statuses:
                text = "not reached" if status == "pending" else status.replace("_", " ")
                items.append(Node(f"legend_status_{status}", "step", text, status=status))
    items.append(Node("legend_fwd_a", "start", "", []))
    items.append(Node("legend_fwd_b", "start", "", []))
    edges = [Edge("legend_fwd_a", "legend_fwd_b", "forward", "forward", legend=True)]
    if "rolled_back" in roles:
        items.append(Node("legend_comp_a", "start", "", []))
        items.append(Node("legend_comp_b", "start", "", []))
        edges.append(Edge("legend_comp_a", "legend_comp_b", "compensation", "undo next", legend=True))
        if has_run:
            items.append(Node("legend_taken_a", "start", "", []))
            items.append(Node("legend_taken_b", "start", "", []))
            edges.append(
                Edge("legend_taken_a", "legend_taken_b", "compensation", "undo taken", taken=True, legend=True)
            )
    return Cluster("cluster_legend", "legend", "legend", items), edges


def _statuses(items: Iterable[Node | Cluster]) -> set[str]:
    out: set[str] = set()
    for item in items:
        if isinstance(item, Cluster):
            out |= _statuses(item.items)
        elif item.status is not None and item.role not in ("start", "end", "rolled_back"):
            out.add(item.status)
    return out


def diagram(
    saga_or_spec: object,
    run: RunState | None = None,
    *,
    rankdir: str = "TB",
    collapse: bool = False,
    saga: str | None = None,
) -> Diagram:
    """The format-neutral picture of a saga (and optionally a run of it)."""
    if rankdir not in ("TB", "LR", "BT", "RL"):
        raise RenderError(f"rankdir must be TB, LR, BT or RL, not {rankdir!r}")
    if saga is None and run is not None and run.saga and isinstance(saga_or_spec, Mapping | ir.Module):
        saga = run.saga
    main, library = _library(saga_or_spec, saga)
    if run is not None and run.saga and run.saga != main.name:
        raise RenderError(f"run {run.run_id!r} is a run of saga {run.saga!r}, not of {main.name!r}")
    b = _Builder(library, run, collapse)
    items: list[Node | Cluster] = []
    b.saga_into(main, "", items, (main.name,), top=True)
    if "rolled_back" in b.roles:
        rolled = Node("n_rolled_back", "rolled_back", "rolled back")
        if run is not None:
            rolled.status = {"compensated": "compensated", "cancelled": "compensated", "aborted": "failed"}.get(
                run.status, "pending"
            )
        items.append(rolled)
    if run is not None:
        b.taken_path(run)
    legend, legend_edges = _legend(b.roles, run is not None, _statuses(items))
    items.append(legend)
    title = [main.name + (f" v{main.version}" if main.version else "")]
    policy: list[str] = []
    if main.timeout is not None:
        policy.append(f"timeout {_duration(main.timeout.ms)}")
    if main.compensation is not None and main.compensation.order is not None:
        policy.append(f"compensation {main.compensation.order}")
    if main.on_failure is not None and main.on_failure.retry is not None:
        r = main.on_failure.retry
        policy.append(f"retry saga {r.attempts}x" + (f" analyze {r.analyzer}" if r.analyzer else ""))
    if policy:
        title.append(_short(" · ".join(policy), 80))
    if run is not None:
        line = f"run {run.run_id}: {run.status}"
        if run.failed_step:
            line += f" (failed at {run.failed_step})"
        title.append(_short(line, 80))
    return Diagram(main.name, title, items, b.edges + legend_edges, rankdir, run is not None)


# ---- styles -------------------------------------------------------------------

COLORS = {
    "forward": "#374151",
    "compensation": "#c2410c",
    "text": "#111827",
    "muted": "#6b7280",
}
_ROLE_FILL = {
    "step": ("#dbeafe", "#1d4ed8"),
    "pivot": ("#fde68a", "#b45309"),
    "readonly": ("#f3f4f6", "#6b7280"),
    "retriable": ("#dcfce7", "#15803d"),
    "call": ("#ede9fe", "#6d28d9"),
    "group": ("#e0f2fe", "#0369a1"),
    "start": ("#111827", "#111827"),
    "end": ("#111827", "#111827"),
    "rolled_back": ("#ffedd5", "#c2410c"),
}
# Run overlay: (fill, font colour) for each StepState status.
STATUS_FILL = {
    "succeeded": ("#86efac", "#111827"),
    "failed": ("#f87171", "#111827"),
    "compensated": ("#fdba74", "#111827"),
    "compensation_failed": ("#991b1b", "#ffffff"),
    "skipped": ("#e5e7eb", "#6b7280"),
    "running": ("#fde047", "#111827"),
    "compensating": ("#fed7aa", "#111827"),
    "pending": ("#ffffff", "#9ca3af"),
}
_CLUSTER_STYLE = {
    "parallel": ("#f8fafc", "#64748b", "parallel"),
    "foreach": ("#fefce8", "#a16207", "fan-out"),
    "call": ("#f5f3ff", "#6d28d9", "sub-saga"),
    "legend": ("#ffffff", "#9ca3af", "legend"),
}


# ---- DOT ----------------------------------------------------------------------


def _h(text: str) -> str:
    return html.escape(text, quote=True)


def _dot_label(node: Node) -> str:
    if node.role in ("start", "end", "rolled_back") or node.id.startswith("legend_"):
        return node.title
    parts = [f"<b>{_h(node.title)}</b>"]
    details = [_h(line) for line in node.lines]
    if details:
        parts.append('<font point-size="9">' + "<br/>".join(details) + "</font>")
    if node.notes:
        parts.append('<font point-size="9"><i>' + "<br/>".join(_h(n) for n in node.notes) + "</i></font>")
    return "<" + "<br/>".join(parts) + ">"


def _dot_node_attrs(node: Node) -> dict[str, str]:
    fill, border = _ROLE_FILL[node.role]
    font = "#ffffff" if node.role in ("start", "end") else COLORS["text"]
    attrs: dict[str, str] = {"color": border, "fillcolor": fill, "fontcolor": font}
    shape = {
        "step": ("box", "rounded,filled"),
        "pivot": ("hexagon", "filled,bold"),
        "readonly": ("box", "rounded,dashed,filled"),
        "retriable": ("box", "rounded,filled,bold"),
        "call": ("component", "filled"),
        "group": ("box3d", "filled"),
        "start": ("circle", "filled"),
        "end": ("doublecircle", "filled"),
        "rolled_back": ("doublecircle", "filled"),
    }[node.role]
    attrs["shape"], attrs["style"] = shape
    if node.role == "retriable":
        attrs["peripheries"] = "2"
    if node.role in ("start", "end", "rolled_back"):
        attrs["fontsize"] = "10"
        attrs["width"] = attrs["height"] = "0.5"
        attrs["fixedsize"] = "false"
    if node.id.startswith("legend_") and node.role == "start" and not node.title:
        return {"shape": "point", "width": "0.08", "color": COLORS["muted"]}
    if node.status is not None:
        sfill, sfont = STATUS_FILL.get(node.status, STATUS_FILL["pending"])
        if node.role in ("start", "end"):
            if node.status == "pending":
                attrs["fillcolor"], attrs["fontcolor"] = "#ffffff", COLORS["muted"]
        else:
            attrs["fillcolor"], attrs["fontcolor"] = sfill, sfont
            if node.status == "skipped" and "dashed" not in attrs["style"]:
                attrs["style"] += ",dashed"
    return attrs


def _dot_edge_attrs(edge: Edge) -> dict[str, str]:
    attrs: dict[str, str] = {}
    if edge.kind == "forward":
        attrs["color"] = COLORS["forward"]
    else:
        attrs.update(style="dashed", color=COLORS["compensation"], fontcolor=COLORS["compensation"], constraint="false")
        attrs["arrowhead"] = "vee"
        if edge.legend:
            del attrs["constraint"]
        if edge.taken:
            attrs["penwidth"] = "3"
            attrs["style"] = "dashed,bold"
    if edge.label:
        attrs["label"] = "<" + _h(edge.label) + ">"
        attrs["fontsize"] = "9"
    if edge.src_cluster:
        attrs["ltail"] = edge.src_cluster
    if edge.dst_cluster:
        attrs["lhead"] = edge.dst_cluster
    return attrs


def _dot_items(g: Any, items: list[Node | Cluster]) -> None:
    for item in items:
        if isinstance(item, Node):
            g.node(item.id, _dot_label(item), **_dot_node_attrs(item))
            continue
        fill, border, _ = _CLUSTER_STYLE[item.kind]
        with g.subgraph(name=item.id) as sub:
            style = "dashed" if item.kind in ("parallel", "legend") else "rounded,filled"
            sub.attr(label="<" + _h(item.label) + ">", style=style, color=border, fontcolor=border, fontsize="10")
            if "filled" in style:
                sub.attr(fillcolor=fill)
            if item.kind == "legend":
                sub.attr(rank="same")  # one row, read left to right
            _dot_items(sub, item.items)


def to_dot(d: Diagram) -> str:
    """DOT source for a diagram (through the ``graphviz`` package; no ``dot`` needed)."""
    import graphviz

    g = graphviz.Digraph(
        name=d.name,
        graph_attr={
            "rankdir": d.rankdir,
            "compound": "true",
            "newrank": "true",
            "fontname": "Helvetica",
            "labelloc": "t",
            "label": "<" + "<br/>".join(f"<b>{_h(t)}</b>" if i == 0 else _h(t) for i, t in enumerate(d.title)) + ">",
            "nodesep": "0.35",
            "ranksep": "0.45",
        },
        node_attr={"fontname": "Helvetica", "fontsize": "11", "margin": "0.12,0.06"},
        edge_attr={"fontname": "Helvetica", "arrowsize": "0.7"},
    )
    _dot_items(g, d.items)
    for edge in d.edges:
        g.edge(edge.src, edge.dst, **_dot_edge_attrs(edge))
    source: str = g.source
    return source


# ---- Mermaid ------------------------------------------------------------------

# Characters that would end a quoted Mermaid label or be read as markup, as entity codes.
_MERMAID_ESCAPES = {
    "&": "#amp;",
    "#": "#35;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "[": "#91;",
    "]": "#93;",
    "{": "#123;",
    "}": "#125;",
    "(": "#40;",
    ")": "#41;",
    "|": "#124;",
    ";": "#59;",
    "`": "#96;",
    "\\": "#92;",
}


def mermaid_escape(text: str) -> str:
    """Text safe inside a double-quoted Mermaid label: markup and delimiters as entity codes."""
    return "".join(_MERMAID_ESCAPES.get(c, c) for c in " ".join(text.split()))


def _mermaid_label(node: Node) -> str:
    if node.role in ("start", "end", "rolled_back") or (node.id.startswith("legend_") and not node.title):
        return mermaid_escape(node.title or " ")
    parts = [f"<b>{mermaid_escape(node.title)}</b>"]
    parts.extend(mermaid_escape(line) for line in node.lines)
    parts.extend(f"<i>{mermaid_escape(n)}</i>" for n in node.notes)
    return "<br/>".join(parts)


_MERMAID_SHAPES = {
    "step": ('("', '")'),
    "pivot": ('{{"', '"}}'),
    "readonly": ('(["', '"])'),
    "retriable": ('(["', '"])'),
    "call": ('[["', '"]]'),
    "group": ('[["', '"]]'),
    "start": ('(("', '"))'),
    "end": ('((("', '")))'),
    "rolled_back": ('((("', '")))'),
}


# Class names for roles; Mermaid reserves some words (`call`, `end`, `click`, `style` ...).
_MERMAID_CLASS = {
    "step": "compensatable",
    "pivot": "pivot",
    "readonly": "readonly",
    "retriable": "retriable",
    "call": "subsaga",
    "group": "collapsed",
    "start": "startpoint",
    "end": "endpoint",
    "rolled_back": "compensation",
}


def _mermaid_items(out: list[str], items: list[Node | Cluster], indent: str, classes: dict[str, list[str]]) -> None:
    for item in items:
        if isinstance(item, Node):
            if item.id.startswith("legend_") and not item.title:
                out.append(f"{indent}{item.id}(( ))")
                classes.setdefault("legendpoint", []).append(item.id)
                continue
            left, right = _MERMAID_SHAPES[item.role]
            if item.role == "retriable":
                left, right = '[/"', '"\\]'
            out.append(f"{indent}{item.id}{left}{_mermaid_label(item)}{right}")
            classes.setdefault(_MERMAID_CLASS[item.role], []).append(item.id)
            # start/end keep their dark fill in a run unless the run never got there
            markers = item.role in ("start", "end")
            if item.status is not None and (not markers or item.status == "pending"):
                classes.setdefault(f"st_{item.status}", []).append(item.id)
            continue
        out.append(f'{indent}subgraph {item.id}["{mermaid_escape(item.label)}"]')
        _mermaid_items(out, item.items, indent + "  ", classes)
        out.append(f"{indent}end")
        classes.setdefault(f"cl_{item.kind}", []).append(item.id)


def to_mermaid(d: Diagram) -> str:
    """Mermaid ``flowchart`` text for a diagram."""
    title = " — ".join(d.title)
    out = ["---", f"title: {json.dumps(title, ensure_ascii=False)}", "---"]
    direction = {"TB": "TB", "LR": "LR", "BT": "BT", "RL": "RL"}[d.rankdir]
    out.append(f"flowchart {direction}")
    classes: dict[str, list[str]] = {}
    _mermaid_items(out, d.items, "  ", classes)
    forward: list[int] = []
    comp: list[int] = []
    taken: list[int] = []
    for i, edge in enumerate(d.edges):
        src = edge.src_cluster or edge.src
        dst = edge.dst_cluster or edge.dst
        arrow = "-->" if edge.kind == "forward" else "-.->"
        label = f'|"{mermaid_escape(edge.label)}"|' if edge.label else ""
        out.append(f"  {src} {arrow}{label} {dst}")
        (forward if edge.kind == "forward" else taken if edge.taken else comp).append(i)
    for role, (fill, border) in _ROLE_FILL.items():
        font = "#ffffff" if role in ("start", "end") else COLORS["text"]
        extra = ",stroke-dasharray:4 3" if role == "readonly" else ",stroke-width:3px" if role == "pivot" else ""
        out.append(f"  classDef {_MERMAID_CLASS[role]} fill:{fill},stroke:{border},color:{font}{extra}")
    out.append(f"  classDef legendpoint fill:{COLORS['muted']},stroke:{COLORS['muted']}")
    for kind, (fill, border, _) in _CLUSTER_STYLE.items():
        out.append(f"  classDef cl_{kind} fill:{fill},stroke:{border},color:{border}")
    if d.has_run:
        for status, (fill, font) in STATUS_FILL.items():
            out.append(f"  classDef st_{status} fill:{fill},color:{font}")
    for name in sorted(classes, key=lambda c: (c.startswith("st_"), c)):
        ids = classes[name]
        out.append(f"  class {','.join(ids)} {name}")
    if forward:
        out.append(f"  linkStyle {','.join(map(str, forward))} stroke:{COLORS['forward']}")
    if comp:
        out.append(
            f"  linkStyle {','.join(map(str, comp))} stroke:{COLORS['compensation']},color:{COLORS['compensation']}"
        )
    if taken:
        out.append(
            f"  linkStyle {','.join(map(str, taken))} stroke:{COLORS['compensation']},stroke-width:3.5px,"
            f"color:{COLORS['compensation']}"
        )
    return "\n".join(out) + "\n"


# ---- entry points -------------------------------------------------------------


def format_for_path(path: str | Path) -> str | None:
    """The format a file name asks for (``.dot``/``.gv``, ``.svg``, ``.png``, ``.mmd``/``.mermaid``/``.md``)."""
    return _SUFFIXES.get(Path(path).suffix.lower())


def _pipe(dot_source: str, fmt: str) -> bytes:
    import subprocess

    import graphviz

    try:
        data: bytes = graphviz.Source(dot_source).pipe(format=fmt, quiet=True)
    except graphviz.ExecutableNotFound:
        raise GraphvizNotFoundError(fmt) from None
    except (graphviz.CalledProcessError, subprocess.CalledProcessError) as err:
        stderr = err.stderr.decode("utf-8", "replace") if isinstance(err.stderr, bytes) else str(err.stderr or "")
        raise RenderError(f"Graphviz `dot` failed to render {fmt.upper()}: {stderr.strip() or err}") from None
    return data


def render(
    saga_or_spec: object,
    run: RunState | None = None,
    format: str = "dot",
    *,
    rankdir: str = "TB",
    collapse: bool = False,
    saga: str | None = None,
) -> str | bytes:
    """Draw a saga (optionally a run of it): DOT or Mermaid text, or SVG/PNG bytes.

    ``saga_or_spec`` is an :class:`~sagalang.ir.Saga`, a :class:`~sagalang.ir.Module`,
    a mapping of saga names to sagas, or an object with ``.saga``/``.sagas``; the
    sagas besides the one drawn (``saga=`` picks it) expand ``call`` steps.
    """
    fmt = format.lower()
    if fmt not in FORMATS:
        raise RenderError(f"unknown diagram format {format!r}: use one of {', '.join(FORMATS)}")
    d = diagram(saga_or_spec, run, rankdir=rankdir, collapse=collapse, saga=saga)
    if fmt == "mermaid":
        return to_mermaid(d)
    source = to_dot(d)
    if fmt == "dot":
        return source
    return _pipe(source, fmt)


def load_spec(path: str | Path, root: str | Path | None = None) -> tuple[Project, list[Diagnostic], dict[str, ir.Saga]]:
    """Load and validate a spec file for drawing: the project, its diagnostics and its sagas by name.

    The entry file's sagas come first (in source order), then those it imports,
    then any other saga reached, so ``call`` steps expand into the right callee.
    """
    from .project import load_project
    from .validate import validate_project

    project = load_project([path], root)
    diags = validate_project(project)
    sagas: dict[str, ir.Saga] = {}
    for entry in project.entries:
        sf = project.files.get(entry)
        if sf is not None and sf.module is not None:
            for s in sf.module.sagas:
                sagas.setdefault(s.name, s)
        for s, _ in project.scope(entry).values():
            sagas.setdefault(s.name, s)
    for sf in project.modules():
        assert sf.module is not None
        for s in sf.module.sagas:
            sagas.setdefault(s.name, s)
    return project, diags, sagas


def load_run_state(url: str, run_id: str) -> RunState:
    """A run's state from a store: its journal folded (for ``render --run``)."""
    from .journal import open_store, run_with_store
    from .state import fold

    async def read(store: Store) -> tuple[RunRecord, list[Event]]:
        record = await store.get_run(run_id)
        if record is None:
            raise RenderError(f"no run {run_id!r} in store {url}")
        return record, await store.events(run_id)

    record, events = run_with_store(open_store(url), read)
    state = fold(events)
    if not state.run_id:
        state.run_id = run_id
    if not state.saga:
        state.saga = record.saga
    return state
