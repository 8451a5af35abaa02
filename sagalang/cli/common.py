"""Helpers shared by the CLI commands: options, registry, error printing, exit codes."""

from __future__ import annotations

import contextlib
import gc
import os
import sys
import threading
from collections.abc import Callable, Iterator
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
    "paused_gc",
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


_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextlib.contextmanager
def paused_gc() -> Iterator[None]:
    """The cyclic garbage collector off while a spec-only command runs (re-entrant, thread-safe).

    Parsing and validating a large spec allocates an acyclic IR in one burst;
    each collection would rescan all of it, which makes those commands grow
    faster than the file. They end right after, so nothing waits to be
    collected. This is the application's choice, made here for the CLI only:
    the library never touches the collector.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()
