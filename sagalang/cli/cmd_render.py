"""``sagalang render SPEC -o FILE``: draw a saga (and optionally a run of it)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import use_color, user_errors


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    metavar="FILE",
    help="Where to write the diagram; '-' prints text formats to standard output.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["dot", "svg", "png", "mermaid"]),
    default=None,
    help="Output format (default: from the file suffix .dot/.gv, .svg, .png, .mmd/.mermaid/.md; else dot).",
)
@click.option(
    "--saga", "saga_name", default=None, metavar="NAME", help="Which saga to draw (default: the first in SPEC)."
)
@click.option("--lr", is_flag=True, help="Lay the graph out left to right (better for long sagas).")
@click.option("--collapse", is_flag=True, help="Draw parallel blocks, fan-outs and sub-sagas as single nodes.")
@click.option("--run", "run_id", default=None, metavar="ID", help="Colour the steps by the state of this run.")
@click.option(
    "--store",
    default=None,
    envvar="SAGALANG_STORE",
    metavar="URL",
    help="Journal store holding the run (default: $SAGALANG_STORE or sqlite:///.sagalang/sagalang.db).",
)
@click.option("--root", type=click.Path(file_okay=False), default=None, help="Spec root that imports may not escape.")
@user_errors()
def render(
    spec: str,
    output: str,
    fmt: str | None,
    saga_name: str | None,
    lr: bool,
    collapse: bool,
    run_id: str | None,
    store: str | None,
    root: str | None,
) -> None:
    """Draw SPEC as DOT, SVG, PNG or Mermaid; with --run, colour a run's progress.

    \b
    SVG and PNG need Graphviz's `dot` (apt-get install graphviz / brew install graphviz).
    Exit status: 0 on success, 1 when the spec is invalid or the diagram cannot be made.
    \b
    Examples:
      sagalang render order.saga -o order.svg
      sagalang render order.saga -o - --format mermaid          # print Mermaid
      sagalang render big.saga -o big.png --lr --collapse
      sagalang render order.saga -o run.svg --run 7f3a --store sqlite:///runs.db
    """
    from .. import diagnostics as D
    from ..journal import default_store_url
    from ..render import RenderError, format_for_path, load_run_state, load_spec
    from ..render import render as draw

    if fmt is None:
        fmt = "dot" if output == "-" else format_for_path(output)
        if fmt is None:
            raise RenderError(f"cannot tell the format from {output!r}: use --format dot|svg|png|mermaid")
    if output == "-" and fmt == "png" and sys.stdout.isatty():
        raise RenderError("refusing to write PNG to a terminal: use -o FILE.png")
    project, diags, library = load_spec(spec, root)
    if any(d.severity == "error" for d in diags):
        # Report like `sagalang validate` (every finding, warnings included), then give up.
        click.echo(D.format_text(diags, project.text_of, use_color(sys.stderr)), nl=False, err=True)
        click.echo(D.summary(diags, len(project.files) or 1), err=True)
        sys.exit(1)
    run = load_run_state(store or default_store_url(), run_id) if run_id is not None else None
    result = draw(library, run, fmt, rankdir="LR" if lr else "TB", collapse=collapse, saga=saga_name)
    if isinstance(result, str) and output != "-" and Path(output).suffix.lower() == ".md":
        result = f"```mermaid\n{result}```\n"
    if output == "-":
        if isinstance(result, bytes):
            sys.stdout.flush()
            sys.stdout.buffer.write(result)
            sys.stdout.buffer.flush()
        else:
            click.echo(result, nl=False)
        return
    try:
        if isinstance(result, bytes):
            Path(output).write_bytes(result)
        else:
            Path(output).write_text(result, encoding="utf-8")
    except OSError as err:
        raise RenderError(f"cannot write {output}: {err.strerror or err}") from None
    click.echo(f"wrote {output} ({fmt})", err=True)
