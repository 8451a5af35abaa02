"""The example specs: they validate, their inputs fit, and together they use every construct.

Coverage is checked twice, both derived rather than listed by hand: every rule,
alias and terminal of ``grammar/saga.lark`` occurs in the examples' parse trees,
and every IR class, every optional field (set and unset), every literal choice
(operators, kinds, orders ...) and every scalar type occurs in their IR.
"""

from __future__ import annotations

import dataclasses
import json
import re
import types
import typing
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from lark import Lark, Token

from sagalang import ir
from sagalang.cli import main
from sagalang.parser import _SagaLexer, grammar_path
from sagalang.plugins import Registry
from sagalang.project import load_project

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "specs" / "examples"
NAMES = ["order", "travel", "transfer", "containerize"]
SPEC_FILES = sorted(EXAMPLES.rglob("*.saga"))


def _modules() -> list[ir.Module]:
    project = load_project([EXAMPLES])
    assert not project.diagnostics
    return [sf.module for sf in project.modules() if sf.module is not None]


# ---- the examples are valid ---------------------------------------------------------


def test_the_four_examples_exist_with_inputs() -> None:
    for name in NAMES:
        assert (EXAMPLES / f"{name}.saga").is_file()
        json.loads((EXAMPLES / f"{name}.input.json").read_text(encoding="utf-8"))
    assert (EXAMPLES / "lib" / "registry.saga").is_file()


def test_validate_reports_no_errors_or_warnings(runner: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # [tool.sagalang] plugins of the repo's pyproject.toml register the handlers
    result = runner.invoke(main, ["validate", "--format", "json", "specs/examples"])
    report = json.loads(result.output)
    found = [(d["file"], d["line"], d["code"]) for d in report["diagnostics"] if d["severity"] != "info"]
    assert found == []
    assert result.exit_code == 0


def _declared_input(saga: ir.Saga, folder: Path) -> dict[str, Any]:
    if isinstance(saga.input, ir.InputSchema):
        schema: dict[str, Any] = json.loads((folder / saga.input.path).read_text(encoding="utf-8"))
        return schema
    assert isinstance(saga.input, ir.InputFields)
    return {
        "required": [f.name for f in saga.input.fields if f.default is None],
        "properties": {f.name: {} for f in saga.input.fields},
        "additionalProperties": False,
    }


@pytest.mark.parametrize("name", NAMES)
def test_example_input_fits_the_declared_input(name: str) -> None:
    module = load_project([EXAMPLES / f"{name}.saga"]).files[(EXAMPLES / f"{name}.saga").resolve()].module
    assert module is not None
    data = json.loads((EXAMPLES / f"{name}.input.json").read_text(encoding="utf-8"))
    schema = _declared_input(module.sagas[0], EXAMPLES)
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(data, schema, cls=jsonschema.Draft202012Validator)


def test_schema_files_are_valid_json_schemas() -> None:
    for path in [EXAMPLES / "containerize.schema.json", *sorted((EXAMPLES / "schemas").glob("*.json"))]:
        jsonschema.Draft202012Validator.check_schema(json.loads(path.read_text(encoding="utf-8")))


def test_every_handler_the_examples_call_is_registered_with_matching_parameters() -> None:
    registry = Registry()
    assert registry.add_pyproject(ROOT) == ROOT / "pyproject.toml"
    used: list[tuple[str, tuple[str, ...]]] = []
    for module in _modules():
        for saga in module.sagas:
            if saga.on_failure and saga.on_failure.retry and saga.on_failure.retry.analyzer:
                used.append((saga.on_failure.retry.analyzer, ("error", "input", "attempt")))
            for step in saga.steps():
                for inv in (step.do, step.undo, step.use):
                    if inv is not None:
                        used.append((inv.handler, tuple(a.name for a in inv.args)))
    assert len(used) > 30
    for name, args in used:
        h = registry.get(name)
        assert h is not None, f"no handler {name}"
        assert h.info.params is not None
        params = {p.name for p in h.info.params}
        required = {p.name for p in h.info.params if p.required}
        assert set(args) <= params, (name, set(args) - params)
        assert required <= set(args), (name, required - set(args))


# ---- grammar coverage: every rule, alias and terminal ------------------------------


def _tree_parser() -> Lark:
    # The same grammar and lexer as sagalang.parser, but building a parse tree that keeps every token.
    return Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        lexer=_SagaLexer,
        start="start",
        maybe_placeholders=False,
        keep_all_tokens=True,
    )


def test_examples_use_every_rule_and_terminal_of_the_grammar() -> None:
    lark = _tree_parser()
    expected_rules = {
        str(r.alias or r.origin.name)
        for r in lark.rules
        if not str(r.origin.name).startswith("_") and not (r.options.expand1 and not r.alias)
    }
    expected_terminals = {t.name for t in lark.terminals} - set(lark.ignore_tokens)
    seen_rules: set[str] = set()
    seen_terminals: set[str] = set()
    for path in SPEC_FILES:
        tree = lark.parse(path.read_text(encoding="utf-8"))
        for sub in tree.iter_subtrees():
            seen_rules.add(str(sub.data))
            seen_terminals.update(c.type for c in sub.children if isinstance(c, Token))
    assert len(expected_rules) > 60 and len(expected_terminals) > 60
    assert expected_rules - seen_rules == set()
    assert expected_terminals - seen_terminals == set()


def test_examples_use_every_lexical_form() -> None:
    # The examples are in fmt's canonical layout, so the spellings fmt rewrites (fractional
    # durations, \u escapes of printable characters, needless escapes) are tests/test_parser.py's.
    texts = [p.read_text(encoding="utf-8") for p in SPEC_FILES]
    joined = "\n".join(texts)
    for unit in ("ms", "s", "m", "h", "d"):
        assert re.search(rf"\b\d+{unit}\b", joined), unit
    assert re.search(r"x\d+\.\d+", joined), "fractional backoff multiplier"
    assert re.search(r"'[^'\n]*'", joined), "single-quoted string"
    assert "\\n" in joined, "escapes"
    assert re.search(r"^\s*#", joined, re.M) and re.search(r"\S\s+#", joined), "whole-line and trailing comments"
    assert re.search(r'\{\s*"\w+":', joined), "map with a quoted key"
    assert any(len(m.sagas) > 1 for m in _modules()), "several sagas in one file"


# ---- IR coverage: classes, optional fields, literal choices, scalar types -------------


def _variants(tp: Any, expr_union: frozenset[type]) -> list[tuple[str, Callable[[Any], bool]]]:
    """The distinct shapes a value of type ``tp`` can take, each with a test."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return [(repr(v), lambda x, v=v: x == v and type(x) is type(v)) for v in typing.get_args(tp)]
    if tp is bool:
        return [("True", lambda x: x is True), ("False", lambda x: x is False)]
    if origin in (typing.Union, types.UnionType):
        members = typing.get_args(tp)
        out: list[tuple[str, Callable[[Any], bool]]] = []
        if frozenset(m for m in members if m is not type(None)) == expr_union:
            return [("expr", lambda x: isinstance(x, tuple(expr_union)))]
        for m in members:
            if m is type(None):
                out.append(("None", lambda x: x is None))
            elif typing.get_origin(m) is typing.Literal:
                out.extend(_variants(m, expr_union))
            elif frozenset(typing.get_args(m)) == expr_union:
                out.append(("expr", lambda x: isinstance(x, tuple(expr_union))))
            elif m is int:
                out.append(("int", lambda x: isinstance(x, int) and not isinstance(x, bool)))
            elif isinstance(m, type):
                out.append((m.__name__, lambda x, m=m: isinstance(x, m)))
            else:
                out.append((repr(m), lambda x: x is not None))
        return out
    return []


def _ir_classes() -> list[type]:
    return [
        obj
        for name in ir.__all__
        if isinstance(obj := getattr(ir, name), type) and dataclasses.is_dataclass(obj) and obj is not ir.Duplicate
    ]


def _walk(node: Any) -> Iterator[Any]:
    if dataclasses.is_dataclass(node) and not isinstance(node, type):
        yield node
        for f in dataclasses.fields(node):
            if f.name not in ("span", "duplicates"):
                yield from _walk(getattr(node, f.name))
    elif isinstance(node, tuple):
        for item in node:
            yield from _walk(item)


def _ir_missing(modules: list[ir.Module]) -> list[str]:
    """IR classes, field shapes and literal choices that none of ``modules`` uses."""
    expr_union = frozenset(typing.get_args(ir.Expr))
    nodes = [n for m in modules for n in _walk(m)]
    missing: list[str] = []
    for cls in _ir_classes():
        instances = [n for n in nodes if type(n) is cls]
        if not instances:
            missing.append(cls.__name__)
            continue
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in ("span", "duplicates", "file"):
                continue
            tp = hints[f.name]
            values = [getattr(n, f.name) for n in instances]
            if typing.get_origin(tp) is tuple or (
                typing.get_origin(tp) in (typing.Union, types.UnionType)
                and any(typing.get_origin(a) is tuple for a in typing.get_args(tp))
            ):
                if not any(isinstance(v, tuple) and v for v in values):
                    missing.append(f"{cls.__name__}.{f.name}: non-empty")
                elem_tp = next(
                    typing.get_args(a)[0] for a in (tp, *typing.get_args(tp)) if typing.get_origin(a) is tuple
                )
                elements = [e for v in values if isinstance(v, tuple) for e in v]
                for label, test in _variants(elem_tp, expr_union):
                    if not any(test(e) for e in elements):
                        missing.append(f"{cls.__name__}.{f.name}[]: {label}")
                continue
            for label, test in _variants(tp, expr_union):
                # None as a default means "clause absent", not a construct; without a default
                # it is one (``retry forever`` is attempts=None, ``null`` is Literal(None)).
                if label == "None" and f.default is not dataclasses.MISSING:
                    continue
                if not any(test(v) for v in values):
                    missing.append(f"{cls.__name__}.{f.name}: {label}")
    return missing


def test_examples_use_every_ir_node_field_choice_and_operator() -> None:
    assert _ir_missing(_modules()) == []


def test_ir_coverage_check_notices_missing_constructs() -> None:
    # The checker must not pass vacuously: order.saga alone lacks most of the language.
    order = next(m for m in _modules() if m.sagas[0].name == "order_fulfillment")
    missing = _ir_missing([order])
    for expected in (
        "Step.kind: 'readonly'",
        "Step.use: Invocation",
        "SagaCall",
        "ForEach",
        "Step.kind: 'retriable'",
        "Import",
        "Compare",
    ):
        assert any(m.startswith(expected) for m in missing), expected


# ---- the example handlers: real, data-driven, idempotent --------------------------------


@pytest.fixture
def services(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Registry, Any]:
    """The registry of the example handlers and their effects module, on a fresh database."""
    monkeypatch.setenv("SAGALANG_EXAMPLES_DB", str(tmp_path / "examples.db"))
    registry = Registry()
    registry.add_pyproject(ROOT)
    import sys

    return registry, sys.modules["sagalang_examples_effects"]


def _call(registry: Registry, name: str, ctx: Any, **args: Any) -> Any:
    h = registry.resolve(name)
    if h.func is not None:
        result = h.func(ctx, **args) if h.wants_context else h.func(**args)
    elif ctx.compensating:
        result = h.step.compensate(ctx, **args)
    else:
        result = h.step.execute(ctx, **args)
    if hasattr(result, "__await__"):
        import asyncio

        async def wait() -> Any:
            return await result

        result = asyncio.run(wait())
    return result


def _ctx(step: str, saga_id: str = "s1", item: int | None = None, undo: bool = False) -> Any:
    from sagalang.context import Context

    key = f"{saga_id}/{step}" if item is None else f"{saga_id}/{step}/{item}"
    return Context(saga_id, "example", step, idempotency_key=key, item=item, compensating=undo)


def _failure(fn: Callable[[], Any]) -> Any:
    from sagalang.context import Failure

    with pytest.raises(Failure) as info:
        fn()
    return info.value


def test_a_repeated_call_applies_its_effect_once_and_undo_is_tolerant(services: tuple[Registry, Any]) -> None:
    reg, fx = services
    fx.seed_stock("BOOK", 5)
    first = _call(reg, "inventory.reserve", _ctx("reserve"), sku="BOOK", qty=2)
    again = _call(reg, "inventory.reserve", _ctx("reserve"), sku="BOOK", qty=2)
    assert first == again and first["left"] == 3
    [row] = fx.effects()
    assert (row["status"], row["calls"], row["kind"]) == ("applied", 2, "inventory.reserve")
    # a second saga takes more; then the first one's reservation is released twice
    _call(reg, "inventory.reserve", _ctx("reserve", "s2"), sku="BOOK", qty=3)
    assert _failure(lambda: _call(reg, "inventory.reserve", _ctx("reserve", "s3"), sku="BOOK", qty=1)).name == (
        "inventory.OutOfStock"
    )
    assert _call(reg, "inventory.release", _ctx("reserve", undo=True), sku="BOOK") == {"undone": True}
    assert _call(reg, "inventory.release", _ctx("reserve", undo=True), sku="BOOK")["reason"] == "already undone"
    assert _call(reg, "inventory.reserve", _ctx("reserve", "s3"), sku="BOOK", qty=2)["left"] == 0
    rows = {r["saga_id"]: r for r in fx.effects()}
    assert (rows["s1"]["status"], rows["s1"]["undone"], rows["s1"]["undo_calls"]) == ("undone", 1, 2)
    assert fx.violations(["s2", "s3"]) == []
    assert fx.violations(["s1"]) == [
        "s1/reserve: inventory.reserve undone although its saga completed",
        "s2/reserve: inventory.reserve applied by a saga that did not complete, never undone",
        "s3/reserve: inventory.reserve applied by a saga that did not complete, never undone",
    ]


def test_an_undo_before_its_forward_call_leaves_a_tombstone(
    services: tuple[Registry, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    reg, fx = services
    clock = iter([100.0, 90.0, 200.0, 201.0])
    monkeypatch.setattr(fx, "_now", lambda: next(clock))
    # t=100: the undo arrives first and finds nothing
    assert _call(reg, "payments.refund", _ctx("charge", undo=True), order="A")["reason"] == "nothing to undo"
    # a forward call that started at t=90, before the undo, lands late: refused
    late = _failure(lambda: _call(reg, "payments.charge", _ctx("charge"), order="A", amount=5.0, card="4242"))
    assert (late.name, late.retryable) == ("examples.AlreadyCompensated", False)
    [row] = fx.effects()
    assert (row["status"], row["calls"], row["undo_calls"]) == ("tombstone", 1, 1)
    assert fx.violations([]) == []
    # a call that starts after the undo (t=200) belongs to a new attempt of the saga: it applies
    again = _call(reg, "payments.charge", _ctx("charge"), order="A", amount=5.0, card="4242")
    assert again["amount"] == 5.0
    [row] = fx.effects()
    assert (row["status"], row["generation"], row["calls"]) == ("applied", 1, 2)


def test_a_whole_saga_retry_applies_an_undone_effect_again_as_a_new_generation(
    services: tuple[Registry, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    reg, fx = services
    fx.seed_stock("PEN", 10)
    ticks = iter(float(t) for t in range(1, 100))
    monkeypatch.setattr(fx, "_now", lambda: next(ticks))
    _call(reg, "inventory.reserve", _ctx("reserve"), sku="PEN", qty=4)
    _call(reg, "inventory.release", _ctx("reserve", undo=True), sku="PEN")
    # attempt 2 of the saga: same run id, same key
    second = _call(reg, "inventory.reserve", _ctx("reserve"), sku="PEN", qty=4)
    assert second["left"] == 6
    assert [(e["generation"], e["status"]) for e in fx.effects()] == [(1, "undone"), (2, "applied")]
    assert fx.violations(["s1"]) == []
    assert fx.violations([]) == ["s1/reserve: inventory.reserve applied by a saga that did not complete, never undone"]
    _call(reg, "inventory.release", _ctx("reserve", undo=True), sku="PEN")
    assert [(e["generation"], e["status"], e["undo_calls"]) for e in fx.effects()] == [
        (1, "undone", 1),
        (2, "undone", 1),
    ]
    assert fx.violations([]) == []
    assert _call(reg, "inventory.reserve", _ctx("other"), sku="PEN", qty=10)["left"] == 0


def test_payment_failures_come_from_the_card(services: tuple[Registry, Any]) -> None:
    reg, fx = services
    declined = _failure(
        lambda: _call(reg, "payments.charge", _ctx("c1"), order="A", amount=5, card="4000-0000-0000-0002")
    )
    assert (declined.name, declined.retryable) == ("payments.Declined", False)
    fx.seed_card("5555-1111")
    assert _failure(lambda: _call(reg, "payments.charge", _ctx("c2"), order="A", amount=5, card="5555-1111")).name == (
        "payments.Declined"
    )
    charged = _call(reg, "payments.charge", _ctx("c3"), order="A", amount=5, card="4242-4242-4242-4242")
    assert charged["amount"] == 5
    # the card number is a secret: only its last four digits are stored
    assert [e["args"]["card"] for e in fx.effects()] == ["4242"]


def test_the_pivot_and_the_post_pivot_steps_fail_on_their_data(services: tuple[Registry, Any]) -> None:
    reg, _ = services
    ok = _call(reg, "shipping.dispatch", _ctx("ship"), order="A", label="L-1", country="NL")
    assert ok["tracking"].startswith("TRK-")
    assert _failure(
        lambda: _call(reg, "shipping.dispatch", _ctx("ship", "s2"), order="A", label="L", country="AQ")
    ).name == ("shipping.Undeliverable")
    bad = _failure(lambda: _call(reg, "email.send", _ctx("notify"), to="nobody", subject="s", body="b"))
    assert (bad.name, bad.retryable) == ("email.InvalidAddress", False)


def test_injected_faults_fail_the_next_calls_then_clear(services: tuple[Registry, Any]) -> None:
    reg, fx = services
    fx.inject_fault("bank.credit", 2, "bank.Unavailable")
    for _ in range(2):
        err = _failure(lambda: _call(reg, "bank.credit", _ctx("credit"), account="NL-bob", amount=10.0, memo="m"))
        assert (err.name, err.retryable) == ("bank.Unavailable", None)
    assert _call(reg, "bank.credit", _ctx("credit"), account="NL-bob", amount=10.0, memo="m")["balance"] == 1010.0
    assert [e["calls"] for e in fx.effects()] == [1]


def test_bank_balances_move_once_and_back(services: tuple[Registry, Any]) -> None:
    reg, fx = services
    fx.seed_account("NL-alice", 300.0, overdraft=50.0)
    fx.seed_account("NL-carol", 0.0, closed=True)
    assert _call(reg, "bank.balance", _ctx("check"), account="NL-alice") == {
        "account": "NL-alice",
        "balance": 300.0,
        "overdraft": 50.0,
    }
    short = _failure(
        lambda: _call(reg, "bank.debit", _ctx("debit"), account="NL-alice", amount=400.0, floor=-50.0, memo="m")
    )
    assert short.name == "bank.InsufficientFunds"
    assert (
        _call(reg, "bank.debit", _ctx("debit", "s2"), account="NL-alice", amount=340.0, floor=-50.0, memo="m")[
            "balance"
        ]
        == -40.0
    )
    _call(reg, "bank.debit", _ctx("debit", "s2"), account="NL-alice", amount=340.0, floor=-50.0, memo="m")
    assert _call(reg, "bank.balance", _ctx("check"), account="NL-alice")["balance"] == -40.0
    _call(reg, "bank.reverse_debit", _ctx("debit", "s2", undo=True), account="NL-alice")
    assert _call(reg, "bank.balance", _ctx("check"), account="NL-alice")["balance"] == 300.0
    closed = _failure(lambda: _call(reg, "bank.credit", _ctx("credit"), account="NL-carol", amount=1.0, memo="m"))
    assert closed.name == "bank.AccountClosed"


def test_travel_capacity_runs_out_and_comes_back(services: tuple[Registry, Any]) -> None:
    reg, fx = services
    fx.seed_capacity("seats:Lisbon", 2)
    for i, who in enumerate(["Ada", "Grace"]):
        seat = _call(reg, "airline.book_seat", _ctx("seats", item=i), trip="T", passenger=who, destination="Lisbon")
        assert seat["seat"].startswith("A-")
    sold_out = _failure(
        lambda: _call(
            reg, "airline.book_seat", _ctx("seats", item=2), trip="T", passenger="Edsger", destination="Lisbon"
        )
    )
    assert sold_out.name == "airline.SoldOut"
    _call(reg, "airline.cancel_seat", _ctx("seats", item=0, undo=True), passenger="Ada", seat=None)
    _call(reg, "airline.book_seat", _ctx("seats", item=2), trip="T", passenger="Edsger", destination="Lisbon")
    quote = _call(reg, "pricing.quote", _ctx("quote"), destination="Venice", nights=2, travellers=3)
    assert quote["car_available"] is False and quote["discount"] > 0
    car = _call(reg, "cars.rent", _ctx("car"), trip="T", city="Lisbon", days=3)
    assert car["price"] == 135.0
    assert _call(reg, "cars.return_car", _ctx("car", undo=True), trip="T") == {"undone": True}  # an async handler


def test_containerize_failures_and_the_analyzer(services: tuple[Registry, Any]) -> None:
    reg, fx = services
    analysis = _call(reg, "repo.analyze", _ctx("analyze"), url="https://git.example.com/acme/shop-api-python.git")
    schema = json.loads((EXAMPLES / "schemas" / "analysis.schema.json").read_text(encoding="utf-8"))
    jsonschema.validate(analysis, schema)
    dockerfile = reg.resolve("containerkit.dockerfile")
    assert dockerfile.info.kind == "step" and dockerfile.step.can_compensate()
    made = _call(
        reg,
        "containerkit.dockerfile",
        _ctx("dockerfile"),
        workdir=".",
        language="python",
        base_image="python:3.6-alpine",
        port=8000,
    )
    assert made["text"].startswith("FROM python:3.6-alpine")
    broken = _failure(
        lambda: _call(
            reg,
            "docker.build",
            _ctx("build"),
            context=".",
            dockerfile=made["path"],
            base_image="python:3.6-alpine",
            tag="a:1",
        )
    )
    assert broken.name == "docker.BuildError"
    error = {"type": broken.name, "message": broken.message, "names": [broken.name, "BuildError"]}
    given = {"repo": "https://git.example.com/acme/shop-api-python.git", "base_image": "python:3.6-alpine"}
    fixed = _call(reg, "containerkit.analyze_failure", _ctx("analyze"), error=error, input=given, attempt=1)
    assert fixed == {"base_image": "python:3.12-slim"}
    # the fixed image builds; with the recommended image already in place the analyzer gives up
    image = _call(
        reg,
        "docker.build",
        _ctx("build", "s2"),
        context=".",
        dockerfile="Dockerfile",
        base_image="python:3.12-slim",
        tag="a:1",
    )
    assert (
        _call(reg, "containerkit.analyze_failure", _ctx("analyze"), error=error, input={**given, **fixed}, attempt=2)
        is None
    )
    unhealthy = {"type": "k8s.Unhealthy", "message": "503", "names": ["k8s.Unhealthy", "Unhealthy"]}
    assert _call(reg, "containerkit.analyze_failure", _ctx("analyze"), error=unhealthy, input=given, attempt=1) is None
    assert _call(reg, "security.scan", _ctx("scan"), image=image["image_id"], max_severity="low")["highest"] == "none"
    old = _call(reg, "docker.build", _ctx("build", "s3"), context=".", dockerfile="D", base_image="node:14", tag="b:1")
    assert _failure(
        lambda: _call(reg, "security.scan", _ctx("scan"), image=old["image_id"], max_severity="high")
    ).name == ("security.Vulnerable")
    sick = _failure(
        lambda: _call(
            reg, "k8s.health", _ctx("verify"), namespace="d", app="a", path="/health", simulate_unhealthy=True
        )
    )
    assert sick.name == "k8s.Unhealthy"
    assert _call(
        reg,
        "containerkit.dockerfile",
        _ctx("dockerfile", undo=True),
        workdir=".",
        language="python",
        base_image="x",
        port=1,
    ) == {"undone": True}
    assert (
        _failure(lambda: _call(reg, "registry.push", _ctx("upload"), reference="r", token="")).name
        == "registry.Unauthorized"
    )
    _call(reg, "registry.push", _ctx("upload"), reference="localhost:5000/a:1", token="t")
    assert _call(reg, "registry.inspect", _ctx("lookup"), reference="localhost:5000/a:1")["digest"].startswith(
        "sha256:"
    )
    assert "token" not in fx.effects()[-1]["args"]


def test_the_database_location_comes_from_the_environment(services: tuple[Registry, Any], tmp_path: Path) -> None:
    reg, fx = services
    _call(reg, "ledger.record", _ctx("ledger"), entry={"amount": 1})
    assert (tmp_path / "examples.db").is_file()
    assert len(fx.effects(tmp_path / "examples.db")) == 1
    assert fx.effects(tmp_path / "other.db") == []


# ---- the examples run end to end with their handlers ------------------------------------


def _run(runner: Any, name: str, run_id: str, *sets: str) -> tuple[int, dict[str, Any]]:
    args = ["run", f"specs/examples/{name}.saga", "--input", f"specs/examples/{name}.input.json"]
    args += ["--store", "memory:", "--id", run_id, "--json", "--no-progress"]
    for s in sets:
        args += ["--set", s]
    result = runner.invoke(main, args)
    return result.exit_code, json.loads(result.stdout)


def _statuses(fx: Any, run_id: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for e in fx.effects(saga_id=run_id):
        out.setdefault(e["step"], []).append(e["status"])
    return out


@pytest.fixture
def in_repo(services: tuple[Registry, Any], monkeypatch: pytest.MonkeyPatch) -> Any:
    """The effects module, with the working directory at the repo root (its pyproject lists the handlers)."""
    monkeypatch.chdir(ROOT)
    return services[1]


@pytest.mark.parametrize("name", ["order", "travel", "transfer"])
def test_each_example_completes_with_its_input(name: str, runner: Any, in_repo: Any) -> None:
    code, result = _run(runner, name, f"ok-{name}")
    assert (code, result["status"]) == (0, "completed"), result
    assert in_repo.violations([f"ok-{name}"]) == []
    statuses = _statuses(in_repo, f"ok-{name}")
    assert statuses and all(set(s) == {"applied"} for s in statuses.values()), statuses


def test_containerize_fails_rolls_back_analyzes_and_succeeds(runner: Any, in_repo: Any) -> None:
    code, result = _run(runner, "containerize", "ck")
    assert (code, result["status"]) == (0, "completed"), result
    assert result["output"]["base_image"] == "python:3.12-slim"  # the analyzer's fix
    statuses = _statuses(in_repo, "ck")
    assert statuses["dockerfile"] == ["undone", "applied"]  # attempt 1 rolled back, attempt 2 kept
    assert statuses["push/upload"] == ["applied"] and statuses["deploy"] == ["applied"]
    assert in_repo.violations(["ck"]) == []


def test_containerize_gives_up_when_the_analyzer_cannot_help(runner: Any, in_repo: Any) -> None:
    code, result = _run(runner, "containerize", "sick", "base_image=python:3.12-slim", "simulate_unhealthy=true")
    assert (code, result["status"], result["failed_step"]) == (1, "compensated", "verify")
    statuses = _statuses(in_repo, "sick")
    assert set(statuses) == {"dockerfile", "build", "push/tag", "push/upload", "manifests", "deploy"}
    assert all(s == ["undone"] for s in statuses.values()), statuses
    assert in_repo.violations([]) == []


def test_order_out_of_stock_releases_nothing_and_charges_nothing(runner: Any, in_repo: Any) -> None:
    in_repo.seed_stock("BOOK-42", 1)
    code, result = _run(runner, "order", "short")
    assert (code, result["status"], result["failed_step"]) == (1, "compensated", "reserve")
    assert result["error"]["type"] == "inventory.OutOfStock"
    assert [e for e in in_repo.effects() if e["status"] != "tombstone"] == []


def test_order_undeliverable_rolls_back_in_reverse_order(runner: Any, in_repo: Any) -> None:
    code, result = _run(runner, "order", "aq", "country=AQ")
    assert (code, result["status"], result["failed_step"]) == (1, "compensated", "ship")
    assert _statuses(in_repo, "aq") == {
        "reserve": ["undone"],
        "charge": ["undone"],
        "label": ["undone"],
        "upgrade": ["undone"],
    }
    undone = sorted((e for e in in_repo.effects() if e["status"] == "undone"), key=lambda e: e["step"])
    assert len(undone) == 4 and in_repo.violations([]) == []
    # as the plan says: label and upgrade (latest completed first), then charge, then reserve
    order = [e["step"] for e in sorted(in_repo.effects(), key=lambda e: _undone_at(in_repo, e["key"]))]
    assert sorted(order[:2]) == ["label", "upgrade"] and order[2:] == ["charge", "reserve"]


def _undone_at(fx: Any, key: str) -> float:
    conn = fx.connect()
    try:
        value: float = conn.execute("SELECT undone_at FROM effects WHERE key = ?", (key,)).fetchone()[0]
    finally:
        conn.close()
    return value


def test_order_with_a_bad_address_after_the_pivot_is_stuck(runner: Any, in_repo: Any) -> None:
    code, result = _run(runner, "order", "stuck", "email=nobody")
    assert (code, result["status"]) == (4, "stuck")
    assert _statuses(in_repo, "stuck") == {
        "reserve": ["applied"],
        "charge": ["applied"],
        "label": ["applied"],
        "upgrade": ["applied"],
        "ship": ["applied"],
    }


def test_travel_declined_card_cancels_every_booking(runner: Any, in_repo: Any) -> None:
    in_repo.seed_capacity("rooms:Lisbon", 5)
    code, result = _run(runner, "travel", "declined", "card=4000-0000-0000-0002")
    assert (code, result["status"], result["failed_step"]) == (1, "compensated", "payment")
    statuses = _statuses(in_repo, "declined")
    assert statuses == {"seats": ["undone"] * 3, "hotel": ["undone"], "car": ["undone"]}
    assert in_repo.violations([]) == []
    # every room is free again
    assert _run(runner, "travel", "again", "travellers=[" + ",".join(['{"name": "x"}'] * 9) + "]")[0] == 0


def test_transfer_insufficient_funds_and_closed_target(runner: Any, in_repo: Any) -> None:
    in_repo.seed_account("NL-alice", 100.0)
    code, result = _run(runner, "transfer", "poor")
    assert (code, result["failed_step"], result["error"]["type"]) == (1, "debit", "bank.InsufficientFunds")
    in_repo.seed_account("NL-alice", 300.0)
    in_repo.seed_account("NL-bob", 0.0, closed=True)
    code, result = _run(runner, "transfer", "closed")
    assert (code, result["failed_step"], result["error"]["type"]) == (1, "credit", "bank.AccountClosed")
    assert _statuses(in_repo, "closed") == {"debit": ["undone"]}
    conn = in_repo.connect()
    try:
        balance = conn.execute("SELECT balance FROM accounts WHERE account = 'NL-alice'").fetchone()[0]
    finally:
        conn.close()
    assert balance == 300.0


def test_readme_shows_the_order_example_verbatim() -> None:
    import re

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    block = re.search(r"```saga\n(.*?)```", readme, re.S)
    assert block is not None
    assert block.group(1) == (root / "specs" / "examples" / "order.saga").read_text(encoding="utf-8")
