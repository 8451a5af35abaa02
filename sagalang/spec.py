"""Loading a spec for running: validate, then bundle everything a run needs.

A :class:`Spec` is the entry saga plus every saga it can reach through
``call``, their dependency graphs, their input and output JSON Schemas, and
the text of every file involved (``sources``). The store keeps ``sources``
with each run, so :meth:`Spec.from_sources` rebuilds the very definition a
run started with when it is resumed.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import ir
from .errors import SagaError, SagaInputError
from .expr import ExprError, evaluate
from .graph import SagaGraph, build

if TYPE_CHECKING:
    from .plugins import Registry
    from .project import SourceFile

__all__ = ["TYPE_SCHEMAS", "Spec", "input_schema", "load", "secret_fields"]

# Inline input types and the JSON Schema each one stands for.
TYPE_SCHEMAS: dict[str, dict[str, Any]] = {
    "string": {"type": "string"},
    "integer": {"type": "integer"},
    "number": {"type": "number"},
    "boolean": {"type": "boolean"},
    "object": {"type": "object"},
    "map": {"type": "object"},
    "list": {"type": "array"},
    "any": {},
}


def _type_schema(t: ir.TypeRef) -> dict[str, Any]:
    base = dict(TYPE_SCHEMAS.get(t.name, {}))
    if t.arg is not None:
        if t.name == "list":
            base["items"] = _type_schema(t.arg)
        elif t.name in ("object", "map"):
            base["additionalProperties"] = _type_schema(t.arg)
    return base


def input_schema(decl: ir.InputFields) -> dict[str, Any]:
    """The JSON Schema of an inline ``input { }`` declaration (unknown fields rejected)."""
    props: dict[str, Any] = {}
    required: list[str] = []
    for f in decl.fields:
        schema = _type_schema(f.type)
        if f.default is not None:
            # A null default makes the field nullable whatever its type.
            default = evaluate(f.default, {})
            schema["default"] = default
            if default is None and "type" in schema:
                schema["type"] = [schema["type"], "null"]
        else:
            required.append(f.name)
        if f.secret:
            schema["writeOnly"] = True
        props[f.name] = schema
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


def secret_fields(schema: Mapping[str, Any]) -> tuple[str, ...]:
    """Top-level input fields marked secret (``secret`` inline, ``writeOnly``/``x-secret`` in a schema)."""
    props = schema.get("properties", {})
    if not isinstance(props, Mapping):
        return ()
    return tuple(
        name
        for name, p in props.items()
        if isinstance(p, Mapping) and (p.get("writeOnly") is True or p.get("x-secret") is True)
    )


def _where(path: Any) -> str:
    parts = [str(p) for p in path]
    out = "input"
    for p in parts:
        out += f"[{p}]" if p.isdigit() else f".{p}"
    return out


@dataclass
class Spec:
    """A validated entry saga with everything a run of it needs."""

    entry: str  # the entry saga's name
    sagas: dict[str, ir.Saga]
    graphs: dict[str, SagaGraph]
    files: dict[str, str]  # saga name -> its file, relative to the entry file's folder
    schemas: dict[str, Any]  # schema file (relative like files) -> parsed JSON
    sources: dict[str, str]  # every file (spec and schema), relative path -> text
    spec_hash: str
    entry_file: str
    path: Path | None = None
    input_schemas: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    _output_validators: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    _secrets: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)
    # The runtime's resolved handlers, per registry (see sagalang.runtime.calls.HandlerTable).
    handler_tables: dict[int, tuple[Any, Any]] = field(default_factory=dict, init=False, repr=False, compare=False)

    @property
    def saga(self) -> ir.Saga:
        """The entry saga."""
        return self.sagas[self.entry]

    @property
    def graph(self) -> SagaGraph:
        """The entry saga's dependency graph."""
        return self.graphs[self.entry]

    @cached_property
    def handler_names(self) -> tuple[str, ...]:
        """Every handler the entry saga and its callees use, sorted."""
        names = {
            inv.handler
            for s in self.sagas.values()
            for st in s.steps()
            for inv in (st.do, st.undo, st.use)
            if inv is not None
        }
        for s in self.sagas.values():
            if s.on_failure is not None and s.on_failure.retry is not None and s.on_failure.retry.analyzer:
                names.add(s.on_failure.retry.analyzer)
        return tuple(sorted(names))

    def schema_path(self, saga: str, relpath: str) -> str:
        """A schema file named in ``saga`` as a key of :attr:`schemas`."""
        folder = posixpath.dirname(self.files[saga])
        return posixpath.normpath(posixpath.join(folder, relpath))

    @cached_property
    def _validators(self) -> dict[str, Any]:
        import jsonschema

        out: dict[str, Any] = {}
        for name, schema in self.input_schemas.items():
            if schema is not None:
                cls = jsonschema.validators.validator_for(schema)
                out[name] = cls(schema, format_checker=cls.FORMAT_CHECKER)
        return out

    def output_validator(self, saga: str, relpath: str) -> Any:
        """A jsonschema validator for a step's ``output schema`` file."""
        key = f"{saga}\0{relpath}"
        cache = self._output_validators
        found = cache.get(key)
        if found is None:
            import jsonschema

            schema = self.schemas[self.schema_path(saga, relpath)]
            cls = jsonschema.validators.validator_for(schema)
            found = cache[key] = cls(schema, format_checker=cls.FORMAT_CHECKER)
        return found

    def secrets(self, saga: str | None = None) -> tuple[str, ...]:
        """Names of the secret input fields of ``saga`` (default: the entry saga)."""
        name = saga or self.entry
        found = self._secrets.get(name)
        if found is None:
            schema = self.input_schemas.get(name)
            found = self._secrets[name] = secret_fields(schema) if schema else ()
        return found

    def prepare_input(self, data: Any, saga: str | None = None) -> dict[str, Any]:
        """``data`` checked against the saga's input declaration, defaults filled in.

        Raises :class:`SagaInputError` listing every problem, each with the field at fault.
        """
        name = saga or self.entry
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise SagaInputError(f"saga {name!r}: input must be a JSON object, got {type(data).__name__}")
        out = dict(data)
        schema = self.input_schemas.get(name)
        if schema is None:
            return out
        for key, prop in schema.get("properties", {}).items():
            if key not in out and isinstance(prop, Mapping) and "default" in prop:
                out[key] = prop["default"]
        validator = self._validators[name]
        problems = sorted(validator.iter_errors(out), key=lambda e: (list(map(str, e.absolute_path)), e.message))
        if problems:
            secrets = set(self.secrets(name))
            lines = []
            for err in problems:
                msg = err.message
                path = list(err.absolute_path)
                if path and str(path[0]) in secrets:
                    msg = "value does not match the declared type (secret: value not shown)"
                lines.append(f"  {_where(path)}: {msg}")
            raise SagaInputError(f"saga {name!r}: invalid input:\n" + "\n".join(lines))
        return out

    @classmethod
    def from_sources(
        cls,
        sources: Mapping[str, str],
        entry: str,
        saga: str | None = None,
        registry: Registry | None = None,
    ) -> Spec:
        """Rebuild a Spec from a run record's ``sources`` (``entry``: the entry file's key)."""
        # Files may sit above the entry folder (``../shared/x.saga``): nest the entry deep enough.
        depth = max((p.split("/").count("..") for p in sources), default=0)
        with tempfile.TemporaryDirectory(prefix="sagalang-spec-") as tmp:
            top = Path(tmp)
            base = top.joinpath(*(["_"] * depth)) if depth else top
            for rel, text in sources.items():
                target = (base / rel).resolve()
                if not target.is_relative_to(top.resolve()):
                    raise SagaError(f"stored spec file {rel!r} escapes its folder")
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text, encoding="utf-8")
            spec = load(base / entry, registry=registry, saga=saga, root=top)
        spec.path = None
        return spec


def _rel(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path, folder)).as_posix()


def load(
    path: str | Path,
    registry: Registry | None = None,
    saga: str | None = None,
    root: str | Path | None = None,
    check: bool = True,
) -> Spec:
    """Validate ``path`` (raises SagaValidationError with every error) and bundle it for running.

    ``check=False`` skips the semantic rules (only files that parse are needed):
    ``sagalang test`` uses it to show what a flawed saga does at run time.
    """
    from .project import load_project
    from .validate import check as check_project

    entry_path = Path(path).resolve()
    if not entry_path.is_file():
        raise SagaError(f"no such spec file: {path}")
    if check:
        project = check_project([entry_path], registry, root)
    else:
        project = load_project([entry_path], root)
        broken = [d for d in project.diagnostics if d.severity == "error"]
        if broken:
            from .errors import SagaValidationError

            raise SagaValidationError(broken)
    sf = project.files[entry_path]
    assert sf.module is not None
    sagas_here = {s.name: s for s in sf.module.sagas}
    if saga is None:
        entry_saga = sf.module.sagas[0]
    elif saga in sagas_here:
        entry_saga = sagas_here[saga]
    else:
        known = ", ".join(sorted(sagas_here))
        raise SagaError(f"{sf.display}: no saga named {saga!r} (this file defines: {known})")
    folder = entry_path.parent
    sagas: dict[str, ir.Saga] = {}
    owners: dict[str, SourceFile] = {}
    queue: list[tuple[ir.Saga, SourceFile]] = [(entry_saga, sf)]
    while queue:
        current, where = queue.pop()
        if current.name in sagas:
            if sagas[current.name] is not current:
                raise SagaError(
                    f"saga name {current.name!r} is defined in both {owners[current.name].display} and "
                    f"{where.display}; rename one so `call` is unambiguous"
                )
            continue
        sagas[current.name] = current
        owners[current.name] = where
        scope = project.scope(where.path)
        for step in current.steps():
            if step.call is not None and step.call.saga in scope:
                queue.append(scope[step.call.saga])
    sources: dict[str, str] = {}
    for p, f in project.files.items():
        if f.text is not None:
            sources[_rel(p, folder)] = f.text
    schemas: dict[str, Any] = {}
    input_schemas: dict[str, dict[str, Any] | None] = {}
    files = {name: _rel(owners[name].path, folder) for name in sagas}
    for name, s in sagas.items():
        sfolder = owners[name].path.parent
        refs = [st.output_schema.path for st in s.steps() if st.output_schema is not None]
        if isinstance(s.input, ir.InputSchema):
            refs.append(s.input.path)
        for ref in refs:
            file = (sfolder / ref).resolve()
            key = _rel(file, folder)
            text = file.read_text(encoding="utf-8")
            sources[key] = text
            schemas[key] = json.loads(text)
        if isinstance(s.input, ir.InputFields):
            try:
                input_schemas[name] = input_schema(s.input)
            except ExprError as err:
                raise SagaError(f"{owners[name].display}: saga {name!r}: bad input default: {err}") from err
        elif isinstance(s.input, ir.InputSchema):
            input_schemas[name] = schemas[_rel((sfolder / s.input.path).resolve(), folder)]
        else:
            input_schemas[name] = None
    digest = hashlib.sha256()
    for key in sorted(sources):
        digest.update(key.encode() + b"\0" + sources[key].encode() + b"\0")
    return Spec(
        entry=entry_saga.name,
        sagas=sagas,
        graphs={name: build(s) for name, s in sagas.items()},
        files=files,
        schemas=schemas,
        sources=sources,
        spec_hash=digest.hexdigest(),
        entry_file=_rel(entry_path, folder),
        path=entry_path,
        input_schemas=input_schemas,
    )
