"""Helpers shared by the CLI commands: options, registry, error printing, exit codes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

__all__ = [
    "EXIT_BY_STATUS",
    "EXIT_FAILED",
    "EXIT_FINISHED",
    "EXIT_INVALID",
    "EXIT_NEEDS_HUMAN",
    "EXIT_OK",
    "exit_code_for",
    "make_registry",
    "plugin_option",
    "use_color",
    "user_errors",
]

EXIT_OK = 0
EXIT_FAILED = 1  # compensated, cancelled, validation errors, would-change
EXIT_INVALID = 3  # invalid spec or input (run)
EXIT_NEEDS_HUMAN = 4  # aborted or stuck
EXIT_FINISHED = 6  # cancel: the run had already finished, nothing was cancelled

# A run's final status -> the exit code of the command that drove or waited for it.
EXIT_BY_STATUS = {
    "completed": EXIT_OK,
    "compensated": EXIT_FAILED,
    "cancelled": EXIT_FAILED,
    "aborted": EXIT_NEEDS_HUMAN,
    "stuck": EXIT_NEEDS_HUMAN,
}

F = TypeVar("F", bound=Callable[..., Any])


def exit_code_for(status: str) -> int:
    """The exit code for a run that ended in ``status``; a run left unfinished needs a human."""
    return EXIT_BY_STATUS.get(status, EXIT_NEEDS_HUMAN)


def plugin_option(f: F) -> F:
    """``--plugin MODULE_OR_FILE`` (repeatable)."""
    return click.option(
        "--plugin",
        "plugins",
        multiple=True,
        metavar="MODULE_OR_FILE",
        help="Load handlers from a module (pkg.mod) or a .py file; repeatable.",
    )(f)


def make_registry(plugins: tuple[str, ...] | list[str]) -> Any:
    """The handler registry: entry points, [tool.sagalang] plugins, then --plugin."""
    from ..plugins import Registry

    return Registry.discover(plugins)


def use_color(stream: Any = None) -> bool:
    """Colour only on a terminal and only when NO_COLOR is unset."""
    if os.environ.get("NO_COLOR"):
        return False
    stream = stream or sys.stdout
    return bool(getattr(stream, "isatty", lambda: False)())


def user_errors(exit_code: int = EXIT_FAILED) -> Callable[[F], F]:
    """Turn SagaError (a user mistake or an environment problem) into a message and an exit code."""

    def deco(f: F) -> F:
        @wraps(f)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from ..errors import SagaError

            try:
                return f(*args, **kwargs)
            except SagaError as err:
                click.echo(f"sagalang: error: {err}", err=True)
                raise SystemExit(exit_code) from None

        return wrapper  # type: ignore[return-value]

    return deco
