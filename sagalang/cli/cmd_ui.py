"""``sagalang ui``: a web view of the store's runs (read-only unless ``--allow-actions``)."""

from __future__ import annotations

import importlib.util
import sys

import click

from .cmd_ops import store_option
from .common import EXIT_FAILED, plugin_option, user_errors

__all__ = ["ui"]

_NEEDS = ("starlette", "jinja2", "uvicorn")


def missing_dependencies() -> list[str]:
    """The packages of the ``ui`` extra that are not installed."""
    return [name for name in _NEEDS if importlib.util.find_spec(name) is None]


@click.command()
@store_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True, help="Port to listen on.")
@click.option(
    "--allow-actions", is_flag=True, help="Offer cancel and resume on the run pages (each confirmed and journaled)."
)
@click.option(
    "--token",
    envvar="SAGALANG_UI_TOKEN",
    default=None,
    metavar="TOKEN",
    help="Require this token on every request (default: $SAGALANG_UI_TOKEN); needed when --host is not loopback.",
)
@plugin_option
@user_errors()
def ui(
    store_url: str | None, host: str, port: int, allow_actions: bool, token: str | None, plugins: tuple[str, ...]
) -> None:
    """Serve a web view of the runs in the store: list, filters, run pages, sagas.

    It is read-only unless --allow-actions is given; then a run page offers
    cancel and resume, each confirmed, protected against cross-site requests
    and journaled with the operator and a reason. Runs this server takes over
    are driven with the handlers of --plugin and [tool.sagalang] plugins.
    Every page and asset is served from the package: it works offline.

    \b
    Exit status: 0 when stopped (Ctrl-C), 1 when it cannot start.
    \b
    Examples:
      sagalang ui
      sagalang ui --store sqlite:///ops/journal.db --port 9000
      SAGALANG_UI_TOKEN=$(openssl rand -hex 16) sagalang ui --host 0.0.0.0 --allow-actions
    """
    missing = missing_dependencies()
    if missing:
        click.echo(f"sagalang: error: `sagalang ui` needs {', '.join(missing)}: pip install 'sagalang[ui]'", err=True)
        sys.exit(EXIT_FAILED)
    from ..journal import default_store_url
    from ..ui.config import UIConfig
    from ..ui.serve import serve

    config = UIConfig(store_url or default_store_url(), host, port, allow_actions, token, plugins)
    problem = config.problem()
    if problem is not None:
        click.echo(f"sagalang: error: {problem}", err=True)
        sys.exit(EXIT_FAILED)
    serve(config, announce=lambda line: click.echo(line, err=True))
