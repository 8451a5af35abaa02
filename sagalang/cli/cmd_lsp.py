"""``sagalang lsp``: the language server, over stdio."""

from __future__ import annotations

import click

from .common import plugin_option

INSTALL_HINT = "sagalang: error: the language server needs pygls and lsprotocol: pip install 'sagalang[lsp]'"


@click.command()
@click.option("--stdio", is_flag=True, help="Talk over stdin/stdout (the default and only transport).")
@click.option(
    "--debounce-ms",
    type=click.IntRange(min=0),
    default=None,
    help="Wait this long after the last edit before checking the file again (default: 50).",
)
@plugin_option
def lsp(stdio: bool, debounce_ms: int | None, plugins: tuple[str, ...]) -> None:
    """Run the language server for editors, over stdio.

    Diagnostics as you type (the codes and positions of `validate`), hover,
    go to definition, references, rename, completion, formatting (`fmt`),
    the outline and quick fixes. Handlers come from the entry points and the
    nearest pyproject.toml's [tool.sagalang] plugins, as for `validate`.
    docs/editors.md shows how to set it up in VS Code, Neovim, Helix and Emacs.

    \b
    Exit status: 0 when the editor ends the session, 1 when pygls is not installed.

    \b
    Examples:
      sagalang lsp                      what an editor runs
      sagalang lsp --plugin app.handlers
    """
    try:
        import lsprotocol  # noqa: F401
        import pygls  # noqa: F401
    except ImportError:
        click.echo(INSTALL_HINT, err=True)
        raise SystemExit(1) from None
    from ..lsp import serve

    serve(plugins, None if debounce_ms is None else debounce_ms / 1000)
