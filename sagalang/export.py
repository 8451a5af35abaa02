"""The IR as JSON, and the JSON Schema of that JSON, generated from the IR's own dataclasses.

Every IR node becomes an object whose ``"node"`` names its class, followed by
its fields as they are (tuples become arrays, spans become
``{"line", "col", "end_line", "end_col"}``). The schema is derived from the
dataclasses' fields and type hints, so it cannot drift from the IR: a new field
or node type appears in both at once.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from functools import cache
from typing import Any

from . import ir
from .source import Span

if typing.TYPE_CHECKING:
    from pathlib import Path

    from .diagnostics import Diagnostic
    from .plugins import Registry
    from .project import Project, SourceFile

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "SCHEMA_DIALECT",
    "dumps",
    "export_module",
    "ir_schema",
    "load_module",
    "load_spec_file",
    "node_classes",
]

FORMAT = "sagalang-ir"
FORMAT_VERSION = 1
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def node_classes() -> list[type]:
    """Every IR node class (the dataclasses of :mod:`sagalang.ir` except Module), in declaration order."""
    return [
        obj
        for name in ir.__all__
        if isinstance(obj := getattr(ir, name), type) and dataclasses.is_dataclass(obj) and obj is not ir.Module
    ]


_CLASSES: dict[str, type] = {c.__name__: c for c in node_classes()}


def load_spec_file(
    spec: str | Path, registry: Registry | None = None, root: str | Path | None = None
) -> tuple[Project, list[Diagnostic], SourceFile | None]:
    """Load and validate one spec file (and what it imports): its project, every finding, its parsed file.

    The file is ``None`` when it could not be read or parsed.
    """
    from pathlib import Path

    from .validate import validate_paths

    project, diags = validate_paths([spec], registry, root)
    sf = project.files.get(Path(spec).resolve())
    return project, diags, (sf if sf is not None and sf.module is not None else None)


def _span(span: Span) -> dict[str, int]:
    return {"line": span.line, "col": span.col, "end_line": span.end_line, "end_col": span.end_col}


def _value(value: Any) -> Any:
    if isinstance(value, Span):
        return _span(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _node(value)
    if isinstance(value, tuple | list):
        return [_value(v) for v in value]
    return value


def _node(node: Any) -> dict[str, Any]:
    name = type(node).__name__
    out: dict[str, Any] = {"node": name}
    for f in dataclasses.fields(node):
        out[f.name] = _value(getattr(node, f.name))
    return out


def export_module(module: ir.Module) -> dict[str, Any]:
    """``module`` as JSON-ready data: ``{"format", "version", "file", "imports", "sagas"}``."""
    return {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "file": module.file,
        "imports": [_node(i) for i in module.imports],
        "sagas": [_node(s) for s in module.sagas],
    }


def load_module(data: dict[str, Any]) -> ir.Module:
    """The inverse of :func:`export_module`: rebuild the IR from its JSON (e.g. to round-trip)."""
    if data.get("format") != FORMAT or data.get("version") != FORMAT_VERSION:
        raise ValueError(f"not a {FORMAT} version {FORMAT_VERSION} document")
    imports = tuple(_build(i) for i in data["imports"])
    sagas = tuple(_build(s) for s in data["sagas"])
    return ir.Module(imports, sagas, data["file"])


def _build(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_build(v) for v in value)
    if isinstance(value, dict):
        if "node" not in value:
            return Span(value["line"], value["col"], value["end_line"], value["end_col"])
        cls = _CLASSES[value["node"]]
        return cls(**{k: _build(v) for k, v in value.items() if k != "node"})
    return value


def dumps(data: Any) -> str:
    """Deterministic JSON text (two-space indent, UTF-8 kept, trailing newline)."""
    return json.dumps(data, indent=2, ensure_ascii=False) + "\n"


# ---- the schema ----------------------------------------------------------------------

_SCALARS: dict[Any, dict[str, Any]] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/$defs/{name}"}


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _type_schema(tp: Any, expr_members: frozenset[Any]) -> dict[str, Any]:
    """The JSON Schema of one type hint."""
    if tp in _SCALARS:
        return dict(_SCALARS[tp])
    if tp is Span:
        return _ref("Span")
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _ref(tp.__name__)
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin is typing.Literal:
        return {"enum": list(args)}
    if _is_union(tp):
        members = [a for a in args if a is not type(None)]
        nullable = len(members) != len(args)
        if frozenset(members) == expr_members:
            options = [_ref("Expr")]
        else:
            options = [_type_schema(m, expr_members) for m in members]
        if nullable:
            options.append({"type": "null"})
        return options[0] if len(options) == 1 else {"anyOf": options}
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return {"type": "array", "items": _type_schema(args[0], expr_members)}
        return {
            "type": "array",
            "prefixItems": [_type_schema(a, expr_members) for a in args],
            "items": False,
        }
    raise TypeError(f"no JSON Schema for type {tp!r}")


def _class_schema(cls: type, expr_members: frozenset[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    properties: dict[str, Any] = {"node": {"const": cls.__name__}}
    for f in dataclasses.fields(cls):
        properties[f.name] = _type_schema(hints[f.name], expr_members)
    schema: dict[str, Any] = {"type": "object"}
    doc = (cls.__doc__ or "").strip().split("\n")[0]
    if doc:
        schema["description"] = doc
    schema.update({"properties": properties, "required": list(properties), "additionalProperties": False})
    return schema


@cache
def _schema() -> str:
    expr_members = frozenset(typing.get_args(ir.Expr))
    defs: dict[str, Any] = {
        "Span": {
            "type": "object",
            "description": "A 1-based line/column range (end column exclusive); all zero when unknown.",
            "properties": {k: {"type": "integer", "minimum": 0} for k in ("line", "col", "end_line", "end_col")},
            "required": ["line", "col", "end_line", "end_col"],
            "additionalProperties": False,
        },
        "Expr": {
            "description": "Any expression node.",
            "anyOf": [_ref(c.__name__) for c in typing.get_args(ir.Expr)],
        },
    }
    for cls in node_classes():
        defs[cls.__name__] = _class_schema(cls, expr_members)
    module_hints = typing.get_type_hints(ir.Module)
    schema = {
        "$schema": SCHEMA_DIALECT,
        "$id": f"urn:sagalang:ir:{FORMAT_VERSION}",
        "title": "sagalang IR export",
        "description": "The output of `sagalang export`: one .saga file's imports and sagas as IR nodes.",
        "type": "object",
        "properties": {
            "format": {"const": FORMAT},
            "version": {"const": FORMAT_VERSION},
            "file": {"type": "string"},
            "imports": _type_schema(module_hints["imports"], expr_members),
            "sagas": _type_schema(module_hints["sagas"], expr_members),
        },
        "required": ["format", "version", "file", "imports", "sagas"],
        "additionalProperties": False,
        "$defs": defs,
    }
    return json.dumps(schema)


def ir_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of :func:`export_module`'s output, generated from the IR."""
    data: dict[str, Any] = json.loads(_schema())
    return data
