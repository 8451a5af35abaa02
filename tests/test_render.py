"""Diagrams: DOT/Mermaid snapshots, SVG/PNG through Graphviz, run overlays, the CLI, Mermaid's own parser."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from sagalang import ir
from sagalang.cli import main
from sagalang.events import Event
from sagalang.fmt import format_expr
from sagalang.parser import parse, parse_expr
from sagalang.render import (
    STATUS_FILL,
    Cluster,
    GraphvizNotFoundError,
    Node,
    RenderError,
    diagram,
    expr_text,
    format_for_path,
    load_spec,
    mermaid_escape,
    render,
)
from sagalang.state import RunState, fold

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "render"
EXAMPLES = ROOT / "specs" / "examples"
SNAPSHOTS = ROOT / "tests" / "snapshots" / "render"
MERMAID_TOOL = FIXTURES / "mermaid"
UPDATE = os.environ.get("SAGALANG_UPDATE_SNAPSHOTS") == "1"

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` is not installed (make graphviz)")


def spec_files() -> list[Path]:
    """Every spec drawn in the snapshot suite: our fixtures and the shipped examples."""
    files = sorted(FIXTURES.glob("*.saga")) + sorted(EXAMPLES.rglob("*.saga"))
    return [f for f in files if "node_modules" not in f.parts]


def cases() -> list[tuple[Path, str]]:
    """(file, saga name) for every saga defined in every spec file."""
    out: list[tuple[Path, str]] = []
    for f in spec_files():
        for saga in parse(f.read_text(encoding="utf-8"), str(f)).sagas:
            out.append((f, saga.name))
    return out


CASES = cases()


def case_id(case: tuple[Path, str]) -> str:
    """A readable test id: folder-relative file and saga."""
    f, name = case
    return f"{f.parent.name}/{f.stem}:{name}"


def library_of(path: Path) -> dict[str, ir.Saga]:
    """The sagas a spec file can draw (its own first, then imported ones)."""
    _, diags, sagas = load_spec(path)
    errors = [d for d in diags if d.severity == "error"]
    assert not errors, [d.format_line() for d in errors]
    return sagas


def snapshot(name: str, text: str) -> None:
    """Compare ``text`` with tests/snapshots/render/NAME; SAGALANG_UPDATE_SNAPSHOTS=1 rewrites it."""
    path = SNAPSHOTS / name
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return
    assert path.exists(), f"no snapshot {path}; run with SAGALANG_UPDATE_SNAPSHOTS=1 to create it"
    expected = path.read_text(encoding="utf-8")
    assert text == expected, f"{name} changed; review, then SAGALANG_UPDATE_SNAPSHOTS=1 to accept"


def snap_name(f: Path, saga: str, suffix: str) -> str:
    """Snapshot file name for one saga of one spec file."""
    return f"{f.parent.name}__{f.stem}__{saga}.{suffix}"


# ---- snapshots and determinism --------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_dot_and_mermaid_snapshots(case: tuple[Path, str]) -> None:
    f, name = case
    sagas = library_of(f)
    dot = render(sagas, format="dot", saga=name)
    mmd = render(sagas, format="mermaid", saga=name)
    assert isinstance(dot, str) and isinstance(mmd, str)
    snapshot(snap_name(f, name, "dot"), dot)
    snapshot(snap_name(f, name, "mmd"), mmd)


def test_snapshot_suite_covers_every_example() -> None:
    drawn = {f for f, _ in CASES}
    assert set(EXAMPLES.rglob("*.saga")) <= drawn
    assert len(list(FIXTURES.glob("*.saga"))) >= 4
    if not UPDATE:
        expected = {snap_name(f, n, s) for f, n in CASES for s in ("dot", "mmd")}
        assert expected <= {p.name for p in SNAPSHOTS.iterdir()}


def test_render_twice_is_byte_identical() -> None:
    for f, name in CASES:
        sagas = library_of(f)
        for fmt in ("dot", "mermaid"):
            assert render(sagas, format=fmt, saga=name) == render(sagas, format=fmt, saga=name)


def test_output_does_not_depend_on_hash_seed(tmp_path: Path) -> None:
    code = (
        "import sys, hashlib\n"
        "from sagalang.render import load_spec, render\n"
        "h = hashlib.sha256()\n"
        "for p in sys.argv[1:]:\n"
        "    _, _, sagas = load_spec(p)\n"
        "    for name in sagas:\n"
        "        for fmt in ('dot', 'mermaid'):\n"
        "            for collapse in (False, True):\n"
        "                h.update(render(sagas, format=fmt, saga=name, collapse=collapse).encode())\n"
        "print(h.hexdigest())\n"
    )
    files = [str(f) for f in spec_files()]
    digests = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run([sys.executable, "-c", code, *files], env=env, capture_output=True, text=True, check=True)
        digests.add(out.stdout.strip())
    assert len(digests) == 1


# ---- what the picture shows -------------------------------------------------------


def order_saga() -> ir.Saga:
    return parse((FIXTURES / "order.saga").read_text(encoding="utf-8")).sagas[0]


def dot_nodes(dot: str) -> dict[str, str]:
    """Node id -> its attribute text, from DOT source."""
    out: dict[str, str] = {}
    for line in dot.splitlines():
        m = re.match(r"\s*([A-Za-z_][A-Za-z0-9_]*) \[(.*)\]$", line)
        if m and m.group(1) not in ("graph", "node", "edge"):
            out[m.group(1)] = m.group(2)
    return out


def dot_edges(dot: str) -> list[tuple[str, str, str]]:
    """(src, dst, attribute text) of every edge in DOT source."""
    return re.findall(r"^\s*(\w+) -> (\w+) \[(.*)\]$", dot, flags=re.M)


def test_dot_shows_steps_handlers_policies_and_classes() -> None:
    dot = render(order_saga())
    assert isinstance(dot, str)
    nodes = dot_nodes(dot)
    assert {"n_start", "n_end", "n_rolled_back", "s_reserve", "s_charge", "s_label", "s_upgrade", "s_ship"} <= set(
        nodes
    )
    assert "do stock.reserve" in nodes["s_reserve"] and "undo stock.release" in nodes["s_reserve"]
    assert "retry 5x · 100ms x2 max 2s" in nodes["s_charge"]  # the step's own policy
    assert "retry 3x · 200ms x2 max 5s · jitter" in nodes["s_reserve"]  # inherited from defaults
    assert "timeout 10s" in nodes["s_reserve"]
    assert "shape=hexagon" in nodes["s_ship"] and "ship · pivot" in nodes["s_ship"]
    assert "notify · retriable" in nodes["s_notify"] and "peripheries=2" in nodes["s_notify"]
    assert "subgraph cluster_par_label" in dot and "subgraph cluster_legend" in dot


def test_forward_and_compensation_edges() -> None:
    dot = render(order_saga())
    assert isinstance(dot, str)
    edges = {(a, b): attrs for a, b, attrs in dot_edges(dot)}
    # forward: solid, with the `when` condition as a label
    assert "style=dashed" not in edges[("s_reserve", "s_charge")]
    assert "label=<when input.express>" in edges[("s_charge", "s_upgrade")]
    assert ("n_start", "s_reserve") in edges and ("s_notify", "n_end") in edges
    # compensation: reversed, dashed, own colour, not constraining the layout; reverse source order
    chain = [
        ("s_upgrade", "s_label"),
        ("s_label", "s_charge"),
        ("s_charge", "s_reserve"),
        ("s_reserve", "n_rolled_back"),
    ]
    for pair in chain:
        attrs = edges[pair]
        assert "style=dashed" in attrs and 'color="#c2410c"' in attrs and "constraint=false" in attrs
    # nothing after the pivot is compensated, and the pivot itself has no undo
    assert not any(a in ("s_ship", "s_notify") for (a, b), attrs in edges.items() if "dashed" in attrs)


def test_parallel_compensation_order_draws_the_dependency_dag() -> None:
    sagas = library_of(FIXTURES / "bulk.saga")
    dot = render(sagas, saga="bulk_order")
    assert isinstance(dot, str)
    comp = {(a, b) for a, b, attrs in dot_edges(dot) if "dashed" in attrs and not a.startswith("legend")}
    # pay (a sub-saga, drawn as a cluster) is undone before reserve_lines; quote is readonly
    assert ("s_pay_capture", "s_reserve_lines") in comp or ("s_pay_authorize", "s_reserve_lines") in comp
    assert ("s_reserve_lines", "n_rolled_back") in comp
    assert not any("quote" in a or "quote" in b for a, b in comp)


def test_sub_saga_expands_into_a_cluster_when_the_callee_is_known() -> None:
    sagas = library_of(FIXTURES / "bulk.saga")
    dot = render(sagas, saga="bulk_order")
    assert isinstance(dot, str)
    assert "subgraph cluster_call_pay" in dot and "s_pay_authorize" in dot and "s_pay_capture" in dot
    assert "lhead=cluster_call_pay" in dot
    assert "subgraph cluster_for_reserve_lines" in dot and "for line in input.lines limit 4" in dot
    # only the calling saga: the call is a single node naming the callee
    alone = render(sagas["bulk_order"])
    assert isinstance(alone, str)
    assert "cluster_call_pay" not in alone and "pay · call payment" in dot_nodes(alone)["s_pay"]
    assert "shape=component" in dot_nodes(alone)["s_pay"]


def test_accepts_module_mapping_and_spec_like_objects() -> None:
    sagas = library_of(FIXTURES / "bulk.saga")

    class SpecLike:
        saga = sagas["bulk_order"]

        def __init__(self) -> None:
            self.sagas = {"payment": sagas["payment"]}

    assert render(SpecLike()) == render(sagas, saga="bulk_order")
    module = parse((FIXTURES / "payments.saga").read_text(encoding="utf-8"))
    assert render(module) == render(module.sagas[0])
    with pytest.raises(RenderError, match="no saga named 'nope'"):
        render(sagas, saga="nope")
    with pytest.raises(RenderError, match="cannot draw a int"):
        render(42)
    with pytest.raises(RenderError, match="unknown diagram format 'jpeg'"):
        render(order_saga(), format="jpeg")


def test_collapse_and_left_to_right_for_large_sagas() -> None:
    sagas = library_of(FIXTURES / "bulk.saga")
    dot = render(sagas, saga="bulk_order", collapse=True, rankdir="LR")
    assert isinstance(dot, str)
    assert "rankdir=LR" in dot
    assert "cluster_call_pay" not in dot and "cluster_for_" not in dot
    nodes = dot_nodes(dot)
    assert "for line in input.lines limit 4" in nodes["s_reserve_lines"]
    order = render(order_saga(), collapse=True)
    assert isinstance(order, str)
    assert "cluster_par_" not in order and "parallel · 2 steps" in dot_nodes(order)["g_label"]
    edges = {(a, b) for a, b, _ in dot_edges(order)}
    assert ("s_charge", "g_label") in edges and ("g_label", "s_ship") in edges


def big_saga(n_blocks: int) -> str:
    """A long saga: sequential steps, parallel blocks and fan-outs, ~5 steps per block."""
    lines = ['saga big version "1" {']
    for i in range(n_blocks):
        lines.append(f"  step a{i} {{ do svc.a(i: {i}) undo svc.ua(i: {i}) }}")
        lines.append("  parallel {")
        for j in range(3):
            lines.append(f"    step p{i}_{j} {{ do svc.p(i: {i}) undo svc.up(i: {i}) }}")
        lines.append("  }")
        lines.append(f"  step f{i} for x in input.items limit 2 {{ do svc.f(x: x) undo svc.uf(x: x) }}")
    lines.append("}")
    return "\n".join(lines)


def test_hundreds_of_steps_render_fast_and_collapse_shrinks_them() -> None:
    import time

    saga = parse(big_saga(30)).sagas[0]
    assert len(saga.steps()) == 150
    t0 = time.perf_counter()
    full = diagram(saga, rankdir="LR")
    small = diagram(saga, rankdir="LR", collapse=True)
    text = render(saga, format="mermaid", rankdir="LR", collapse=True)
    elapsed = time.perf_counter() - t0
    assert elapsed < 5.0
    assert isinstance(text, str) and text.splitlines()[3] == "flowchart LR"

    def count(items: list[Node | Cluster]) -> tuple[int, int]:
        nodes = clusters = 0
        for i in items:
            if isinstance(i, Cluster):
                n, c = count(i.items)
                nodes, clusters = nodes + n, clusters + c + 1
            else:
                nodes += 1
        return nodes, clusters

    full_nodes, full_clusters = count(full.items)
    small_nodes, small_clusters = count(small.items)
    assert (full_clusters, small_clusters) == (61, 1)  # 30 parallel + 30 fan-out + legend; then the legend only
    # each 3-step parallel block became one node; the legend gained "collapsed parallel block"
    assert small_nodes == full_nodes - 60 + 1
    assert max(len(line) for n in small.items if hasattr(n, "lines") for line in n.lines) <= 44


def test_labels_are_escaped_in_dot_and_mermaid() -> None:
    saga = parse((FIXTURES / "tricky.saga").read_text(encoding="utf-8")).sagas[0]
    dot = render(saga)
    mmd = render(saga, format="mermaid")
    assert isinstance(dot, str) and isinstance(mmd, str)
    # node ids never collide with DOT/Mermaid keywords (end, graph, subgraph, style, click)
    assert "s_end" in dot and "s_subgraph" in mmd and "s_click" in mmd
    assert "when graph.flag == &quot;x;y&quot; or not graph.ok" in dot
    assert '"when graph.flag == #quot;x#59;y#quot; or not graph.ok"' in mmd
    for line in mmd.splitlines():
        # inside a quoted label only entity codes appear, never a raw quote, bracket, pipe or #
        for label in re.findall(r'"((?:[^"])*)"', line):
            if line.startswith("title:"):
                continue
            bare = re.sub(r"#\w+;", "", re.sub(r"</?(b|i|br/)>", "", label))
            assert not re.search(r"[\[\]{}|;`<>#]", bare), (line, label)


def test_mermaid_escape() -> None:
    assert mermaid_escape('a "b" [c] #d') == "a #quot;b#quot; #91;c#93; #35;d"
    assert mermaid_escape("x\n  y") == "x y"
    assert mermaid_escape("<script>&") == "#lt;script#gt;#amp;"


@pytest.mark.parametrize(
    "text",
    [
        "input.a and (input.b or not input.c)",
        "-(a + b) * c % 2 >= len(items[0].x)",
        'default(quote.total, 0) > 100 and input.email != ""',
        '"Paid ${quote.total} \\"ok\\""',
        '[1, 2.5, {k: true, "a b": null}]',
        "not not x",
        "a - (b - c)",
    ],
)
def test_expr_text_round_trips(text: str) -> None:
    e = parse_expr(text)
    assert parse_expr(expr_text(e)) == e


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("not (a <= 0)", "not a <= 0"),  # `not` takes the whole comparison: no parentheses needed
        ("2.0 * x", "2.0 * x"),  # a float stays a float
        ("(a + b) + c", "(a + b) + c"),  # a nested chain is not the same IR as `a + b + c`
        ("-(-x)", "-(-x)"),
        ('"\\${x}"', '"\\${x}"'),  # an escaped `${` stays escaped, so the label reads back as text
        ("\"a ${f('x')}\"", "\"a ${f('x')}\""),  # inside `${...}` strings take the other quote
    ],
)
def test_labels_print_expressions_as_the_formatter_does(text: str, label: str) -> None:
    e = parse_expr(text)
    assert expr_text(e) == format_expr(e) == label
    assert parse_expr(label) == e


def test_format_for_path() -> None:
    assert format_for_path("a.dot") == format_for_path("a.gv") == "dot"
    assert format_for_path("a.SVG") == "svg" and format_for_path("a.png") == "png"
    assert format_for_path("a.mmd") == format_for_path("a.mermaid") == format_for_path("a.md") == "mermaid"
    assert format_for_path("a.jpeg") is None


# ---- SVG and PNG through the real `dot` ----------------------------------------------------


def svg_texts(svg: bytes) -> str:
    """All text of an SVG document, joined with newlines."""
    root = ET.fromstring(svg)
    return "\n".join(t for el in root.iter() for t in [el.text] if t)


@needs_dot
@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_svg_names_every_step_and_every_undo(case: tuple[Path, str]) -> None:
    f, name = case
    sagas = library_of(f)
    svg = render(sagas, format="svg", saga=name)
    assert isinstance(svg, bytes)
    text = svg_texts(svg)
    wanted: list[ir.Saga] = [sagas[name]]
    for step in sagas[name].steps():
        if step.call is not None and step.call.saga in sagas and step.call.saga != name:
            wanted.append(sagas[step.call.saga])
    for saga in wanted:
        for step in saga.steps():
            assert step.name in text, f"step {step.name} missing from the SVG"
            if step.undo is not None:
                assert f"undo {step.undo.handler}" in text, f"undo of {step.name} missing from the SVG"


@needs_dot
def test_png_has_a_signature_and_a_sane_size() -> None:
    png = render(order_saga(), format="png")
    assert isinstance(png, bytes)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    assert 200 < width < 10_000 and 200 < height < 10_000


def test_missing_dot_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty folder: no `dot` anywhere
    with pytest.raises(GraphvizNotFoundError) as info:
        render(order_saga(), format="svg")
    message = str(info.value)
    assert "apt-get install graphviz" in message and "brew install graphviz" in message
    # text formats need no Graphviz
    assert isinstance(render(order_saga(), format="dot"), str)
    assert isinstance(render(order_saga(), format="mermaid"), str)


def test_missing_dot_cli_exits_1_without_traceback(tmp_path: Path) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    out = tmp_path / "order.svg"
    env = {**os.environ, "PATH": str(empty)}
    proc = subprocess.run(
        [sys.executable, "-m", "sagalang", "render", str(FIXTURES / "order.saga"), "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 1
    assert "apt-get install graphviz" in proc.stderr and "Traceback" not in proc.stderr
    assert not out.exists()


# ---- run overlay ---------------------------------------------------------------------------


def failed_order_run() -> RunState:
    """A journal: upgrade skipped, the pivot `ship` fails for good, label/charge/reserve undone."""
    rid = "run-1"
    err = {"type": "shipping.CarrierDown", "message": "carrier API answered 503", "names": ["shipping.CarrierDown"]}
    evs = [Event("saga.started", rid, data={"saga": "order_fulfillment", "attempt": 1})]
    for step in ("reserve", "charge"):
        evs += [Event("step.started", rid, step=step, attempt=1), Event("step.succeeded", rid, step=step, data={})]
    evs += [
        Event("step.skipped", rid, step="upgrade"),
        Event("step.started", rid, step="label", attempt=1),
        Event("step.succeeded", rid, step="label", data={"output": {"id": "L1"}}),
        Event("step.started", rid, step="ship", attempt=1),
        Event("step.failed", rid, step="ship", attempt=1, data={"error": err, "final": False}),
        Event("step.retrying", rid, step="ship", attempt=1, data={"error": err}),
        Event("step.started", rid, step="ship", attempt=2),
        Event("step.failed", rid, step="ship", attempt=2, data={"error": err, "final": True}),
        Event("saga.compensating", rid, data={"reason": "failure", "step": "ship", "error": err}),
    ]
    for step in ("label", "charge", "reserve"):
        evs += [
            Event("compensation.started", rid, step=step, attempt=1),
            Event("compensation.succeeded", rid, step=step),
        ]
    evs.append(Event("saga.compensated", rid, data={"step": "ship"}))
    return fold(
        [Event(e.kind, e.run_id, i + 1, float(i), e.step, e.item, e.attempt, e.data) for i, e in enumerate(evs)]
    )


def fill_of(attrs: str) -> str:
    m = re.search(r'fillcolor="(#[0-9a-f]{6})"', attrs)
    assert m, attrs
    return m.group(1)


def test_run_overlay_colours_exactly_what_the_journal_says() -> None:
    run = failed_order_run()
    assert run.status == "compensated" and run.compensation_path == ["label", "charge", "reserve"]
    dot = render(order_saga(), run)
    assert isinstance(dot, str)
    nodes = dot_nodes(dot)
    expected = {
        "reserve": "compensated",
        "charge": "compensated",
        "label": "compensated",
        "upgrade": "skipped",
        "ship": "failed",
        "notify": "pending",
    }
    for step, status in expected.items():
        assert run.steps.get(step) is None or run.steps[step].status == status
        assert fill_of(nodes[f"s_{step}"]) == STATUS_FILL[status][0], step
    assert "shipping.CarrierDown: carrier API answered 503" in nodes["s_ship"]
    assert "attempt 2" in nodes["s_ship"]
    assert "run run-1: compensated (failed at ship)" in dot
    # the path taken: failed step, then the undos in journal order, then rolled back — bold and numbered
    taken = [(a, b, attrs) for a, b, attrs in dot_edges(dot) if "penwidth=3" in attrs and not a.startswith("legend")]
    assert [(a, b) for a, b, _ in taken] == [
        ("s_label", "s_charge"),
        ("s_charge", "s_reserve"),
        ("s_reserve", "n_rolled_back"),
        ("s_ship", "s_label"),
    ]
    labels = {(a, b): re.search(r"label=<undo (\d+)>", attrs).group(1) for a, b, attrs in taken}  # type: ignore[union-attr]
    assert labels[("s_ship", "s_label")] == "1" and labels[("s_reserve", "n_rolled_back")] == "4"
    # the edge upgrade -> label was not taken (upgrade was skipped): still drawn, not bold
    plain = {(a, b): attrs for a, b, attrs in dot_edges(dot)}
    assert "penwidth" not in plain[("s_upgrade", "s_label")]


def test_run_overlay_in_mermaid() -> None:
    mmd = render(order_saga(), failed_order_run(), format="mermaid")
    assert isinstance(mmd, str)
    classes = dict(re.findall(r"^  class (\S+) (st_\w+)$", mmd, flags=re.M)[::-1])
    by_status: dict[str, set[str]] = {}
    for ids, cls in re.findall(r"^  class (\S+) (st_\w+)$", mmd, flags=re.M):
        by_status[cls] = set(ids.split(","))
    assert {"s_reserve", "s_charge", "s_label"} <= by_status["st_compensated"]
    assert "s_ship" in by_status["st_failed"] and "s_upgrade" in by_status["st_skipped"]
    assert "s_notify" in by_status["st_pending"]
    assert classes
    assert "carrier API answered 503" in mmd
    assert re.search(r"^  linkStyle [\d,]+ stroke:#c2410c,stroke-width:3.5px", mmd, flags=re.M)


def test_every_step_status_has_its_own_fill() -> None:
    from sagalang.state import STEP_STATES

    assert set(STATUS_FILL) == set(STEP_STATES)
    assert len({fill for fill, _ in STATUS_FILL.values()}) == len(STATUS_FILL)
    run = RunState("r3", saga="order_fulfillment", status="aborted")
    names = ["reserve", "charge", "label", "upgrade", "ship", "notify"]
    statuses = ["compensation_failed", "compensating", "running", "succeeded", "pending", "pending"]
    for name, status in zip(names, statuses):
        run.step(name).status = status
    run.steps["reserve"].error = {"type": "stock.Unreachable", "message": "undo gave up"}
    dot = render(order_saga(), run)
    assert isinstance(dot, str)
    nodes = dot_nodes(dot)
    for name, status in zip(names, statuses):
        assert fill_of(nodes[f"s_{name}"]) == STATUS_FILL[status][0], name
    assert "stock.Unreachable: undo gave up" in nodes["s_reserve"]
    assert 'fontcolor="#ffffff"' in nodes["s_reserve"]  # dark red needs light text
    legend = {n: a for n, a in nodes.items() if n.startswith("legend_status_")}
    assert set(legend) == {f"legend_status_{s}" for s in set(statuses)}


def test_run_of_another_saga_is_refused() -> None:
    run = RunState("r9", saga="payment")
    with pytest.raises(RenderError, match="run 'r9' is a run of saga 'payment'"):
        render(order_saga(), run)


def test_run_overlay_of_fan_out_items_and_sub_saga_steps() -> None:
    sagas = library_of(FIXTURES / "bulk.saga")
    rid = "r2"
    err = {"type": "inventory.OutOfStock", "message": "sku B-2 is out of stock", "names": []}
    evs = [
        Event("saga.started", rid, data={"saga": "bulk_order"}),
        Event("step.succeeded", rid, step="quote", data={"output": {"total": 5}}),
        Event("step.succeeded", rid, step="reserve_lines", item=0, data={}),
        Event("step.failed", rid, step="reserve_lines", item=1, data={"error": err, "final": True}),
        Event("step.failed", rid, step="reserve_lines", data={"error": None, "final": True}),
        Event("saga.compensating", rid, data={"step": "reserve_lines"}),
        Event("compensation.succeeded", rid, step="reserve_lines", item=0),
        Event("compensation.succeeded", rid, step="reserve_lines"),
        Event("saga.compensated", rid),
    ]
    run = fold(evs)
    dot = render(sagas, run, saga="bulk_order")
    assert isinstance(dot, str)
    nodes = dot_nodes(dot)
    assert "2 items: 1 failed, 1 compensated" in nodes["s_reserve_lines"]
    assert fill_of(nodes["s_reserve_lines"]) == STATUS_FILL["compensated"][0]
    assert fill_of(nodes["s_pay_authorize"]) == STATUS_FILL["pending"][0]
    assert fill_of(nodes["s_quote"]) == STATUS_FILL["succeeded"][0]
    # a sub-saga's steps are journaled as caller/step
    run2 = fold(
        [
            *evs[:2],
            Event("step.succeeded", rid, step="reserve_lines"),
            Event("step.succeeded", rid, step="pay/authorize"),
        ]
    )
    nodes2 = dot_nodes(str(render(sagas, run2, saga="bulk_order")))
    assert fill_of(nodes2["s_pay_authorize"]) == STATUS_FILL["succeeded"][0]
    assert fill_of(nodes2["s_pay_capture"]) == STATUS_FILL["pending"][0]
    collapsed = dot_nodes(str(render(sagas, run2, saga="bulk_order", collapse=True)))
    assert fill_of(collapsed["s_pay"]) == STATUS_FILL["pending"][0]


def test_overlay_of_a_real_failed_run_on_the_memory_store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from sagalang.interpreter import run as run_saga
    from sagalang.journal import open_store
    from sagalang.plugins import Registry
    from sagalang.spec import load

    monkeypatch.setenv("SAGALANG_EXAMPLES_DB", str(tmp_path / "effects.db"))  # the example handlers' world
    registry = Registry.discover(cwd=ROOT)
    spec = load(EXAMPLES / "containerize.saga", registry)
    data = json.loads((EXAMPLES / "containerize.input.json").read_text(encoding="utf-8"))
    data["base_image"] = "python:3.12-slim"

    async def go() -> RunState:
        store = open_store("memory:")
        await store.open()
        result = await run_saga(spec, data, store=store, registry=registry, fail_at=["manifests"])
        # what the journal says, folded afresh: the overlay must show exactly this
        return fold(await store.events(result.run_id))

    state = asyncio.run(go())
    assert state.status == "compensated" and state.failed_step == "manifests", state.error
    assert state.compensation_path[:2] == ["push/upload", "push/tag"]
    dot = render(spec, state)
    assert isinstance(dot, str)
    nodes = dot_nodes(dot)
    drawn = [n for n in nodes if n.startswith("s_")]
    for node_id in drawn:
        path = node_id[2:].replace("push_", "push/", 1) if node_id.startswith("s_push_") else node_id[2:]
        st = state.steps.get(path)
        status = st.status if st is not None else "pending"
        assert fill_of(nodes[node_id]) == STATUS_FILL[status][0], (path, status)
    assert {"s_deploy", "s_verify"} <= set(drawn)
    assert state.steps.get("deploy") is None or state.steps["deploy"].status == "pending"
    assert "push: call publish [compensated]" in dot
    # bold edges follow the journal: manifests -> upload -> tag -> build -> dockerfile -> rolled back
    taken = sorted(
        (int(m.group(1)), a, b)
        for a, b, attrs in dot_edges(dot)
        if "penwidth=3" in attrs and not a.startswith("legend")
        for m in [re.search(r"undo (\d+)", attrs)]
        if m
    )
    assert [(a, b) for _, a, b in taken] == [
        ("s_manifests", "s_push_upload"),
        ("s_push_upload", "s_push_tag"),
        ("s_push_tag", "s_build"),
        ("s_build", "s_dockerfile"),
        ("s_dockerfile", "n_rolled_back"),
    ]


@needs_dot
def test_run_overlay_svg_names_the_error() -> None:
    svg = render(order_saga(), failed_order_run(), format="svg")
    assert isinstance(svg, bytes)
    text = svg_texts(svg)
    assert "carrier API answered 503" in text and "undo 1" in text


# ---- CLI -----------------------------------------------------------------------------------


def test_cli_writes_each_format_from_the_suffix(tmp_path: Path, runner: CliRunner) -> None:
    spec = str(FIXTURES / "order.saga")
    for name, check in [
        ("o.dot", lambda b: b.startswith(b"digraph order_fulfillment {")),
        ("o.gv", lambda b: b.startswith(b"digraph")),
        ("o.mmd", lambda b: b"flowchart TB" in b),
        ("o.md", lambda b: b.startswith(b"```mermaid\n") and b.endswith(b"```\n")),
    ] + (
        [("o.svg", lambda b: b"<svg" in b), ("o.png", lambda b: b.startswith(b"\x89PNG"))]
        if shutil.which("dot")
        else []
    ):
        result = runner.invoke(main, ["render", spec, "-o", str(tmp_path / name)])
        assert result.exit_code == 0, result.output
        assert check((tmp_path / name).read_bytes()), name


def test_cli_stdout_and_options(runner: CliRunner) -> None:
    spec = str(FIXTURES / "bulk.saga")
    result = runner.invoke(main, ["render", spec, "-o", "-", "--format", "mermaid", "--lr", "--collapse"])
    assert result.exit_code == 0, result.output
    assert "flowchart LR" in result.output and "cluster_call_pay" not in result.output
    result = runner.invoke(main, ["render", spec, "--saga", "payment"])
    assert result.exit_code == 0 and result.output.startswith("digraph payment {")
    result = runner.invoke(main, ["render", spec, "--saga", "nope"])
    assert result.exit_code == 1 and "no saga named 'nope'" in result.output
    result = runner.invoke(main, ["render", spec, "-o", "x.jpeg"])
    assert result.exit_code == 1 and "cannot tell the format from 'x.jpeg'" in result.output
    assert "Traceback" not in result.output


@needs_dot
def test_cli_binary_formats_to_stdout(runner: CliRunner) -> None:
    result = runner.invoke(main, ["render", str(FIXTURES / "order.saga"), "-o", "-", "--format", "png"])
    assert result.exit_code == 0
    assert result.stdout_bytes.startswith(b"\x89PNG\r\n\x1a\n")
    result = runner.invoke(main, ["render", str(FIXTURES / "order.saga"), "--format", "svg"])
    assert result.exit_code == 0 and ET.fromstring(result.stdout_bytes).tag.endswith("svg")


def test_cli_invalid_spec_prints_diagnostics_and_exits_1(tmp_path: Path, runner: CliRunner) -> None:
    bad = tmp_path / "bad.saga"
    bad.write_text("saga s {\n  step a { do x.y() undo x.z() }\n  step b after nope { do x.y() undo x.z() }\n}\n")
    result = runner.invoke(main, ["render", str(bad), "-o", str(tmp_path / "out.dot")])
    assert result.exit_code == 1
    assert "bad.saga:3:16: error[E201]" in result.output and "unknown step 'nope'" in result.output
    assert not (tmp_path / "out.dot").exists()
    broken = tmp_path / "broken.saga"
    broken.write_text("saga s {\n  step a {\n")
    result = runner.invoke(main, ["render", str(broken)])
    assert (
        result.exit_code == 1 and "broken.saga:2:10: error[E013]" in result.output and "Traceback" not in result.output
    )


def test_cli_run_overlay_from_a_store(tmp_path: Path, runner: CliRunner) -> None:
    from sagalang.journal import RunRecord, open_store

    url = f"sqlite:///{tmp_path / 'runs.db'}"
    run = failed_order_run()
    events = [
        Event(k, "run-1", step=s, attempt=a, data=d)
        for k, s, a, d in [
            ("saga.started", None, None, {"saga": "order_fulfillment"}),
            ("step.succeeded", "reserve", 1, {}),
            ("step.failed", "charge", 1, {"error": {"type": "payments.Declined", "message": "card declined"}}),
            ("saga.compensating", None, None, {"step": "charge"}),
            ("compensation.succeeded", "reserve", 1, {}),
            ("saga.compensated", None, None, {}),
        ]
    ]

    async def seed() -> None:
        store = open_store(url)
        await store.open()
        try:
            record = RunRecord("run-1", "order_fulfillment", "order.saga", {}, "h", {}, status="running")
            await store.create_run(record)
            await store.append("run-1", events, status="compensated")
        finally:
            await store.close()

    asyncio.run(seed())
    assert run.run_id == "run-1"
    out = tmp_path / "run.dot"
    result = runner.invoke(
        main, ["render", str(FIXTURES / "order.saga"), "-o", str(out), "--run", "run-1", "--store", url]
    )
    assert result.exit_code == 0, result.output
    nodes = dot_nodes(out.read_text())
    assert fill_of(nodes["s_reserve"]) == STATUS_FILL["compensated"][0]
    assert fill_of(nodes["s_charge"]) == STATUS_FILL["failed"][0]
    assert "payments.Declined: card declined" in nodes["s_charge"]
    result = runner.invoke(main, ["render", str(FIXTURES / "order.saga"), "--run", "missing", "--store", url])
    assert result.exit_code == 1 and "no run 'missing'" in result.output


_ID = r"[A-Za-z_][A-Za-z0-9_]*"
_LABEL = r'"[^"]*"'
_NODE = re.compile(
    rf"^\s+({_ID})(?:\(\(\s\)\)|\({_LABEL}\)|\{{\{{{_LABEL}\}}\}}|\(\[{_LABEL}\]\)|\[/{_LABEL}\\\]"
    rf"|\[\[{_LABEL}\]\]|\(\({_LABEL}\)\)|\(\(\({_LABEL}\)\)\))$"
)
_SUBGRAPH = re.compile(rf"^\s+subgraph ({_ID})\[{_LABEL}\]$")
_EDGE = re.compile(rf"^  ({_ID}) (-->|-\.->)(?:\|{_LABEL}\|)? ({_ID})$")
_CLASSDEF = re.compile(rf"^  classDef ({_ID}) [a-z-]+:[^\s,]+(?:,[a-z-]+:[^,]+)*$")
_CLASS = re.compile(rf"^  class ({_ID}(?:,{_ID})*) ({_ID})$")
_LINKSTYLE = re.compile(r"^  linkStyle (\d+(?:,\d+)*) [a-z-]+:[^\s,]+(?:,[a-z-]+:[^,]+)*$")


def check_mermaid_structure(text: str) -> None:
    """Every line is one of the statements we emit, and the statements agree with each other."""
    lines = text.splitlines()
    assert lines[0] == "---" and lines[1].startswith("title: ") and lines[2] == "---"
    json.loads(lines[1][len("title: ") :])  # a YAML double-quoted scalar we write as JSON
    assert re.fullmatch(r"flowchart (TB|LR|BT|RL)", lines[3])
    defined: set[str] = set()
    used: set[str] = set()
    class_defs: set[str] = set()
    class_uses: set[str] = set()
    edges = 0
    links: list[int] = []
    depth = 0
    for line in lines[4:]:
        if m := _SUBGRAPH.match(line):
            defined.add(m.group(1))
            depth += 1
        elif line.strip() == "end":
            depth -= 1
            assert depth >= 0, line
        elif m := _NODE.match(line):
            assert m.group(1) not in defined, f"node defined twice: {line}"
            defined.add(m.group(1))
        elif m := _EDGE.match(line):
            used.update((m.group(1), m.group(3)))
            edges += 1
        elif m := _CLASSDEF.match(line):
            class_defs.add(m.group(1))
        elif m := _CLASS.match(line):
            used.update(m.group(1).split(","))
            class_uses.add(m.group(2))
        elif m := _LINKSTYLE.match(line):
            links += [int(i) for i in m.group(1).split(",")]
        else:
            raise AssertionError(f"not a statement we emit: {line!r}")
    assert depth == 0
    assert used <= defined, used - defined
    assert class_uses <= class_defs, class_uses - class_defs
    assert sorted(links) == list(range(edges)), "every link styled exactly once"
    reserved = {"end", "graph", "subgraph", "style", "class", "classDef", "click", "call", "default", "flowchart"}
    assert not (defined | class_defs) & reserved


@pytest.mark.parametrize("case", CASES, ids=[case_id(c) for c in CASES])
def test_mermaid_structure(case: tuple[Path, str]) -> None:
    f, name = case
    sagas = library_of(f)
    for collapse in (False, True):
        check_mermaid_structure(str(render(sagas, format="mermaid", saga=name, collapse=collapse, rankdir="LR")))
    check_mermaid_structure(str(render(order_saga(), failed_order_run(), format="mermaid")))


# ---- Mermaid's own parser --------------------------------------------------------------------


@pytest.fixture(scope="session")
def mermaid_parser() -> Iterator[Path]:
    """node + the mermaid package (installed on first use with `npm ci`); skipped only without node/npm."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node/npm are not installed: Mermaid output is checked only structurally")
    modules = MERMAID_TOOL / "node_modules" / "mermaid"
    with open(MERMAID_TOOL / "package.json", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # xdist workers install once
        if not modules.exists():
            proc = subprocess.run(
                [npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                cwd=MERMAID_TOOL,
                capture_output=True,
                text=True,
                timeout=300,
            )
            assert proc.returncode == 0, f"npm ci failed in {MERMAID_TOOL}:\n{proc.stderr[-2000:]}"
    yield MERMAID_TOOL / "parse.mjs"


def mermaid_parse(script: Path, files: list[Path]) -> dict[str, dict[str, object]]:
    proc = subprocess.run(["node", str(script), *map(str, files)], capture_output=True, text=True, timeout=120)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    assert len(results) == len(files), proc.stderr[-2000:]
    return {r["file"]: r for r in results}


def test_mermaid_output_passes_the_real_mermaid_parser(mermaid_parser: Path, tmp_path: Path) -> None:
    files: list[Path] = []
    for f, name in CASES:
        sagas = library_of(f)
        for collapse in (False, True):
            path = tmp_path / f"{f.stem}_{name}_{int(collapse)}.mmd"
            path.write_text(str(render(sagas, format="mermaid", saga=name, collapse=collapse)), encoding="utf-8")
            files.append(path)
    runs = tmp_path / "order_run.mmd"
    runs.write_text(str(render(order_saga(), failed_order_run(), format="mermaid")), encoding="utf-8")
    files.append(runs)
    broken = tmp_path / "broken.mmd"
    broken.write_text('flowchart TB\n  a["x"] --> b\n  linkStyle 7 stroke:#000\n', encoding="utf-8")
    files.append(broken)
    results = mermaid_parse(mermaid_parser, files)
    failures = {k: v["error"] for k, v in results.items() if not v["ok"] and k != str(broken)}
    assert not failures
    assert results[str(broken)]["ok"] is False  # the parser is real: it rejects a bad link index


# ---- docs ------------------------------------------------------------------------------------


def test_docs_gallery_shows_every_example_and_a_failed_run() -> None:
    page = (ROOT / "docs" / "diagrams.md").read_text(encoding="utf-8")
    images = re.findall(r"!\[[^\]]*\]\((img/[^)]+\.svg)\)", page)
    for f, name in CASES:
        if f.is_relative_to(EXAMPLES):
            assert f"### `{name}` ({f.relative_to(ROOT).as_posix()})" in page, f"{name} is not in docs/diagrams.md"
    assert "img/order-failed-run.svg" in images
    for rel in images:
        svg = (ROOT / "docs" / rel).read_bytes()
        assert ET.fromstring(svg).tag.endswith("svg"), rel
    failed = svg_texts((ROOT / "docs" / "img" / "order-failed-run.svg").read_bytes())
    assert "run order-failed-run: compensated (failed at ship)" in failed
