"""A saga's input as a command line gives it: a JSON file (or stdin) and ``--set KEY=VALUE``.

One implementation for every command that takes an input (``run``, ``submit``)
and for scripts, so the same input is read the same way everywhere:

* the file must be UTF-8 JSON holding an object; anything else is one
  :class:`~sagalang.errors.SagaInputError` line naming the file;
* ``--set`` values are converted by the field's declared type (inline
  ``input { }`` or ``input schema``): ``card=4111111111111111`` stays text for
  a ``string`` field, ``qty=3`` is a number for an ``integer`` one; a field
  without a declared type reads the value as JSON, else as text;
* two ``--set`` that assign the same field, or a field and a field inside it
  (``a=1`` and ``a.b=2``), are an error naming both, whatever their order.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from .errors import SagaInputError
from .spec import secret_fields

if TYPE_CHECKING:
    from .spec import Spec

__all__ = ["Assignment", "apply_sets", "convert", "field_types", "load_input", "parse_sets", "read_input"]

_JSON_TYPE = {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}


# ---- the input file -------------------------------------------------------------------------


def read_input(source: str | os.PathLike[str] | None, *, stdin: IO[Any] | None = None) -> dict[str, Any]:
    """The JSON object in file ``source`` (``-``: standard input); ``{}`` without a source."""
    if source is None:
        return {}
    if str(source) == "-":
        name = "standard input"
        stream = stdin if stdin is not None else sys.stdin
        raw: bytes | str = getattr(stream, "buffer", stream).read()
    else:
        name = str(source)
        try:
            raw = Path(source).read_bytes()
        except OSError as err:
            raise SagaInputError(f"cannot read input {name}: {err.strerror or err}") from None
    return _parse_object(_decode(raw, name), name)


def _decode(raw: bytes | str, name: str) -> str:
    if isinstance(raw, str):
        return raw
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        bad = raw[err.start]
        raise SagaInputError(f"{name}: input is not UTF-8 text (byte 0x{bad:02x} at offset {err.start})") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _parse_object(text: str, name: str) -> dict[str, Any]:
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as err:
        raise SagaInputError(f"{name}:{err.lineno}:{err.colno}: input is not valid JSON: {err.msg}") from None
    except ValueError as err:  # NaN, Infinity: Python reads them, JSON has no such values
        raise SagaInputError(f"{name}: input is not valid JSON: {err}") from None
    except RecursionError:
        raise SagaInputError(f"{name}: input is nested too deeply") from None
    if not isinstance(data, dict):
        raise SagaInputError(f"{name}: input must be a JSON object, not {_a(_json_type(data))}")
    return data


def _a(kind: str) -> str:
    return kind if kind == "null" else ("an " if kind[0] in "aeiou" else "a ") + kind


def _json_type(value: Any) -> str:
    return "null" if value is None else _JSON_TYPE.get(type(value), type(value).__name__)


# ---- --set KEY=VALUE --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Assignment:
    """One ``--set KEY=VALUE``: the dotted field path and the value's text."""

    path: tuple[str, ...]
    raw: str

    @property
    def field(self) -> str:
        """The field as messages name it: ``input.a.b``."""
        return "input." + ".".join(self.path)

    def shown(self, secrets: Iterable[str] = ()) -> str:
        """``KEY=VALUE`` as given, the value hidden for a secret field."""
        value = "***" if self.path[0] in set(secrets) else self.raw
        return f"{'.'.join(self.path)}={value}"


def parse_sets(sets: Iterable[str], secrets: Iterable[str] = ()) -> list[Assignment]:
    """``--set`` texts as assignments; raises SagaInputError for a malformed or conflicting one."""
    hidden = tuple(secrets)
    done: list[Assignment] = []
    for text in sets:
        key, eq, raw = text.partition("=")
        path = tuple(part.strip() for part in key.split("."))
        if not eq or not all(path):
            raise SagaInputError(f"--set {text!r}: expected KEY=VALUE (a.b=VALUE for a nested field)")
        new = Assignment(path, raw)
        for old in done:
            short = min(old.path, new.path, key=len)
            if old.path[: len(short)] == new.path[: len(short)]:
                raise SagaInputError(
                    f"--set {new.shown(hidden)} conflicts with --set {old.shown(hidden)}: "
                    f"both assign input.{'.'.join(short)}"
                )
        done.append(new)
    return done


def apply_sets(data: Mapping[str, Any], sets: Iterable[str], schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``data`` with every ``--set`` applied (a new dict), each value converted by ``schema``'s type."""
    secrets = secret_fields(schema) if schema else ()
    out = dict(data)
    for a in parse_sets(sets, secrets):
        target = out
        for depth, part in enumerate(a.path[:-1]):
            nxt = target.get(part, {})
            if not isinstance(nxt, dict):
                where = "input." + ".".join(a.path[: depth + 1])
                raise SagaInputError(
                    f"--set {a.shown(secrets)}: {where} is {_a(_json_type(nxt))} in the input, not an object"
                )
            copy = dict(nxt)  # the caller's data stays as it was
            target[part] = copy
            target = copy
        try:
            declared = field_types(schema, a.path) if schema else None
        except ValueError as err:
            raise SagaInputError(f"--set {a.shown(secrets)}: {err}") from None
        target[a.path[-1]] = convert(a, declared, secret=a.path[0] in secrets)
    return out


def load_input(
    spec: Spec,
    source: str | os.PathLike[str] | None = None,
    sets: Iterable[str] = (),
    *,
    saga: str | None = None,
    stdin: IO[Any] | None = None,
) -> dict[str, Any]:
    """The input of a run of ``spec`` from a file and ``--set`` texts (not yet checked against it)."""
    return apply_sets(read_input(source, stdin=stdin), sets, spec.input_schemas.get(saga or spec.entry))


# ---- declared types -------------------------------------------------------------------------


def field_types(schema: Mapping[str, Any], path: Sequence[str]) -> set[str] | None:
    """The JSON types declared for the field at ``path`` (None: undeclared, or any type).

    Raises ValueError when ``path`` goes through a field declared as something other than an object.
    """
    current: Mapping[str, Any] | None = _resolve(schema, schema)
    for depth, part in enumerate(path):
        if current is None:
            return None
        types = _types(current, schema)
        if types is not None and "object" not in types:
            where = "input." + ".".join(path[:depth]) if depth else "the input"
            raise ValueError(f"{where} is declared as {' or '.join(sorted(types))}, not object")
        props = current.get("properties")
        if isinstance(props, Mapping) and isinstance(props.get(part), Mapping):
            current = _resolve(props[part], schema)
        elif isinstance(current.get("additionalProperties"), Mapping):
            current = _resolve(current["additionalProperties"], schema)
        else:
            return None
    return _types(current, schema) if current is not None else None


def _resolve(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Follow local ``$ref``s (``#/$defs/...``); None where a reference leads elsewhere."""
    for _ in range(32):
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return schema
        if not ref.startswith("#"):
            return None
        node: Any = root
        for token in filter(None, ref[1:].split("/")):
            token = token.replace("~1", "/").replace("~0", "~")
            node = node.get(token) if isinstance(node, Mapping) else None
        if not isinstance(node, Mapping):
            return None
        schema = node
    return None


def _types(schema: Mapping[str, Any], root: Mapping[str, Any]) -> set[str] | None:
    """The JSON types a schema allows (None: any)."""
    declared = schema.get("type")
    if isinstance(declared, str):
        return {declared}
    if isinstance(declared, list):
        return {str(t) for t in declared}
    if "const" in schema:
        return {_json_type(schema["const"])}
    if isinstance(schema.get("enum"), list):
        return {_json_type(v) for v in schema["enum"]}
    for key in ("anyOf", "oneOf"):
        options = schema.get(key)
        if isinstance(options, list):
            found: set[str] = set()
            for option in options:
                sub = _resolve(option, root) if isinstance(option, Mapping) else None
                types = _types(sub, root) if sub is not None else None
                if types is None:
                    return None
                found |= types
            return found
    return None


# Tried in this order when a field is not a string; each returns the value or raises ValueError.
def _null(raw: str) -> Any:
    if raw != "null":
        raise ValueError
    return None


def _boolean(raw: str) -> bool:
    if raw not in ("true", "false"):
        raise ValueError
    return raw == "true"


def _number(raw: str) -> int | float:
    value = json.loads(raw, parse_constant=_no_constant)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError
    return value


def _integer(raw: str) -> int:
    value = _number(raw)
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError
        return int(value)
    return value


def _array(raw: str) -> list[Any]:
    value = json.loads(raw)
    if not isinstance(value, list):
        raise ValueError
    return value


def _object(raw: str) -> dict[str, Any]:
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError
    return value


_CONVERTERS = (
    ("null", _null, "null"),
    ("boolean", _boolean, "true or false"),
    ("integer", _integer, "an integer"),
    ("number", _number, "a number"),
    ("array", _array, "a JSON list"),
    ("object", _object, "a JSON object"),
)
_NAMES = {kind: text for kind, _, text in _CONVERTERS} | {"string": "a string"}


_ORDER = list(_NAMES)


def _names(types: set[str]) -> str:
    ordered = sorted(types, key=lambda t: (_ORDER.index(t) if t in _ORDER else len(_ORDER), t))
    return " or ".join(_NAMES.get(t, t) for t in ordered)


def convert(assignment: Assignment, types: set[str] | None, *, secret: bool = False) -> Any:
    """The value of one ``--set`` for a field of the JSON ``types`` (None: JSON if it parses, else text)."""
    raw = assignment.raw
    if types is None:
        try:
            return json.loads(raw, parse_constant=_no_constant)
        except (ValueError, RecursionError):
            return raw
    if "string" in types:  # the text as given: digits, "null" and "true" stay text
        return raw
    for kind, parse, _ in _CONVERTERS:
        if kind in types:
            try:
                return parse(raw)
            except (ValueError, RecursionError):
                continue
    got = "(secret: value not shown)" if secret else f"not {raw!r}"
    shown = assignment.shown([assignment.path[0]] if secret else [])
    raise SagaInputError(f"--set {shown}: {assignment.field} expects {_names(types)}, {got}")
