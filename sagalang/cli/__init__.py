"""The ``sagalang`` command line: a click group whose commands load on demand.

Each command lives in its own module under ``sagalang/cli/`` and holds no
logic beyond parsing arguments and printing results. Commands are imported
only when invoked, so ``sagalang validate`` does not pay for the interpreter.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from .common import paused_gc

__all__ = ["COMMANDS", "SPEC_ONLY", "main"]

# command name -> "module:attribute"
COMMANDS: dict[str, str] = {
    "test": "sagalang.cli.cmd_test:test",
    "validate": "sagalang.cli.cmd_validate:validate",
    "run": "sagalang.cli.cmd_run:run",
    "handlers": "sagalang.cli.cmd_handlers:handlers",
    "fmt": "sagalang.cli.cmd_fmt:fmt",
    "export": "sagalang.cli.cmd_export:export",
    "schema": "sagalang.cli.cmd_export:schema",
    "plan": "sagalang.cli.cmd_plan:plan",
    "init": "sagalang.cli.cmd_init:init",
    "render": "sagalang.cli.cmd_render:render",
    "list": "sagalang.cli.cmd_ops:list_runs",
    "show": "sagalang.cli.cmd_ops:show",
    "history": "sagalang.cli.cmd_ops:history",
    "resume": "sagalang.cli.cmd_ops:resume",
    "cancel": "sagalang.cli.cmd_ops:cancel",
    "submit": "sagalang.cli.cmd_worker:submit",
    "worker": "sagalang.cli.cmd_worker:worker",
    "migrate": "sagalang.cli.cmd_worker:migrate",
    "lsp": "sagalang.cli.cmd_lsp:lsp",
    "ui": "sagalang.cli.cmd_ui:ui",
}
# Commands that read specs, answer and end: no cycles to collect (see common.paused_gc).
SPEC_ONLY = frozenset({"validate", "fmt", "plan", "export", "render"})


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = COMMANDS.get(cmd_name)
        if target is None:
            return None
        module, _, attr = target.partition(":")
        command: click.Command = getattr(importlib.import_module(module), attr)
        return command


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sagalang")
    except PackageNotFoundError:
        return "0+unknown"


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(_version(), "--version", prog_name="sagalang")
def main(**_: Any) -> None:
    """sagalang: declare sagas in .saga files, check them, run them, draw them.

    \b
    Examples:
      sagalang validate specs/                 check every spec in a folder
      sagalang run order.saga --input in.json  run a saga
      sagalang render order.saga -o order.svg  draw it
    """
    ctx = click.get_current_context()
    if ctx.invoked_subcommand in SPEC_ONLY:
        ctx.with_resource(paused_gc())
