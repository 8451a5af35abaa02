"""The project's error types; every error about a spec carries a position."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .diagnostics import Diagnostic
    from .source import Span

__all__ = [
    "HandlerError",
    "SagaError",
    "SagaInputError",
    "SagaSyntaxError",
    "SagaValidationError",
    "StoreError",
]


class SagaError(Exception):
    """Base of every error sagalang raises on purpose."""


class SagaSyntaxError(SagaError):
    """A spec's text does not parse; carries a diagnostic code and position."""

    def __init__(
        self,
        message: str,
        span: Span,
        code: str = "E010",
        hint: str | None = None,
        file: str = "",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.span = span
        self.code = code
        self.hint = hint
        self.file = file

    def __str__(self) -> str:
        where = f"{self.file}:" if self.file else ""
        return f"{where}{self.span.line}:{self.span.col}: {self.message}"


class SagaValidationError(SagaError):
    """One or more error diagnostics were found; all of them are attached."""

    def __init__(self, diagnostics: list[Diagnostic]) -> None:
        self.diagnostics = diagnostics
        first = diagnostics[0] if diagnostics else None
        text = first.format_line() if first is not None else "invalid spec"
        more = len(diagnostics) - 1
        super().__init__(text + (f" (and {more} more)" if more > 0 else ""))


class SagaInputError(SagaError):
    """A saga's input does not match its declaration."""


class HandlerError(SagaError):
    """A handler is missing, cannot be imported, or misbehaved."""


class StoreError(SagaError):
    """The journal store cannot be opened, read or written."""
