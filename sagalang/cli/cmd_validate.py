"""``sagalang validate PATH...``: every problem of every spec, in one of four formats."""

from __future__ import annotations

import sys

import click

from .common import make_registry, plugin_option, use_color, user_errors


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "sarif", "github"]),
    default="text",
    show_default=True,
    help="Output format: text (snippet and caret), json (versioned), sarif (2.1.0) or github (annotations).",
)
@click.option("--strict", is_flag=True, help="Treat warnings as errors (exit 1 on any warning).")
@click.option(
    "--root",
    type=click.Path(file_okay=False),
    default=None,
    help="Spec root that imports may not escape (default: nearest folder with pyproject.toml or .git).",
)
@plugin_option
@user_errors()
def validate(paths: tuple[str, ...], fmt: str, strict: bool, root: str | None, plugins: tuple[str, ...]) -> None:
    """Check .saga files (or folders of them) and report every problem.

    Handlers are checked against the entry points, [tool.sagalang] plugins and
    --plugin modules; a namespace with no handlers at all is only a warning.
    The codes are documented in docs/diagnostics.md.

    \b
    Exit status: 0 when valid (warnings allowed unless --strict), 1 when any error is found.

    \b
    Examples:
      sagalang validate specs/
      sagalang validate --strict --plugin myapp.handlers specs/order.saga
      sagalang validate --format github specs/          # annotations in GitHub Actions
      sagalang validate --format sarif specs/ > out.sarif
    """
    from .. import diagnostics as D
    from ..validate import validate_paths

    registry = make_registry(plugins)
    project, diags = validate_paths(paths, registry, root)
    if strict:
        diags = D.strict(diags)
    files = len(project.files) or len(paths)
    if fmt == "json":
        click.echo(D.format_json(diags, files), nl=False)
    elif fmt == "sarif":
        from . import _version

        click.echo(D.format_sarif(diags, _version()), nl=False)
    elif fmt == "github":
        click.echo(D.format_github(diags), nl=False)
    else:
        click.echo(D.format_text(diags, project.text_of, use_color()), nl=False)
        sys.stdout.flush()  # the report before the summary when both go to one terminal
        click.echo(D.summary(diags, files), err=True)
    sys.exit(1 if any(d.severity == "error" for d in diags) else 0)
