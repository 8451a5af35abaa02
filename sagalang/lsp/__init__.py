"""sagalang's language server (``sagalang lsp``): diagnostics, hover, navigation, completion, formatting.

It speaks the Language Server Protocol over stdio, built on pygls (the
``lsp`` extra: ``pip install 'sagalang[lsp]'``). Every answer comes from the
same code as the command line: the loader and validator for diagnostics,
``plan`` for what a step's failure undoes, ``fmt`` for formatting.
"""

from __future__ import annotations

__all__ = ["serve"]


def serve(plugins: tuple[str, ...] = (), debounce: float | None = None) -> None:
    """Run the language server on stdin/stdout until the client exits."""
    from .server import DEFAULT_DEBOUNCE, build_server

    build_server(plugins, DEFAULT_DEBOUNCE if debounce is None else debounce).start_io()
