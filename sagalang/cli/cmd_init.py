"""``sagalang init [DIR]``."""

from __future__ import annotations

from pathlib import Path

import click

from .common import user_errors


@click.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default=None, help="The saga's name (default: derived from DIR's name).")
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
@user_errors()
def init(directory: Path, name: str | None, force: bool) -> None:
    """Create a new saga project in DIR (default: the current folder).

    The project holds a spec (sagas/NAME.saga), its handlers (handlers.py,
    registered through [tool.sagalang] plugins in pyproject.toml), an input file
    and a pytest test; it passes validate, run and test as created.

    \b
    Examples:
      sagalang init signup                  # a new folder signup/ with saga `signup`
      sagalang init . --name onboarding     # in the current folder
    """
    from ..templates import scaffold

    written = scaffold(directory, name, force)
    for path in written:
        click.echo(f"created {path}")
    spec = next(p for p in written if p.suffix == ".saga")
    inp = next(p for p in written if p.name.endswith(".input.json"))
    rel = Path(spec.parent.name)
    click.echo("\nNext steps:")
    if directory != Path("."):
        click.echo(f"  cd {directory}")
    click.echo(f"  sagalang validate {rel}/")
    click.echo(f"  sagalang run {rel / spec.name} --input {rel / inp.name}")
    click.echo(f"  sagalang test {rel / spec.name}")
    click.echo("  pytest")
