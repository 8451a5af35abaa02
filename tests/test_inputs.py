"""``sagalang.inputs``: reading an input file and applying ``--set``, by the fields' declared types."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest

from sagalang.errors import SagaInputError
from sagalang.inputs import apply_sets, field_types, load_input, parse_sets, read_input
from sagalang.plugins import Registry
from sagalang.spec import load

INLINE = """\
saga order version "1" {
    input {
        sku: string
        card: string secret
        qty: integer = 1
        amount: number = 10
        express: boolean = false
        note: string = null
        tags: list[string] = []
        address: object = {}
        extra: any = null
    }
    step reserve { do shop.reserve(sku: input.sku) }
}
"""

SCHEMA = {
    "type": "object",
    "properties": {
        "order_id": {"type": "string"},
        "qty": {"type": "integer"},
        "pin": {"type": "integer", "writeOnly": True},
        "limit": {"$ref": "#/$defs/amount"},
        "mode": {"enum": ["fast", "slow"]},
        "customer": {"type": "object", "properties": {"age": {"type": "integer"}, "name": {"type": "string"}}},
        "counts": {"type": "object", "additionalProperties": {"type": "integer"}},
    },
    "$defs": {"amount": {"anyOf": [{"type": "number"}, {"type": "null"}]}},
}


def _registry() -> Registry:
    registry = Registry()
    registry.add("shop.reserve", lambda sku: {"sku": sku})
    return registry


@pytest.fixture
def inline(tmp_path: Path) -> Any:
    (tmp_path / "order.saga").write_text(INLINE)
    return load(tmp_path / "order.saga", _registry())


@pytest.fixture
def from_schema(tmp_path: Path) -> Any:
    (tmp_path / "order.schema.json").write_text(json.dumps(SCHEMA))
    (tmp_path / "order.saga").write_text(
        textwrap.dedent("""\
        saga order version "1" {
            input schema "order.schema.json"
            step reserve { do shop.reserve(sku: input.order_id) }
        }
        """)
    )
    return load(tmp_path / "order.saga", _registry())


# ---- the input file -----------------------------------------------------------------------


def test_read_input_from_a_file_or_stdin(tmp_path: Path) -> None:
    assert read_input(None) == {}
    path = tmp_path / "in.json"
    path.write_bytes(b'\xef\xbb\xbf{"sku": "A1", "qty": 2}')  # a byte order mark is still UTF-8
    assert read_input(path) == {"sku": "A1", "qty": 2}
    assert read_input("-", stdin=io.BytesIO('{"name": "Zoë"}'.encode())) == {"name": "Zoë"}
    assert read_input("-", stdin=io.StringIO('{"a": 1}')) == {"a": 1}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\xff\xfe{}", "in.json: input is not UTF-8 text (byte 0xff at offset 0)"),
        (b'{"a": 1,\n  "b": }', "in.json:2:8: input is not valid JSON: Expecting value"),
        (b"[1, 2]", "in.json: input must be a JSON object, not an array"),
        (b'"text"', "in.json: input must be a JSON object, not a string"),
        (b"null", "in.json: input must be a JSON object, not null"),
        (b'{"a": NaN}', "in.json: input is not valid JSON: NaN is not a JSON value"),
    ],
)
def test_a_bad_input_file_is_one_line_naming_it(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "in.json"
    path.write_bytes(content)
    with pytest.raises(SagaInputError) as caught:
        read_input(path)
    assert str(caught.value) == message.replace("in.json", str(path))


def test_an_unreadable_input_file(tmp_path: Path) -> None:
    with pytest.raises(SagaInputError, match=r"cannot read input .*missing.json: No such file or directory"):
        read_input(tmp_path / "missing.json")
    with pytest.raises(SagaInputError, match="standard input: input is not UTF-8 text"):
        read_input("-", stdin=io.BytesIO(b"{\x80}"))


# ---- --set by declared type ---------------------------------------------------------------


def test_set_converts_by_the_inline_declaration(inline: Any) -> None:
    data = load_input(
        inline,
        sets=[
            "sku=00123",
            "card=4111111111111111",
            "qty=3",
            "amount=2.5",
            "express=true",
            "note=null",
            'tags=["a", "b"]',
            "address.city=Delft",
            "address.zip=2611",
            "extra=[1]",
        ],
    )
    assert data == {
        "sku": "00123",  # a string field keeps the text: leading zeros and digits stay
        "card": "4111111111111111",
        "qty": 3,
        "amount": 2.5,
        "express": True,
        "note": "null",  # a string field, even a nullable one, takes the text as given
        "tags": ["a", "b"],
        "address": {"city": "Delft", "zip": 2611},  # inside an `object`: undeclared, read as JSON
        "extra": [1],  # `any`: JSON, else text
    }
    assert inline.prepare_input(data)["qty"] == 3


def test_set_converts_by_the_schema_file(from_schema: Any) -> None:
    data = load_input(
        from_schema,
        sets=[
            "order_id=42",
            "qty=1e1",
            "limit=null",
            "mode=fast",
            "customer.age=30",
            "customer.name=007",
            "counts.a=4",
        ],
    )
    assert data == {
        "order_id": "42",
        "qty": 10,
        "limit": None,
        "mode": "fast",
        "customer": {"age": 30, "name": "007"},
        "counts": {"a": 4},  # additionalProperties types every key
    }
    assert load_input(from_schema, sets=["limit=7.5"])["limit"] == 7.5
    with pytest.raises(SagaInputError, match=r"^--set counts.x=lots: input.counts.x expects an integer, not 'lots'$"):
        load_input(from_schema, sets=["counts.x=lots"])


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        ("qty=many", "--set qty=many: input.qty expects an integer, not 'many'"),
        ("qty=2.5", "--set qty=2.5: input.qty expects an integer, not '2.5'"),
        ("amount=ten", "--set amount=ten: input.amount expects a number, not 'ten'"),
        ("amount=NaN", "--set amount=NaN: input.amount expects a number, not 'NaN'"),
        ("express=yes", "--set express=yes: input.express expects true or false, not 'yes'"),
        ("tags=a", "--set tags=a: input.tags expects a JSON list, not 'a'"),
        ("tags=[1", "--set tags=[1: input.tags expects a JSON list, not '[1'"),
        ("qty.x=1", "--set qty.x=1: input.qty is declared as integer, not object"),
    ],
)
def test_a_value_that_does_not_convert_names_the_field_and_type(inline: Any, assignment: str, message: str) -> None:
    with pytest.raises(SagaInputError) as caught:
        load_input(inline, sets=[assignment])
    assert str(caught.value) == message


def test_a_secret_value_is_never_shown(from_schema: Any) -> None:
    with pytest.raises(SagaInputError) as caught:
        load_input(from_schema, sets=["pin=12a4"])
    assert str(caught.value) == "--set pin=***: input.pin expects an integer, (secret: value not shown)"
    with pytest.raises(SagaInputError) as caught:
        load_input(from_schema, sets=["pin=1234", "pin=5678"])
    assert "1234" not in str(caught.value) and "5678" not in str(caught.value)


def test_undeclared_fields_read_json_else_text() -> None:
    data = apply_sets({}, ["n=3", "s=hello", "b=true", "z=null", 'o={"k": 1}', "a.b.c=x", "e="])
    assert data == {"n": 3, "s": "hello", "b": True, "z": None, "o": {"k": 1}, "a": {"b": {"c": "x"}}, "e": ""}


def test_set_overrides_the_input_file_without_changing_it() -> None:
    base = {"sku": "A1", "address": {"city": "Delft", "zip": "2611"}}
    data = apply_sets(base, ["address.city=Leiden", "sku=B2"])
    assert data == {"sku": "B2", "address": {"city": "Leiden", "zip": "2611"}}
    assert base == {"sku": "A1", "address": {"city": "Delft", "zip": "2611"}}
    with pytest.raises(SagaInputError, match=r"--set sku.x=1: input.sku is a string in the input, not an object"):
        apply_sets(base, ["sku.x=1"])


@pytest.mark.parametrize(
    ("sets", "message"),
    [
        (["a=1", "a.b=2"], "--set a.b=2 conflicts with --set a=1: both assign input.a"),
        (["a.b=2", "a=1"], "--set a=1 conflicts with --set a.b=2: both assign input.a"),
        (["a.b=2", "x=0", "a.b=3"], "--set a.b=3 conflicts with --set a.b=2: both assign input.a.b"),
    ],
)
def test_conflicting_sets_are_an_error_naming_both(sets: list[str], message: str) -> None:
    with pytest.raises(SagaInputError) as caught:
        parse_sets(sets)
    assert str(caught.value) == message
    assert [a.path for a in parse_sets(["a.b=1", "a.c=2", "ab=3"])] == [("a", "b"), ("a", "c"), ("ab",)]


@pytest.mark.parametrize("bad", ["novalue", "=1", "a..b=1", ".a=1"])
def test_a_malformed_set(bad: str) -> None:
    with pytest.raises(SagaInputError, match=r"expected KEY=VALUE"):
        parse_sets([bad])


def test_field_types() -> None:
    assert field_types(SCHEMA, ["qty"]) == {"integer"}
    assert field_types(SCHEMA, ["limit"]) == {"number", "null"}
    assert field_types(SCHEMA, ["mode"]) == {"string"}
    assert field_types(SCHEMA, ["customer", "age"]) == {"integer"}
    assert field_types(SCHEMA, ["unknown"]) is None
    with pytest.raises(ValueError, match=r"input\.qty is declared as integer, not object"):
        field_types(SCHEMA, ["qty", "x"])
