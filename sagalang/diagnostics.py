"""Diagnostics: one record per finding, a catalogue of stable codes, and the output formats.

Analysis yields :class:`Diagnostic` records; reporters here turn them into
text (with snippet and caret), JSON, SARIF 2.1.0 or GitHub workflow commands.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from .source import NO_SPAN, Span, snippet

__all__ = [
    "CATALOGUE",
    "FORMATS",
    "JSON_FORMAT_SCHEMA",
    "JSON_FORMAT_VERSION",
    "Diagnostic",
    "Rule",
    "Severity",
    "did_you_mean",
    "format_github",
    "format_json",
    "format_sarif",
    "format_text",
    "sort_diagnostics",
]

Severity = Literal["error", "warning", "info"]
JSON_FORMAT_VERSION = 1


def did_you_mean(name: str, options: Iterable[str]) -> str | None:
    """``did you mean 'x'?`` for the option closest to a misspelt ``name`` (None when none is close)."""
    import difflib

    close = difflib.get_close_matches(name, sorted(set(options)), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


@dataclass(frozen=True, slots=True)
class Rule:
    """A catalogue entry: what a code means and how to fix it."""

    code: str
    severity: Severity
    title: str
    explanation: str
    fix: str


def _r(code: str, severity: Severity, title: str, explanation: str, fix: str) -> Rule:
    return Rule(code, severity, title, explanation, fix)


# The catalogue is the single source of every code; docs/diagnostics.md is generated from it.
CATALOGUE: dict[str, Rule] = {
    r.code: r
    for r in [
        # ---- files and syntax ------------------------------------------------
        _r(
            "E001",
            "error",
            "cannot read file",
            "The file does not exist or cannot be read.",
            "Check the path and its permissions.",
        ),
        _r(
            "E002",
            "error",
            "not UTF-8 text",
            "Specs are UTF-8 text; the file holds bytes that are not valid UTF-8 (binary data or another encoding).",
            "Save the file as UTF-8, or pass the right file.",
        ),
        _r(
            "E003",
            "error",
            "NUL byte",
            "The file contains a NUL byte, which never occurs in a text spec.",
            "Remove the NUL bytes; check that this is the file you meant.",
        ),
        _r(
            "E004",
            "error",
            "file too large",
            "The file is larger than the parser accepts.",
            "Split the saga into several files joined by `import` and `call`.",
        ),
        _r(
            "E005",
            "error",
            "not a spec",
            "The file is empty or holds no saga.",
            "Declare at least one `saga NAME { ... }`.",
        ),
        _r(
            "E010",
            "error",
            "syntax error",
            "The parser met a token it did not expect here; the hint lists what it expected.",
            "Fix the text at the caret; the hint names the tokens that may stand there.",
        ),
        _r(
            "E011",
            "error",
            "unexpected character",
            "A character that starts no token of the language.",
            "Remove the character or put it inside a string.",
        ),
        _r(
            "E012",
            "error",
            "unterminated string",
            "A string is not closed before the end of its line.",
            "Close the string; write `\\n` for a line break inside it.",
        ),
        _r(
            "E013",
            "error",
            "unterminated block",
            "The file ends while a `{`, `(` or `[` is still open.",
            "Add the missing closing bracket.",
        ),
        _r(
            "E014",
            "error",
            "nesting too deep",
            "Brackets nest deeper than the parser allows.",
            "Split the expression into smaller parts.",
        ),
        _r(
            "E015",
            "error",
            "invalid escape",
            "A backslash in a string is followed by a character that is not an escape.",
            "Use one of `\\n \\t \\r \\\\ \\\" \\' \\$ \\0 \\uXXXX`.",
        ),
        _r(
            "E016",
            "error",
            "bad interpolation",
            "A `${` in a string is not closed, or is empty.",
            "Close it with `}`, or write `\\${` for a literal `${`.",
        ),
        # ---- names and structure -----------------------------------------------
        _r(
            "E101",
            "error",
            "duplicate saga",
            (
                "Two sagas share a name in one file, or a saga has the name of a saga in a file it imports, so "
                "`call NAME` would be ambiguous."
            ),
            "Rename one of the sagas, or drop the import.",
        ),
        _r(
            "E102",
            "error",
            "duplicate step",
            (
                "Two steps of one saga share a name; step names are how expressions, `after` and the journal refer "
                "to steps."
            ),
            "Rename one of the steps.",
        ),
        _r(
            "E103",
            "error",
            "duplicate input field",
            "An inline `input { }` declares the same field twice.",
            "Remove or rename one of the fields.",
        ),
        _r(
            "E104",
            "error",
            "duplicate output entry",
            "The saga's `output { }` mapping names the same entry twice.",
            "Remove or rename one of the entries.",
        ),
        _r(
            "E105",
            "error",
            "duplicate argument",
            "A handler call, step object or sub-saga call passes the same argument twice.",
            "Pass each argument once.",
        ),
        _r(
            "E106",
            "error",
            "duplicate map key",
            "A map literal `{ a: 1, a: 2 }` repeats a key; only one value could survive.",
            "Remove or rename one of the keys.",
        ),
        _r(
            "E107",
            "error",
            "duplicate clause",
            (
                "A clause such as `do`, `undo`, `retry`, `timeout`, `when` or `input` is written twice in one step "
                "or saga. The first one counts; the others are ignored."
            ),
            "Keep a single clause.",
        ),
        _r(
            "E108",
            "error",
            "step without action",
            "A step has none of `do`, `call` or `use`, so it would do nothing.",
            "Give it an action: `do ns.handler(...)`, `call saga(...)` or `use ns.step(...)`.",
        ),
        _r(
            "E109",
            "error",
            "step with several actions",
            "A step has more than one of `do`, `call` and `use`; a step runs exactly one action.",
            "Split it into one step per action.",
        ),
        _r(
            "E110",
            "error",
            "undo without do",
            (
                "`undo` pairs with `do`. A step object (`use`) provides its own undo, and a called saga (`call`) "
                "compensates its own steps."
            ),
            "Remove the `undo`.",
        ),
        _r(
            "E111",
            "error",
            "reserved name",
            (
                "`input`, `saga` and `result` are names expressions already use; a step or loop variable with one "
                "of these names (or a loop variable named like a step) would be ambiguous."
            ),
            "Rename the step or the loop variable.",
        ),
        # ---- ordering ------------------------------------------------------------
        _r(
            "E201",
            "error",
            "unknown step in after",
            "`after` names a step that the saga does not define.",
            "Fix the name (the hint suggests a close one) or define the step.",
        ),
        _r(
            "E202",
            "error",
            "dependency cycle",
            (
                "The `after` edges form a cycle, so none of the steps in it could ever start. The message reads the "
                "cycle as a chain: `a runs after b, b runs after a`."
            ),
            "Remove one of the `after` edges in the cycle.",
        ),
        _r(
            "E203",
            "error",
            "step after itself",
            "A step lists itself in `after`.",
            "Remove its own name from `after`.",
        ),
        _r(
            "W204",
            "warning",
            "repeated after entry",
            "`after` lists the same step twice.",
            "List each step once.",
        ),
        # ---- expressions and data flow --------------------------------------------
        _r(
            "E301",
            "error",
            "unknown name",
            (
                "An expression reads a name that is not `input`, `saga`, a step of this saga, the step's loop "
                "variable, or `result` (in an undo)."
            ),
            "Fix the name (the hint suggests a close one).",
        ),
        _r(
            "E302",
            "error",
            "unknown input field",
            (
                "An expression reads `input.NAME` but the saga's inline `input { }` declares no such field. (Sagas "
                "with `input schema` are not checked here.)"
            ),
            "Declare the field, or fix its name.",
        ),
        _r(
            "E303",
            "error",
            "output read before it exists",
            (
                "An expression of a step reads the output of a step that is not guaranteed to have completed before "
                "it: the other step runs later, concurrently (e.g. in the same `parallel` block), or on another "
                "branch of the DAG. Only ancestors in the dependency graph have finished. A step may read its own "
                "output only in its `undo`."
            ),
            "Add `after OTHER` to the step, move it later, or read the value in the saga's `output`.",
        ),
        _r(
            "E304",
            "error",
            "conditional output read without default",
            (
                "A step with `when` may be skipped; its output is then `null`, and reading a field of it fails at "
                "run time."
            ),
            "Wrap the read: `default(step.field, fallback)` or `coalesce(step.field, fallback)`.",
        ),
        _r(
            "W305",
            "warning",
            "field of a fan-out output",
            "A `for` step's output is the list of its items' outputs, so `step.field` reads a field of a list.",
            "Index the list (`step[0].field`), or pass the whole list.",
        ),
        _r(
            "E306",
            "error",
            "result outside undo",
            (
                "`result` names the step's own output (or, in a fan-out step, this item's output) and exists only "
                "in an `undo`."
            ),
            "Read another step's output by its name.",
        ),
        _r(
            "E307",
            "error",
            "loop variable out of scope",
            (
                "A fan-out loop variable exists only in its own step's `do`, `undo` and arguments; not in its `for` "
                "expression, its `when`, nor in other steps."
            ),
            "Read the fan-out step's output (a list) from other steps.",
        ),
        _r(
            "E308",
            "error",
            "unknown function",
            (
                "Expressions can call only the language's pure functions (`len`, `default`, `coalesce`, `contains`, "
                "...)."
            ),
            "Fix the name (the hint suggests a close one); see the functions in the language reference.",
        ),
        _r(
            "E309",
            "error",
            "wrong number of arguments",
            "A function is called with too few or too many arguments.",
            "Pass the number of arguments the message names.",
        ),
        _r(
            "E310",
            "error",
            "unknown saga field",
            "`saga` holds the run's context: `saga.id`, `saga.name` and `saga.attempt`.",
            "Use one of those fields.",
        ),
        # ---- reachability -----------------------------------------------------------
        _r(
            "W401",
            "warning",
            "step never runs",
            (
                'The step\'s `when` is a constant false value (`false`, `null`, `0`, `""`), so the step is always '
                "skipped."
            ),
            "Remove the step or fix the condition.",
        ),
        _r(
            "W402",
            "warning",
            "unused import",
            "The file imports another spec but calls none of its sagas.",
            "Remove the import.",
        ),
        _r(
            "W403",
            "warning",
            "unused input field",
            "An inline input field is never read by any expression of the saga.",
            "Remove the field, or use it.",
        ),
        _r(
            "W404",
            "warning",
            "repeated import",
            "The same file is imported twice (perhaps through different relative paths).",
            "Remove the repeated import.",
        ),
        # ---- handlers ------------------------------------------------------------------
        _r(
            "E501",
            "error",
            "unknown handler",
            "The handler's namespace has registered handlers, but none with this name.",
            'Fix the name (the hint suggests a close one) or register the handler with `@handler("ns.name")`.',
        ),
        _r(
            "W502",
            "warning",
            "handler not checked",
            (
                "No handler of this namespace is registered (no entry point, `--plugin` or `[tool.sagalang] "
                "plugins` provides it), so the handler could not be checked. This keeps offline CI without plugins "
                "green; `--strict` turns it into an error."
            ),
            "Load the plugin that provides the namespace (`--plugin MODULE`), or ignore the warning.",
        ),
        _r(
            "E503",
            "error",
            "unknown handler argument",
            "The call passes an argument the handler's signature does not accept.",
            "Fix the argument name (the hint lists the parameters).",
        ),
        _r(
            "E504",
            "error",
            "missing handler argument",
            "The handler has a required parameter the call does not pass.",
            "Pass the argument, or give the parameter a default in the handler.",
        ),
        _r(
            "E505",
            "error",
            "use on a function",
            "`use` needs a registered step object (with `execute`/`compensate`); this handler is a plain function.",
            "Write `do ns.handler(...)` with an `undo`, or register a step object.",
        ),
        _r(
            "E506",
            "error",
            "do on a step object",
            (
                "`do`, `undo` and `analyze` call functions; this handler is a step object, which provides both the "
                "action and its undo."
            ),
            "Write `use ns.step(...)` and drop the `undo`.",
        ),
        _r(
            "E508",
            "error",
            "handler without namespace",
            "Handler names have the form `namespace.name`.",
            "Add the namespace, e.g. `payments.charge`.",
        ),
        _r(
            "E509",
            "error",
            "handlers failed to load",
            "The plugin that provides the namespace raised an error when imported.",
            "Fix the plugin; the message shows its error.",
        ),
        # ---- step classes ----------------------------------------------------------------
        _r(
            "E601",
            "error",
            "two pivots",
            (
                "A saga has at most one `pivot` step: the single point of no return (Garcia-Molina & Salem; "
                "Richardson's compensatable -> pivot -> retriable)."
            ),
            "Keep one pivot; make the other steps compensatable (with undo) or retriable.",
        ),
        _r(
            "E602",
            "error",
            "pivot with undo",
            (
                "A pivot is the point of no return: once it completed, the saga only moves forward, so its undo "
                "would never run."
            ),
            "Remove the undo, or drop `pivot` if the step can be compensated.",
        ),
        _r(
            "E603",
            "error",
            "readonly step with undo",
            "A `readonly` step changes nothing, so there is nothing to undo.",
            "Remove the undo, or drop `readonly`.",
        ),
        _r(
            "E604",
            "error",
            "retriable step with undo",
            (
                "A `retriable` step runs after the point of no return and is retried until it succeeds; it is never "
                "compensated."
            ),
            "Remove the undo, or drop `retriable`.",
        ),
        _r(
            "E605",
            "error",
            "no undo before the pivot",
            (
                "A step with side effects runs before the pivot but has no undo (or calls a saga that cannot be "
                "fully undone); if a later step fails, its effects cannot be rolled back."
            ),
            "Give the step an undo, or mark it `readonly` if it changes nothing.",
        ),
        _r(
            "E606",
            "error",
            "undo after the pivot",
            "A compensatable step runs after the pivot, where failures are retried and nothing is compensated.",
            "Move the step before the pivot, or drop its undo and give it a retry policy.",
        ),
        _r(
            "E607",
            "error",
            "concurrent with the pivot",
            (
                "A step may run at the same time as the pivot (explicit, or the step that acts as one): it is "
                "neither safely before it (compensatable) nor after it (retriable)."
            ),
            "Order it before or after the pivot with `after`.",
        ),
        _r(
            "E608",
            "error",
            "irreversible step before compensatable ones",
            (
                "A side-effecting step without undo (or a call of a saga that cannot be fully undone) may be "
                "followed by, or run alongside, a compensatable step. If that later step fails, the saga would have "
                "to compensate but cannot undo this one. A step without undo is allowed only where every "
                "compensatable step runs before it."
            ),
            "Give the step an undo, or mark it `pivot` and order every compensatable step before it.",
        ),
        _r(
            "I609",
            "info",
            "implicit pivot or retriable step",
            (
                "A side-effecting step without undo after every compensatable step: the first one acts as the "
                "saga's pivot, the ones after it as retriable steps. Reported so the step classes are visible."
            ),
            "Mark the steps `pivot` / `retriable` to make this explicit.",
        ),
        _r(
            "W610",
            "warning",
            "no retry after the pivot",
            (
                "A step after the point of no return has no retry policy (its own or the saga's defaults), or "
                "only `retry attempts 1`; if it fails, the saga cannot compensate and is stuck."
            ),
            "Add `retry forever backoff ...` (or `retry attempts N`) to the step or to `defaults`.",
        ),
        _r(
            "W611",
            "warning",
            "retry forever before the pivot",
            (
                "A step that may still be compensated retries forever: if its failure is permanent the saga never "
                "fails, so it never compensates."
            ),
            "Bound the retry with `retry attempts N`; retry forever only after the pivot.",
        ),
        _r(
            "W612",
            "warning",
            "undo reads an output that may not exist",
            (
                "An undo argument reads its own step's output (or `result`). When the step's outcome is uncertain "
                "(it timed out, was cancelled mid-call, or the process crashed during it) the step may have acted "
                "but there is no output, so the undo gets null and cannot know what to undo. `sagalang test` shows "
                "it at the step's timeout failure point."
            ),
            (
                "Key the undo by data known before the step ran (its input, or `ctx.idempotency_key` in the handler), "
                "or read the output through `default(...)` and handle null in the undo handler."
            ),
        ),
        # ---- imports and sub-sagas ---------------------------------------------------------
        _r(
            "E701",
            "error",
            "import escapes the root",
            (
                "An `import` path leads outside the spec root (the nearest folder with pyproject.toml or .git, or "
                "`--root`)."
            ),
            "Keep imported specs inside the project, or pass `--root`.",
        ),
        _r(
            "E702",
            "error",
            "import cycle",
            "Files import each other in a cycle.",
            "Move the shared sagas into a file both import.",
        ),
        _r(
            "E703",
            "error",
            "imported file not found",
            "An `import` names a file that does not exist (paths are relative to the importing file).",
            "Fix the path.",
        ),
        _r(
            "E704",
            "error",
            "unknown saga",
            "`call` names a saga that is neither in this file nor in a file it imports.",
            "Fix the name, or import the file that defines it.",
        ),
        _r(
            "E705",
            "error",
            "recursive call",
            (
                "A saga calls itself, directly or through other sagas (also across imported files); it would never "
                "finish."
            ),
            "Break the cycle of `call` steps.",
        ),
        _r(
            "E706",
            "error",
            "unknown saga input",
            "A `call` passes an argument that the callee's inline `input { }` does not declare.",
            "Fix the argument name, or declare the input in the callee.",
        ),
        _r(
            "E707",
            "error",
            "missing saga input",
            "A `call` does not pass an input the callee requires (an inline field without default).",
            "Pass the input, or give the field a default.",
        ),
        # ---- policies -----------------------------------------------------------------------
        _r(
            "E801",
            "error",
            "retry attempts below 1",
            "`retry attempts N` counts every call including the first, so N is at least 1.",
            "Use `attempts 1` for no retry, or more.",
        ),
        _r(
            "E802",
            "error",
            "backoff multiplier below 1",
            "A backoff multiplier below 1 would make each delay shorter than the one before.",
            "Use `x1` for a constant delay, or more.",
        ),
        _r(
            "E803",
            "error",
            "backoff max below initial",
            "The cap `max D` is shorter than the initial delay, so every delay would be the cap.",
            "Raise the cap or lower the initial delay.",
        ),
        _r(
            "E804",
            "error",
            "zero timeout",
            "A timeout of zero would expire before the work starts.",
            "Use a positive duration, or drop the timeout.",
        ),
        _r(
            "E805",
            "error",
            "fan-out limit below 1",
            "`limit N` is how many items run at once; at least 1.",
            "Use a positive limit, or drop `limit` to run every item at once.",
        ),
        _r(
            "E806",
            "error",
            "saga retry attempts below 1",
            "`retry saga attempts N` counts every attempt including the first.",
            "Use at least 1.",
        ),
        _r(
            "W807",
            "warning",
            "step timeout above saga timeout",
            "A step (or default step) timeout is longer than the whole saga's timeout, which expires first.",
            "Shorten the step timeout or lengthen the saga's.",
        ),
        _r(
            "W808",
            "warning",
            "error both retried and not",
            "An error name appears in both `on` (retry these) and `except` (never retry these) of one retry policy.",
            "Keep each error name in one of the lists.",
        ),
        # ---- input and schemas -----------------------------------------------------------------
        _r(
            "E901",
            "error",
            "unknown input type",
            "Input field types are `string`, `integer`, `number`, `boolean`, `object`, `list`, `any` and `list[T]`.",
            "Use one of those types.",
        ),
        _r(
            "E902",
            "error",
            "non-constant default",
            (
                "An input field's default must be a literal (string, number, boolean, null, or a list or map of "
                "them); it is fixed before the saga runs."
            ),
            "Write the default as a literal.",
        ),
        _r(
            "E903",
            "error",
            "default of the wrong type",
            "An input field's default does not match the field's type (`null` is accepted for any type).",
            "Fix the default or the type.",
        ),
        _r(
            "E904",
            "error",
            "schema file not found",
            (
                "An `input schema` or `output schema` names a file that does not exist (paths are relative to the "
                "spec's folder)."
            ),
            "Fix the path.",
        ),
        _r(
            "E905",
            "error",
            "invalid JSON",
            "A schema file is not valid JSON; the message gives the position.",
            "Fix the JSON.",
        ),
        _r(
            "E906",
            "error",
            "invalid JSON Schema",
            (
                "A schema file is JSON but not a valid JSON Schema for its `$schema` dialect (checked with "
                "jsonschema's `check_schema`)."
            ),
            "Fix the schema at the path the message names.",
        ),
    ]
}


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One finding: a stable code, a severity, a message and where it is."""

    code: str
    message: str
    file: str = ""
    span: Span = NO_SPAN
    severity: Severity = "error"
    hint: str | None = None

    def format_line(self) -> str:
        """``path:line:col: severity[CODE]: message``."""
        where = self.file or "<input>"
        if self.span.line > 0:
            where += f":{self.span.line}:{self.span.col}"
        return f"{where}: {self.severity}[{self.code}]: {self.message}"

    def to_json(self) -> dict[str, object]:
        """The diagnostic as a JSON object (see docs/diagnostics.md for the format)."""
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": self.file,
            "line": self.span.line,
            "column": self.span.col,
            "end_line": self.span.end_line,
            "end_column": self.span.end_col,
            "hint": self.hint,
        }


def diagnostic(code: str, message: str, file: str = "", span: Span = NO_SPAN, hint: str | None = None) -> Diagnostic:
    """A Diagnostic with the catalogue's default severity for ``code``."""
    rule = CATALOGUE.get(code)
    severity: Severity = rule.severity if rule else ("warning" if code.startswith("W") else "error")
    return Diagnostic(code, message, file, span, severity, hint)


def strict(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """``--strict``: warnings become errors (infos stay infos)."""
    return [replace(d, severity="error") if d.severity == "warning" else d for d in diags]


def sort_diagnostics(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Sorted by file, then position, then code; exact duplicates dropped."""
    return sorted(set(diags), key=lambda d: (d.file, d.span.line, d.span.col, d.code, d.message))


def _style(text: str, fg: str, color: bool, bold: bool = False) -> str:
    if not color:
        return text
    codes = {"red": "31", "yellow": "33", "blue": "34", "cyan": "36", "green": "32"}
    return f"\x1b[{'1;' if bold else ''}{codes[fg]}m{text}\x1b[0m"


def format_text(
    diags: list[Diagnostic], sources: Mapping[str, str] | Callable[[str], str | None], color: bool = False
) -> str:
    """Human output: one header line per finding, the source line, a caret, a hint."""
    lookup = sources.get if isinstance(sources, Mapping) else sources
    out: list[str] = []
    colors = {"error": "red", "warning": "yellow", "info": "blue"}
    for d in diags:
        where = d.file or "<input>"
        if d.span.line > 0:
            where += f":{d.span.line}:{d.span.col}"
        label = _style(f"{d.severity}[{d.code}]", colors[d.severity], color, True)
        head = f"{_style(where, 'cyan', color)}: {label}: {d.message}"
        out.append(head)
        text = lookup(d.file)
        if text is not None and d.span.line > 0:
            snip = snippet(text, d.span)
            if snip:
                out.append(snip)
        if d.hint:
            out.append(f"  {_style('hint', 'green', color)}: {d.hint}")
    return "\n".join(out) + ("\n" if out else "")


def summary(diags: list[Diagnostic], files: int) -> str:
    """``N errors, M warnings in K files``."""
    errors = sum(d.severity == "error" for d in diags)
    warnings = sum(d.severity == "warning" for d in diags)
    return f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')} in {_plural(files, 'file')}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


_COUNT = {"type": "integer", "minimum": 0}
_POSITION = {"type": "integer", "minimum": 0}

# The JSON Schema of ``--format json`` (published in docs/diagnostics.md; tests validate against it).
JSON_FORMAT_SCHEMA: dict[str, object] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "sagalang validate --format json",
    "type": "object",
    "required": ["version", "diagnostics", "summary"],
    "properties": {
        "version": {"const": JSON_FORMAT_VERSION},
        "diagnostics": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["code", "severity", "message", "file", "line", "column", "end_line", "end_column", "hint"],
                "properties": {
                    "code": {"type": "string", "pattern": "^[EWI][0-9]{3}$"},
                    "severity": {"enum": ["error", "warning", "info"]},
                    "message": {"type": "string"},
                    "file": {"type": "string"},
                    "line": _POSITION,
                    "column": _POSITION,
                    "end_line": _POSITION,
                    "end_column": _POSITION,
                    "hint": {"type": ["string", "null"]},
                },
            },
        },
        "summary": {
            "type": "object",
            "required": ["files", "errors", "warnings", "infos"],
            "properties": {"files": _COUNT, "errors": _COUNT, "warnings": _COUNT, "infos": _COUNT},
        },
    },
}


def format_json(diags: list[Diagnostic], files: int = 0) -> str:
    """Versioned JSON: ``{"version": 1, "diagnostics": [...], "summary": {...}}``."""
    doc = {
        "version": JSON_FORMAT_VERSION,
        "diagnostics": [d.to_json() for d in diags],
        "summary": {
            "files": files,
            "errors": sum(d.severity == "error" for d in diags),
            "warnings": sum(d.severity == "warning" for d in diags),
            "infos": sum(d.severity == "info" for d in diags),
        },
    }
    return json.dumps(doc, indent=2) + "\n"


def format_sarif(diags: list[Diagnostic], tool_version: str = "0") -> str:
    """SARIF 2.1.0 for code-scanning UIs (GitHub, GitLab, VS Code SARIF viewer)."""
    levels = {"error": "error", "warning": "warning", "info": "note"}
    used = sorted({d.code for d in diags})
    rules = []
    for code in used:
        rule = CATALOGUE.get(code)
        rules.append(
            {
                "id": code,
                "name": (rule.title if rule else code).title().replace(" ", ""),
                "shortDescription": {"text": rule.title if rule else code},
                "fullDescription": {"text": rule.explanation if rule else code},
                "help": {"text": rule.fix if rule else ""},
                "defaultConfiguration": {"level": levels[rule.severity if rule else "error"]},
            }
        )
    results = []
    for d in diags:
        result: dict[str, object] = {
            "ruleId": d.code,
            "ruleIndex": used.index(d.code),
            "level": levels[d.severity],
            "message": {"text": d.message + (f" (hint: {d.hint})" if d.hint else "")},
        }
        if d.file:
            region: dict[str, int] = {}
            if d.span.line > 0:
                region = {"startLine": d.span.line, "startColumn": d.span.col}
                if d.span.end_line >= d.span.line and d.span.end_col > 0:
                    region["endLine"] = d.span.end_line
                    region["endColumn"] = d.span.end_col
            location: dict[str, object] = {"artifactLocation": {"uri": d.file.replace("\\", "/")}}
            if region:
                location["region"] = region
            result["locations"] = [{"physicalLocation": location}]
        results.append(result)
    doc = {
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "sagalang",
                        "version": tool_version,
                        "informationUri": "https://github.com/sagalang/sagalang",
                        "rules": rules,
                    }
                },
                "results": results,
            }
        ],
    }
    return json.dumps(doc, indent=2) + "\n"


def _gh_escape(text: str, prop: bool = False) -> str:
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def format_github(diags: list[Diagnostic]) -> str:
    """GitHub Actions workflow commands: ``::error file=..,line=..,col=..,title=CODE::message``."""
    kinds = {"error": "error", "warning": "warning", "info": "notice"}
    out = []
    for d in diags:
        props = []
        if d.file:
            props.append(f"file={_gh_escape(d.file, True)}")
        if d.span.line > 0:
            props.append(f"line={d.span.line}")
            props.append(f"col={d.span.col}")
            if d.span.end_line >= d.span.line and d.span.end_col > 0:
                props.append(f"endLine={d.span.end_line}")
                props.append(f"endColumn={d.span.end_col}")
        props.append(f"title={_gh_escape(d.code, True)}")
        message = d.message + (f" (hint: {d.hint})" if d.hint else "")
        out.append(f"::{kinds[d.severity]} {','.join(props)}::{_gh_escape(message)}")
    return "\n".join(out) + ("\n" if out else "")


FORMATS = ("text", "json", "sarif", "github")
