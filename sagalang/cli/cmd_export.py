"""``sagalang export SPEC`` (the IR as JSON) and ``sagalang schema`` (that JSON's JSON Schema)."""

from __future__ import annotations

import sys

import click

from .common import make_registry, plugin_option, use_color, user_errors


@click.command()
@click.argument("spec", type=click.Path(dir_okay=False))
@click.option(
    "-o", "--output", default="-", show_default=True, metavar="FILE", help="Write the JSON here; '-' prints it."
)
@click.option("--root", type=click.Path(file_okay=False), default=None, help="Spec root that imports may not escape.")
@plugin_option
@user_errors()
def export(spec: str, output: str, root: str | None, plugins: tuple[str, ...]) -> None:
    """Print SPEC's IR (its imports and sagas) as JSON, after validating it.

    Every node is an object whose "node" names its IR class; `sagalang schema`
    prints the JSON Schema the output follows. A spec with errors is not exported:
    its diagnostics are printed (as by `sagalang validate`) on standard error.

    \b
    Exit status: 0 exported, 1 the spec has errors.
    \b
    Examples:
      sagalang export specs/examples/order.saga
      sagalang export order.saga -o order.ir.json
      sagalang export order.saga | jq '.sagas[0].body[].name'
    """
    from .. import diagnostics as D
    from ..export import dumps, export_module, load_spec_file

    project, diags, source = load_spec_file(spec, make_registry(plugins), root)
    errors = [d for d in diags if d.severity == "error"]
    # Infos (e.g. "acts as the pivot") are for `validate`; errors and warnings matter here.
    shown = [d for d in diags if d.severity != "info"]
    if shown:
        click.echo(D.format_text(shown, project.text_of, use_color(sys.stderr)), nl=False, err=True)
    if errors or source is None or source.module is None:
        click.echo(D.summary(diags, len(project.files) or 1), err=True)
        sys.exit(1)
    text = dumps(export_module(source.module))
    if output == "-":
        click.echo(text, nl=False)
    else:
        with click.open_file(output, "w", encoding="utf-8", atomic=True) as fh:
            fh.write(text)


@click.command()
@click.option(
    "-o", "--output", default="-", show_default=True, metavar="FILE", help="Write the schema here; '-' prints it."
)
@user_errors()
def schema(output: str) -> None:
    """Print the JSON Schema (draft 2020-12) of `sagalang export`'s output.

    The schema is generated from the IR's dataclasses, so it always matches the
    version of sagalang that prints it.

    \b
    Examples:
      sagalang schema > sagalang-ir.schema.json
      sagalang export order.saga > order.json && check-jsonschema --schemafile sagalang-ir.schema.json order.json
    """
    from ..export import dumps, ir_schema

    text = dumps(ir_schema())
    if output == "-":
        click.echo(text, nl=False)
    else:
        with click.open_file(output, "w", encoding="utf-8", atomic=True) as fh:
            fh.write(text)
