"""``sagalang fmt PATH...``."""

from __future__ import annotations

import sys

import click

from .common import use_color, user_errors


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@click.option("--check", is_flag=True, help="Write nothing; list the files that would change and exit 1 if any.")
@click.option("--diff", "show_diff", is_flag=True, help="Write nothing; print a unified diff of the changes.")
@user_errors()
def fmt(paths: tuple[str, ...], check: bool, show_diff: bool) -> None:
    """Rewrite .saga files (or folders of them) in the canonical layout, comments kept.

    \b
    Exit status: 0 when done (or, with --check, nothing would change);
    1 when a file does not parse or, with --check, would change.
    \b
    Examples:
      sagalang fmt specs/                  format every spec in place
      sagalang fmt --check specs/          in CI: fail when a spec is not formatted
      sagalang fmt --diff order.saga       show what would change
    """
    from .. import diagnostics as D
    from ..fmt import format_file, write_file
    from ..project import find_spec_files

    files, diags = find_spec_files(paths)
    texts: dict[str, str] = {}
    changed: list[str] = []
    unchanged = 0
    for path in files:
        result = format_file(path)
        if result.text is not None:
            texts[result.display] = result.text
        if result.diagnostics:
            diags.extend(result.diagnostics)
            continue
        if not result.changed:
            unchanged += 1
            continue
        changed.append(result.display)
        if show_diff:
            click.echo(result.diff(), nl=False)
        if check:
            click.echo(f"would reformat {result.display}")
        elif not show_diff:
            problem = write_file(result)
            if problem is not None:
                diags.append(problem)
                changed.pop()
                continue
            click.echo(f"reformatted {result.display}")
    errors = D.sort_diagnostics(diags)
    if errors:
        click.echo(D.format_text(errors, texts.get, use_color(sys.stderr)), nl=False, err=True)
    verb = "would be reformatted" if check or show_diff else "reformatted"
    summary = f"{_files(len(changed))} {verb}, {_files(unchanged)} left unchanged"
    if errors:
        summary += f", {_files(len({d.file for d in errors}))} with errors"
    click.echo(summary, err=True)
    sys.exit(1 if errors or (check and changed) else 0)


def _files(n: int) -> str:
    return f"{n} file{'' if n == 1 else 's'}"
