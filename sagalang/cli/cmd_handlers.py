"""``sagalang handlers``: every registered handler, where it comes from, its parameters."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .common import EXIT_FAILED, make_registry, plugin_option

__all__ = ["handlers"]


def _params(info: Any) -> str:
    if info.params is None:
        return "**kwargs"
    return ", ".join(p.name + ("" if p.required else "?") for p in info.params)


@click.command()
@plugin_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def handlers(plugins: tuple[str, ...], as_json: bool) -> None:
    """List the handlers specs can call: entry points, [tool.sagalang] plugins and --plugin.

    Parameters marked ``?`` are optional; ``ctx`` (the call's context) is not listed.

    \b
    Examples:
      sagalang handlers
      sagalang handlers --plugin my_handlers.py --json
    """
    from ..errors import SagaError

    try:
        found = make_registry(plugins).all()
    except SagaError as err:
        click.echo(f"sagalang: error: {err}", err=True)
        sys.exit(EXIT_FAILED)
    if as_json:
        doc = [
            {
                "name": h.info.name,
                "kind": h.info.kind,
                "async": h.info.is_async,
                "params": None
                if h.info.params is None
                else [{"name": p.name, "required": p.required, "type": p.annotation} for p in h.info.params],
                "source": h.info.source,
                "distribution": h.info.distribution,
                "doc": h.info.doc,
            }
            for h in found
        ]
        click.echo(json.dumps(doc, indent=2))
        return
    if not found:
        click.echo("no handlers registered (add --plugin MODULE, [tool.sagalang] plugins, or an entry point)")
        return
    rows = [
        (
            h.info.name,
            h.info.kind + (" async" if h.info.is_async else ""),
            f"({_params(h.info)})",
            h.info.source + (f" [{h.info.distribution}]" if h.info.distribution else ""),
        )
        for h in found
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for r in rows:
        click.echo(f"{r[0]:<{widths[0]}}  {r[1]:<{widths[1]}}  {r[2]:<{widths[2]}}  {r[3]}".rstrip())
