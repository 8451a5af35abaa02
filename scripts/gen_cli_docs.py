"""Generate the CLI reference (docs/cli-reference.md) from the click commands themselves.

Run it directly to write the Markdown file::

    python scripts/gen_cli_docs.py                 # writes docs/cli-reference.md
    python scripts/gen_cli_docs.py -o -            # prints it
    python scripts/gen_cli_docs.py --check         # exit 1 if docs/cli-reference.md is stale

It is also a MkDocs hook (``hooks:`` in mkdocs.yml): every site build renders
the page afresh from ``sagalang.cli.COMMANDS``, so the reference can never lag
behind the commands' ``--help``.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from pathlib import Path
from typing import Any

import click

ROOT = Path(__file__).resolve().parent.parent
PAGE = "cli-reference.md"
OUTPUT = ROOT / "docs" / PAGE

INTRO = """\
# CLI reference

This page is generated from the commands' own `--help` by `scripts/gen_cli_docs.py`
on every docs build; `sagalang COMMAND --help` prints the same text.

Every command accepts `-h`/`--help`. Colour is used only on a terminal and never
when `NO_COLOR` is set. The run store defaults to `sqlite:///.sagalang/sagalang.db`
under the working directory, or `$SAGALANG_STORE` when set. Shell completion is
described in [Shell completion](completion.md).
"""


def _paragraphs(text: str) -> list[str]:
    """Split click help text into paragraphs (blank-line separated, dedented)."""
    text = textwrap.dedent(text).strip("\n")
    out: list[str] = []
    for block in text.split("\n\n"):
        if block.strip():
            out.append(textwrap.dedent(block).strip("\n"))
    return out


def _help_markdown(help_text: str) -> list[str]:
    """Click help as Markdown: prose paragraphs, ``\\b`` blocks verbatim, examples as shell blocks."""
    lines: list[str] = []
    for para in _paragraphs(help_text):
        verbatim = para.startswith("\b")
        para = para.lstrip("\b").strip("\n")
        # A \b marker may also stand alone on a line inside one paragraph.
        chunks = [c for c in para.split("\n\b\n") if c.strip()]
        for chunk in chunks:
            chunk = textwrap.dedent(chunk.replace("\b\n", "")).strip("\n")
            first, _, rest = chunk.partition("\n")
            if verbatim and first.rstrip().endswith(":") and rest.strip():
                body = textwrap.dedent(rest).rstrip()
                # Shell highlighting only when trailing explanations are shell comments.
                shell = all("  " not in ln.strip() or "#" in ln for ln in body.splitlines())
                lines += [f"**{first.strip().rstrip(':')}**", "", "```sh" if shell else "```text", body, "```", ""]
            elif verbatim:
                kept = [ln.strip() for ln in chunk.splitlines() if ln.strip()]
                if len(kept) == 1:
                    lines += [kept[0], ""]
                else:
                    lines += ["```text", textwrap.dedent(chunk).rstrip(), "```", ""]
            else:
                lines += [" ".join(ln.strip() for ln in chunk.splitlines()), ""]
    return lines


def _escape(text: str) -> str:
    """Escape Markdown-significant characters in option help prose."""
    return text.replace("<", "&lt;").replace("*", r"\*").replace("_", r"\_")


def _command(cmd: click.Command, ctx: click.Context, path: list[str], depth: int) -> list[str]:
    """One command (and, for a group, its subcommands) as Markdown."""
    title = " ".join(path)
    anchor = "-".join(path)
    lines = [f"{'#' * depth} `{title}` {{#{anchor}}}", ""]
    usage = " ".join([title, *cmd.collect_usage_pieces(ctx)])
    lines += ["```text", f"Usage: {usage}", "```", ""]
    lines += _help_markdown(cmd.help or cmd.short_help or "")
    args = [p for p in cmd.get_params(ctx) if isinstance(p, click.Argument)]
    opts = [p for p in cmd.get_params(ctx) if isinstance(p, click.Option) and not p.hidden]
    if args:
        lines += ["**Arguments**", ""]
        for a in args:
            # click >= 8.2 passes the context to make_metavar; older versions take none.
            meta = a.make_metavar(ctx) if _takes_ctx(a.make_metavar) else a.make_metavar()  # type: ignore[call-arg]
            req = "required" if a.required else "optional"
            many = ", repeatable" if a.nargs == -1 else ""
            lines.append(f"- `{meta}` ({req}{many})")
        lines.append("")
    if opts:
        lines += ["**Options**", ""]
        for o in opts:
            record = o.get_help_record(ctx)
            if record is None:
                continue
            names, help_text = record
            lines.append(f"- `{names}`" + (f": {_escape(help_text)}" if help_text else ""))
        lines.append("")
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = click.Context(sub, info_name=name, parent=ctx)
            lines += _command(sub, sub_ctx, [*path, name], min(depth + 1, 4))
    return lines


def _takes_ctx(method: Any) -> bool:
    import inspect

    return "ctx" in inspect.signature(method).parameters


def render() -> str:
    """The whole CLI reference page as Markdown."""
    from sagalang.cli import COMMANDS, main

    ctx = click.Context(main, info_name="sagalang", **main.context_settings)
    lines = [INTRO]
    lines += ["## `sagalang`", "", "```text", f"Usage: sagalang {' '.join(main.collect_usage_pieces(ctx))}", "```", ""]
    lines += _help_markdown(main.help or "")
    lines += ["**Commands**", ""]
    for name in sorted(COMMANDS):
        cmd = main.get_command(ctx, name)
        if cmd is None:
            continue
        lines.append(f"- [`{name}`](#sagalang-{name}): {_escape(cmd.get_short_help_str(80))}")
    lines.append("")
    for name in sorted(COMMANDS):
        cmd = main.get_command(ctx, name)
        if cmd is None:
            continue
        sub_ctx = click.Context(cmd, info_name=name, parent=ctx)
        lines += _command(cmd, sub_ctx, ["sagalang", name], 2)
    return "\n".join(lines).rstrip() + "\n"


# ---- MkDocs hook --------------------------------------------------------------
def on_files(files: Any, config: Any) -> Any:
    """MkDocs hook: add the generated page (replacing a stale copy on disk, if any)."""
    from mkdocs.structure.files import File

    stale = files.get_file_from_path(PAGE)
    if stale is not None:
        files.remove(stale)
    files.append(File.generated(config, PAGE, content=render()))
    return files


def main(argv: list[str] | None = None) -> int:
    """Write (or check) the CLI reference."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", default=str(OUTPUT), help="file to write, or - for stdout")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file differs from the commands")
    args = parser.parse_args(argv)
    text = render()
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    out = Path(args.output)
    if args.check:
        current = out.read_text(encoding="utf-8") if out.is_file() else ""
        if current != text:
            print(f"{out} is out of date; run python scripts/gen_cli_docs.py", file=sys.stderr)
            return 1
        return 0
    out.write_text(text, encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
