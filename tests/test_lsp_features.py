"""Every feature of `sagalang lsp`, through the protocol, on the examples and on invalid specs.

Hover, go to definition, references, rename, completion, formatting, document
symbols and quick fixes. Edits the server proposes are applied to the text and
the result is checked with the validator or the formatter, not just compared.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lsp_client import LspClient, LspError

from sagalang.fmt import format_source
from sagalang.lexer import KEYWORDS
from sagalang.lsp.keywords import REFERENCE
from sagalang.parser import parse
from sagalang.plugins import Registry
from sagalang.validate import validate_paths

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES_DIR = ROOT / "specs" / "examples"
EXAMPLES = sorted(EXAMPLES_DIR.rglob("*.saga"))
INVALID = sorted((ROOT / "specs" / "invalid").glob("*.saga"))
ORDER = EXAMPLES_DIR / "order.saga"


@pytest.fixture(scope="module")
def server() -> Iterator[LspClient]:
    client = LspClient(ROOT)
    client.initialize(ROOT, {"debounce_ms": 0})
    yield client
    assert client.close() == 0


class Doc:
    """An open document and its text, with helpers to find positions by text."""

    def __init__(self, server: LspClient, path: Path, text: str | None = None, version: int = 1) -> None:
        self.server = server
        self.path = path
        self.text = path.read_text(encoding="utf-8") if text is None else text
        start = server.mark()
        self.uri = server.open(path, self.text, version)
        self.diagnostics = server.diagnostics(self.uri, version, start)

    def pos(self, needle: str, nth: int = 0, offset: int = 0) -> tuple[int, int]:
        """0-based line and column of the ``nth`` occurrence of ``needle`` (plus ``offset`` characters)."""
        at = -1
        for _ in range(nth + 1):
            at = self.text.index(needle, at + 1)
        at += offset
        line = self.text.count("\n", 0, at)
        return line, at - (self.text.rfind("\n", 0, at) + 1)

    def at(self, method: str, needle: str, nth: int = 0, offset: int = 0, **extra: Any) -> Any:
        line, col = self.pos(needle, nth, offset)
        return self.server.at(method, self.uri, line, col, **extra)

    def hover(self, needle: str, nth: int = 0, offset: int = 0) -> str:
        result = self.at("textDocument/hover", needle, nth, offset)
        return "" if result is None else str(result["contents"]["value"])


def apply(text: str, edits: list[dict[str, Any]]) -> str:
    """The text after the protocol's TextEdits (applied from the last to the first)."""
    lines = text.split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)

    def offset(p: dict[str, int]) -> int:
        return starts[p["line"]] + p["character"] if p["line"] < len(starts) else len(text)

    for e in sorted(edits, key=lambda e: offset(e["range"]["start"]), reverse=True):
        text = text[: offset(e["range"]["start"])] + e["newText"] + text[offset(e["range"]["end"]) :]
    return text


def codes(path: Path, text: str) -> list[str]:
    """The codes `validate` reports for ``text`` saved as ``path``."""
    path.write_text(text, encoding="utf-8")
    _, diags = validate_paths([path], Registry.discover(cwd=ROOT))
    return sorted(d.code for d in diags)


# ---- hover ------------------------------------------------------------------------------


def test_hover_shows_each_step_class_and_what_its_failure_undoes(server: LspClient) -> None:
    doc = Doc(server, ORDER)
    charge = doc.hover("step charge", offset=6)
    assert "**step** `charge` · compensatable" in charge
    assert "do `payments.charge(order, amount, card)`" in charge and "undo `payments.refund(order)`" in charge
    assert "**If it fails for good:** undo charge (if its outcome is uncertain) → reserve" in charge
    ship = doc.hover("step ship", offset=6)
    assert "· pivot" in ship and "point of no return" in ship
    assert "undo label / upgrade (if it ran) → charge → reserve" in ship
    notify = doc.hover("step notify", offset=6)
    assert "· retriable" in notify and "forward recovery" in notify
    # A reference to a step shows the same as its definition.
    assert doc.hover("label.label_id") == doc.hover("step label", offset=6)
    travel = Doc(server, EXAMPLES_DIR / "travel.saga")
    assert "· readonly" in travel.hover("readonly step quote", offset=15)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_every_step_of_the_examples_has_a_class_on_hover(server: LspClient, path: Path) -> None:
    doc = Doc(server, path)
    module = parse(doc.text)
    for saga in module.sagas:
        for step in saga.steps():
            value = server.at("textDocument/hover", doc.uri, step.span.line - 1, step.span.col - 1)["contents"]["value"]
            assert re.search(r"^\*\*step\*\* `\w+` · (compensatable|pivot|retriable|readonly)$", value, re.M), value
            assert "**If it fails for good:**" in value


def test_hover_on_a_handler_shows_its_signature_docstring_and_file(server: LspClient) -> None:
    doc = Doc(server, ORDER)
    text = doc.hover("payments.charge(order")
    assert "def payments.charge(ctx: Context, order: str, amount: float, card: str)" in text
    assert "Charge ``amount`` to ``card``" in text
    assert "shop.py" in text
    step_object = Doc(server, EXAMPLES_DIR / "containerize.saga").hover("containerkit.dockerfile")
    assert "a step object" in step_object and "def containerkit.dockerfile(" in step_object


def test_hover_on_a_diagnostic_shows_its_catalogue_entry(server: LspClient) -> None:
    doc = Doc(server, ROOT / "specs" / "invalid" / "several_problems.saga")
    text = doc.hover("input.skus", offset=6)
    assert "**E302** — unknown input field (error)" in text
    assert "*Fix:*" in text


def test_hover_on_a_keyword_shows_its_reference(server: LspClient) -> None:
    doc = Doc(server, ORDER)
    assert "retry attempts N | forever" in doc.hover("retry attempts 5")
    assert "How undos run when the saga rolls back" in doc.hover("compensation {")
    assert "A step without side effects" not in doc.hover("pivot step")
    assert "point of no return" in doc.hover("pivot step")
    assert doc.hover("# sequential", offset=3) == ""  # nothing in a comment


def test_every_keyword_has_a_reference() -> None:
    words = set(KEYWORDS) | {"and", "or", "not", "true", "false", "null"}
    assert words - set(REFERENCE) == set()


# ---- navigation -------------------------------------------------------------------------


def test_go_to_definition(server: LspClient) -> None:
    doc = Doc(server, ORDER)
    [loc] = doc.at("textDocument/definition", "label.label_id")
    assert loc["uri"] == doc.uri and loc["range"]["start"] == dict(
        zip(("line", "character"), doc.pos("label {"), strict=True)
    )
    [field] = doc.at("textDocument/definition", "input.card", offset=6)
    assert field["range"]["start"] == dict(zip(("line", "character"), doc.pos("card: string"), strict=True))
    [code] = doc.at("textDocument/definition", "payments.charge(")
    assert code["uri"].endswith("/specs/examples/handlers/shop.py")
    source = (EXAMPLES_DIR / "handlers" / "shop.py").read_text(encoding="utf-8").split("\n")
    assert source[code["range"]["start"]["line"]].startswith(('@handler("payments.charge")', "def charge"))
    cont = Doc(server, EXAMPLES_DIR / "containerize.saga")
    [imported] = cont.at("textDocument/definition", '"lib/registry.saga"', offset=3)
    assert imported["uri"].endswith("/specs/examples/lib/registry.saga")
    [callee] = cont.at("textDocument/definition", "call publish", offset=6)
    lib = (EXAMPLES_DIR / "lib" / "registry.saga").read_text(encoding="utf-8").split("\n")
    assert callee["uri"] == imported["uri"]
    assert lib[callee["range"]["start"]["line"]].startswith("saga publish")


def test_find_references(server: LspClient) -> None:
    doc = Doc(server, ORDER)
    refs = doc.at("textDocument/references", "step upgrade", offset=6, context={"includeDeclaration": True})
    lines = sorted(r["range"]["start"]["line"] for r in refs)
    assert lines == [doc.pos("step upgrade")[0], doc.pos("upgrade.service")[0]]
    without = doc.at("textDocument/references", "upgrade.service", context={"includeDeclaration": False})
    assert [r["range"]["start"]["line"] for r in without] == [doc.pos("upgrade.service")[0]]
    fields = doc.at("textDocument/references", "order_id: string", context={"includeDeclaration": False})
    assert len(fields) == doc.text.count("input.order_id")


def test_rename_a_step_everywhere_in_its_saga(server: LspClient, tmp_path: Path) -> None:
    doc = Doc(server, ORDER)
    prepared = doc.at("textDocument/prepareRename", "label.label_id")
    assert prepared["start"] == dict(zip(("line", "character"), doc.pos("label.label_id"), strict=True))
    edit = doc.at("textDocument/rename", "step label", offset=6, newName="shipping_label")
    renamed = apply(doc.text, edit["changes"][doc.uri])
    assert "step shipping_label {" in renamed and "label: shipping_label.label_id" in renamed
    assert codes(tmp_path / "order.saga", renamed) == codes(tmp_path / "order.saga", doc.text)
    for bad in ("charge", "input", "2x"):
        with pytest.raises(LspError):
            doc.at("textDocument/rename", "step label", offset=6, newName=bad)
    assert doc.at("textDocument/prepareRename", "payments.charge(") is None


# ---- completion -------------------------------------------------------------------------


def complete(server: LspClient, text: str, marker: str = "|", path: Path | None = None) -> list[dict[str, Any]]:
    """The labels offered where ``marker`` stands in ``text`` (the marker removed)."""
    at = text.index(marker)
    body = text.replace(marker, "", 1)
    doc = Doc(server, path or EXAMPLES_DIR / "_completion.saga", body)
    line = body.count("\n", 0, at)
    col = at - (body.rfind("\n", 0, at) + 1)
    result = server.at("textDocument/completion", doc.uri, line, col)
    items: list[dict[str, Any]] = result["items"]
    return items


def labels(items: list[dict[str, Any]]) -> list[str]:
    return [i["label"] for i in items]


ORDER_TEXT = ORDER.read_text(encoding="utf-8")


def test_completion_offers_the_steps_readable_here(server: LspClient) -> None:
    text = ORDER_TEXT.replace("label: label.label_id", "label: |label.label_id")
    names = labels(complete(server, text))
    assert {"reserve", "charge", "label", "upgrade", "input", "saga", "default", "len"} <= set(names)
    assert "ship" not in names and "notify" not in names and "result" not in names
    undo = ORDER_TEXT.replace("undo inventory.release(sku: input.sku)", "undo inventory.release(sku: |input.sku)")
    in_undo = labels(complete(server, undo))
    assert "reserve" in in_undo and "result" in in_undo and "charge" not in in_undo
    output = ORDER_TEXT.replace("tracking: ship.tracking", "tracking: |ship.tracking")
    assert {"reserve", "ship", "notify"} <= set(labels(complete(server, output)))


def test_completion_of_input_fields_and_while_the_text_is_broken(server: LspClient) -> None:
    fields = labels(complete(server, ORDER_TEXT.replace("qty: input.qty", "qty: input.q|ty")))
    assert fields == ["order_id", "sku", "qty", "amount", "card", "country", "express", "email"]
    # The document stops parsing as the user types; completion still knows the saga.
    broken = ORDER_TEXT.replace("qty: input.qty)", "qty: input.|")
    items = complete(server, broken)
    assert "amount" in labels(items)
    assert items[0]["textEdit"]["range"]["start"] == items[0]["textEdit"]["range"]["end"]


def test_completion_of_handlers_with_parameter_snippets(server: LspClient) -> None:
    items = complete(server, ORDER_TEXT.replace("do payments.charge(", "do payments.ch|arge("))
    charge = next(i for i in items if i["label"] == "payments.charge")
    assert charge["insertTextFormat"] == 2
    assert charge["textEdit"]["newText"] == "payments.charge(order: ${1}, amount: ${2}, card: ${3})$0"
    assert "inventory.reserve" in labels(items)
    params = labels(complete(server, ORDER_TEXT.replace("refund(order: input.order_id)", "refund(|)")))
    assert params == ["order"]


def test_completion_of_keywords_and_duration_units(server: LspClient) -> None:
    retry_line = "        retry attempts 5 backoff 100ms x2 max 2s on"
    step = labels(complete(server, ORDER_TEXT.replace(retry_line, "        |\n" + retry_line)))
    assert {"do", "undo", "retry", "timeout", "description", "output schema"} <= set(step)
    saga = labels(complete(server, ORDER_TEXT.replace("    step reserve {", "    |\n    step reserve {")))
    assert {"step", "pivot step", "parallel", "compensation", "on failure"} <= set(saga)
    assert "do" not in saga
    retry = labels(complete(server, ORDER_TEXT.replace("retry attempts 5 backoff", "retry |attempts 5 backoff")))
    assert retry == ["attempts", "forever"]
    units = complete(server, ORDER_TEXT.replace("timeout 10s", "timeout 10|"))
    assert labels(units) == ["ms", "s", "m", "h", "d"]
    assert units[0]["textEdit"]["newText"] == "ms"
    header = labels(complete(server, ORDER_TEXT.replace("step upgrade when", "step upgrade | when")))
    assert header == ["for", "after", "when"]
    after = labels(complete(server, ORDER_TEXT.replace("pivot step ship {", "pivot step ship after |{")))
    assert "label" in after and "ship" not in after
    assert complete(server, ORDER_TEXT.replace('"Order ${', '"Ord|er ${')) == []


# ---- formatting, symbols ----------------------------------------------------------------


def test_formatting_is_fmt(server: LspClient) -> None:
    messy = "saga s{step a{do x.y(a:1)   undo x.z()}  # why\n}\n"
    doc = Doc(server, ROOT / "specs" / "_fmt.saga", messy)
    edits = server.request(
        "textDocument/formatting", {"textDocument": {"uri": doc.uri}, "options": {"tabSize": 4, "insertSpaces": True}}
    )
    assert apply(messy, edits) == format_source(messy)
    clean = Doc(server, ORDER)
    assert (
        server.request(
            "textDocument/formatting",
            {"textDocument": {"uri": clean.uri}, "options": {"tabSize": 4, "insertSpaces": True}},
        )
        == []
    )
    start = server.mark()
    broken = Doc(server, ROOT / "specs" / "_broken.saga", "saga s {\n")
    assert (
        server.request(
            "textDocument/formatting",
            {"textDocument": {"uri": broken.uri}, "options": {"tabSize": 4, "insertSpaces": True}},
        )
        is None
    )
    note = server.notification("window/showMessage", lambda p: "cannot format" in p["message"], start)
    assert "E013" in note["message"] or "not closed" in note["message"]


@pytest.mark.parametrize("path", EXAMPLES + INVALID, ids=lambda p: str(p.relative_to(ROOT)))
def test_formatting_every_spec(server: LspClient, path: Path) -> None:
    doc = Doc(server, path)
    edits = server.request(
        "textDocument/formatting", {"textDocument": {"uri": doc.uri}, "options": {"tabSize": 4, "insertSpaces": True}}
    )
    try:
        expected = format_source(doc.text)
    except Exception:
        assert edits is None
        return
    assert apply(doc.text, edits) == expected == doc.text  # the repository's specs are formatted


def _contains(outer: dict[str, Any], inner: dict[str, Any]) -> bool:
    def key(p: dict[str, int]) -> tuple[int, int]:
        return p["line"], p["character"]

    return key(outer["start"]) <= key(inner["start"]) and key(inner["end"]) <= key(outer["end"])


def _walk(symbols: list[dict[str, Any]], parent: dict[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    for s in symbols:
        assert _contains(s["range"], s["selectionRange"]), s["name"]
        if parent is not None:
            assert _contains(parent["range"], s["range"]), (parent["name"], s["name"])
        yield s
        yield from _walk(s.get("children") or [], s)


def test_document_symbols_outline_the_saga(server: LspClient) -> None:
    doc = Doc(server, ORDER)
    [saga] = server.request("textDocument/documentSymbol", {"textDocument": {"uri": doc.uri}})
    assert saga["name"] == "order_fulfillment" and saga["kind"] == 5
    children = {c["name"]: c for c in saga["children"]}
    assert list(children)[:3] == ["order_id", "sku", "qty"]
    assert children["charge"]["detail"] == "compensatable · payments.charge"
    assert children["ship"]["detail"] == "pivot · shipping.dispatch"
    assert [c["name"] for c in children["parallel"]["children"]] == ["label", "upgrade"]
    assert "output.tracking" in children
    ship = children["ship"]["range"]
    assert doc.text.split("\n")[ship["start"]["line"]].strip().startswith("pivot step ship")
    assert doc.text.split("\n")[ship["end"]["line"]].strip() == "}"
    list(_walk([saga]))


@pytest.mark.parametrize("path", EXAMPLES + INVALID, ids=lambda p: str(p.relative_to(ROOT)))
def test_document_symbols_of_every_spec(server: LspClient, path: Path) -> None:
    doc = Doc(server, path)
    symbols = server.request("textDocument/documentSymbol", {"textDocument": {"uri": doc.uri}})
    try:
        module = parse(doc.text)
    except Exception:
        assert symbols == []
        return
    assert [s["name"] for s in symbols] == [s.name for s in module.sagas]
    names = {s["name"] for s in _walk(symbols)}
    assert {step.name for saga in module.sagas for step in saga.steps()} <= names


# ---- quick fixes ------------------------------------------------------------------------


def fixes(server: LspClient, doc: Doc, code: str) -> list[dict[str, Any]]:
    d = next(d for d in doc.diagnostics if d["code"] == code)
    return server.request(  # type: ignore[no-any-return]
        "textDocument/codeAction",
        {"textDocument": {"uri": doc.uri}, "range": d["range"], "context": {"diagnostics": [d]}},
    )


@pytest.mark.parametrize(
    ("spec", "code", "title"),
    [
        ("unknown_after.saga", "E201", "Change to 'reserve'"),
        ("unknown_input_field.saga", "E302", None),
        ("unknown_name.saga", "E301", None),
        ("unknown_function.saga", "E308", None),
        ("conditional_without_default.saga", "E304", "Wrap in default(upgrade.level, null)"),
        ("implicit_pivot.saga", "I609", "Mark the step 'pivot'"),
    ],
)
def test_quick_fixes_remove_the_problem(
    server: LspClient, tmp_path: Path, spec: str, code: str, title: str | None
) -> None:
    doc = Doc(server, ROOT / "specs" / "invalid" / spec)
    actions = fixes(server, doc, code)
    hint = next(d for d in doc.diagnostics if d["code"] == code)["message"]
    if title is None and "did you mean" not in hint:
        assert actions == []
        return
    [action] = actions
    if title is not None:
        assert action["title"] == title
    assert action["kind"] == "quickfix" and action["diagnostics"][0]["code"] == code
    fixed = apply(doc.text, action["edit"]["changes"][doc.uri])
    before = codes(tmp_path / spec, doc.text)
    after = codes(tmp_path / spec, fixed)
    assert after.count(code) < before.count(code)
    assert "E010" not in after


@pytest.mark.parametrize("path", EXAMPLES + INVALID, ids=lambda p: str(p.relative_to(ROOT)))
def test_navigation_on_every_spec(server: LspClient, path: Path, tmp_path: Path) -> None:
    doc = Doc(server, path)
    try:
        module = parse(doc.text)
    except Exception:
        assert doc.at("textDocument/definition", doc.text.strip()[:1]) == []
        return
    for saga in module.sagas:
        steps = saga.steps()
        for step in steps:
            line, col = step.span.line - 1, step.span.col - 1
            hover = server.at("textDocument/hover", doc.uri, line, col)
            assert hover["contents"]["value"].startswith(f"**step** `{step.name}`")
            for ref in step.after or ():
                found = server.at("textDocument/definition", doc.uri, ref.span.line - 1, ref.span.col - 1)
                target = next((s for s in steps if s.name == ref.name), None)
                assert [f["range"]["start"]["line"] for f in found] == ([target.span.line - 1] if target else [])
        if not steps or len({s.name for s in steps}) != len(steps):
            continue
        step = steps[0]
        refs = server.at(
            "textDocument/references",
            doc.uri,
            step.span.line - 1,
            step.span.col - 1,
            context={"includeDeclaration": True},
        )
        assert {"line": step.span.line - 1, "character": step.span.col - 1} in [r["range"]["start"] for r in refs]
        edit = server.at("textDocument/rename", doc.uri, step.span.line - 1, step.span.col - 1, newName="renamed_step")
        renamed = apply(doc.text, edit["changes"][doc.uri])
        assert len(edit["changes"][doc.uri]) == len(refs)
        assert renamed.count("renamed_step") == len(refs)
        parse(renamed)


def test_completion_in_invalid_specs(server: LspClient) -> None:
    text = (ROOT / "specs" / "invalid" / "unknown_after.saga").read_text(encoding="utf-8")
    items = complete(
        server, text.replace("after reserv {", "after reserv| {"), path=ROOT / "specs" / "invalid" / "_c.saga"
    )
    assert labels(items) == ["reserve"]
    cycle = (ROOT / "specs" / "invalid" / "dependency_cycle.saga").read_text(encoding="utf-8")
    names = labels(
        complete(
            server, cycle.replace("do app.act()", "do app.act(x: |)", 1), path=ROOT / "specs" / "invalid" / "_c.saga"
        )
    )
    assert "input" in names  # the graph has a cycle: the steps written before still count
