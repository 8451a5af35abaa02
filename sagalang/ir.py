"""The intermediate representation: frozen dataclasses built by the transformer.

Every node carries a ``span`` that does not take part in equality, so an IR
built by hand compares equal to the same IR parsed from text. Durations are
whole milliseconds. Nothing here imports beyond :mod:`sagalang.source`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal as L

from .source import NO_SPAN, Span

__all__ = [
    "Arg",
    "Arith",
    "Backoff",
    "BoolOp",
    "Compare",
    "CompensationPolicy",
    "Defaults",
    "Duplicate",
    "Duration",
    "Expr",
    "FailurePolicy",
    "Field",
    "ForEach",
    "FuncCall",
    "Import",
    "InputFields",
    "InputSchema",
    "Invocation",
    "ListExpr",
    "Literal",
    "MapExpr",
    "Module",
    "Name",
    "OutputEntry",
    "Parallel",
    "Path",
    "RetryPolicy",
    "Saga",
    "SagaCall",
    "SagaRetry",
    "Step",
    "StepKind",
    "StepRef",
    "Template",
    "TypeRef",
    "Unary",
]

Scalar = str | int | float | bool | None


# ---- expressions -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Literal:
    """A constant: string, integer, float, boolean or null."""

    value: Scalar
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Name:
    """A bare name: ``input``, a step, the fan-out item, ``result`` or ``saga``."""

    id: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Path:
    """``base.key`` / ``base[key]`` chains, flattened; field keys are string literals."""

    base: Expr
    keys: tuple[Expr, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FuncCall:
    """A call of one of the language's pure functions, e.g. ``len(x)``."""

    func: str
    args: tuple[Expr, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Unary:
    """Prefix operators applied right to left: ``not``, or ``-``."""

    ops: tuple[L["not", "-"], ...]
    operand: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Arith:
    """A left-associative chain ``a op b op c`` of ``+ - * / %`` at one precedence."""

    operands: tuple[Expr, ...]
    ops: tuple[L["+", "-", "*", "/", "%"], ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right`` for one comparison operator (comparisons do not chain)."""

    left: Expr
    op: L["==", "!=", "<", "<=", ">", ">="]
    right: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class BoolOp:
    """``a and b and c`` or ``a or b``: short-circuit, n-ary."""

    op: L["and", "or"]
    values: tuple[Expr, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ListExpr:
    """A list literal."""

    items: tuple[Expr, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class MapExpr:
    """A map literal with string keys, in source order."""

    keys: tuple[str, ...]
    values: tuple[Expr, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Template:
    """An interpolated string: text parts are string Literals, the rest expressions."""

    parts: tuple[Expr, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


Expr = Literal | Name | Path | FuncCall | Unary | Arith | Compare | BoolOp | ListExpr | MapExpr | Template


# ---- declarations ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TypeRef:
    """An input field's type: ``string``, ``integer``, ``list[string]`` ..."""

    name: str
    arg: TypeRef | None = None
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Field:
    """One inline input field; a field with a default is optional."""

    name: str
    type: TypeRef
    secret: bool = False
    default: Expr | None = None
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class InputFields:
    """``input { name: type ... }``."""

    fields: tuple[Field, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class InputSchema:
    """``input schema "file.json"``: a JSON Schema file relative to the spec."""

    path: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class OutputEntry:
    """One ``name: expr`` of a saga's ``output { }`` mapping."""

    name: str
    value: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Duration:
    """A duration literal, in whole milliseconds."""

    ms: int
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Delay before retry n: ``initial * multiplier**(n-1)``, capped at ``max``."""

    initial: Duration
    multiplier: float | None = None
    max: Duration | None = None
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """``retry attempts N | forever [backoff ...] [jitter] [on E, ...] [except E, ...]``.

    ``attempts`` counts every call including the first; ``None`` means forever.
    """

    attempts: int | None
    backoff: Backoff | None = None
    jitter: bool = False
    on: tuple[str, ...] = ()
    except_: tuple[str, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Defaults:
    """Saga-wide defaults for steps that do not set their own policy."""

    retry: RetryPolicy | None = None
    timeout: Duration | None = None
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class CompensationPolicy:
    """How undo handlers run: order (``reverse`` or ``parallel``), retry and timeout."""

    order: L["reverse", "parallel"] | None = None
    retry: RetryPolicy | None = None
    timeout: Duration | None = None
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class SagaRetry:
    """Whole-saga retry: roll back, optionally analyze, start again (bounded)."""

    attempts: int
    backoff: Backoff | None = None
    analyzer: str | None = None
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FailurePolicy:
    """``on failure { siblings wait|cancel  retry saga attempts N ... }``."""

    siblings: L["wait", "cancel"] | None = None
    retry: SagaRetry | None = None
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


# ---- steps -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Arg:
    """A named argument ``name: expr`` of a handler or sub-saga call."""

    name: str
    value: Expr
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Invocation:
    """A call of a registered handler: ``ns.name(arg: expr, ...)``."""

    handler: str
    args: tuple[Arg, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class SagaCall:
    """A step that runs another saga: ``call payment(amount: ...)``."""

    saga: str
    args: tuple[Arg, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class ForEach:
    """``for item in expr limit N``: run the step once per item, at most N at a time."""

    var: str
    iterable: Expr
    limit: int | None = None
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class StepRef:
    """A step named in ``after``."""

    name: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Duplicate:
    """A clause given twice; the first one counts, the validator reports the rest."""

    clause: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


StepKind = L["step", "pivot", "readonly", "retriable"]


@dataclass(frozen=True, slots=True)
class Step:
    """One saga step: an action (``do``, ``call`` or ``use``), its undo and policies."""

    name: str
    kind: StepKind = "step"
    do: Invocation | None = None
    undo: Invocation | None = None
    call: SagaCall | None = None
    use: Invocation | None = None
    foreach: ForEach | None = None
    after: tuple[StepRef, ...] | None = None
    when: Expr | None = None
    retry: RetryPolicy | None = None
    timeout: Duration | None = None
    output_schema: InputSchema | None = None
    description: str | None = None
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    duplicates: tuple[Duplicate, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Parallel:
    """``parallel { step ... }``: the steps start together; the next step waits for all."""

    steps: tuple[Step, ...]
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Saga:
    """A saga definition."""

    name: str
    version: str | None = None
    description: str | None = None
    input: InputFields | InputSchema | None = None
    output: tuple[OutputEntry, ...] | None = None
    defaults: Defaults | None = None
    timeout: Duration | None = None
    compensation: CompensationPolicy | None = None
    on_failure: FailurePolicy | None = None
    body: tuple[Step | Parallel, ...] = ()
    span: Span = field(default=NO_SPAN, compare=False, repr=False)
    duplicates: tuple[Duplicate, ...] = field(default=(), compare=False, repr=False)

    def steps(self) -> tuple[Step, ...]:
        """Every step in source order, parallel blocks flattened."""
        out: list[Step] = []
        for item in self.body:
            if isinstance(item, Parallel):
                out.extend(item.steps)
            else:
                out.append(item)
        return tuple(out)


@dataclass(frozen=True, slots=True)
class Import:
    """``import "other.saga"``: relative to the importing file."""

    path: str
    span: Span = field(default=NO_SPAN, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class Module:
    """One ``.saga`` file: its imports and sagas."""

    imports: tuple[Import, ...] = ()
    sagas: tuple[Saga, ...] = ()
    file: str = field(default="", compare=False)
