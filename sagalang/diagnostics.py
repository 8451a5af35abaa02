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
    "Diagnostic",
    "Severity",
    "CATALOGUE",
    "Rule",
    "JSON_FORMAT_VERSION",
    "sort_diagnostics",
    "format_text",
    "format_json",
    "format_sarif",
    "format_github",
    "FORMATS",
]

Severity = Literal["error", "warning", "info"]
JSON_FORMAT_VERSION = 1


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
        _r("E001", "error", "cannot read file", "The file does not exist or cannot be read.", "Check the path and its permissions."),
        _r("E002", "error", "not UTF-8 text", "Specs are UTF-8 text; the file holds bytes that are not valid UTF-8 (binary data or another encoding).", "Save the file as UTF-8, or pass the right file."),
        _r("E003", "error", "NUL byte", "The file contains a NUL byte, which never occurs in a text spec.", "Remove the NUL bytes; check that this is the file you meant."),
        _r("E004", "error", "file too large", "The file is larger than the parser accepts.", "Split the saga into several files joined by `import` and `call`."),
        _r("E005", "error", "not a spec", "The file is empty or holds no saga.", "Declare at least one `saga NAME { ... }`."),
        _r("E010", "error", "syntax error", "The parser met a token it did not expect here; the hint lists what it expected.", "Fix the text at the caret; the hint names the tokens that may stand there."),
        _r("E011", "error", "unexpected character", "A character that starts no token of the language.", "Remove the character or put it inside a string."),
        _r("E012", "error", "unterminated string", "A string is not closed before the end of its line.", "Close the string; write `\\n` for a line break inside it."),
        _r("E013", "error", "unterminated block", "The file ends while a `{`, `(` or `[` is still open.", "Add the missing closing bracket."),
        _r("E014", "error", "nesting too deep", "Brackets nest deeper than the parser allows.", "Split the expression into smaller parts."),
        _r("E015", "error", "invalid escape", "A backslash in a string is followed by a character that is not an escape.", "Use one of `\\n \\t \\r \\\\ \\\" \\' \\$ \\0 \\uXXXX`."),
        _r("E016", "error", "bad interpolation", "A `${` in a string is not closed, or is empty.", "Close it with `}`, or write `\\${` for a literal `${`."),
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
        head = f"{_style(where, 'cyan', color)}: {_style(f'{d.severity}[{d.code}]', colors[d.severity], color, True)}: {d.message}"
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
    plural = lambda n, w: f"{n} {w}{'' if n == 1 else 's'}"  # noqa: E731
    return f"{plural(errors, 'error')}, {plural(warnings, 'warning')} in {plural(files, 'file')}"


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
