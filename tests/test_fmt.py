"""The canonical formatter (sagalang.fmt) and the ``sagalang fmt`` command."""

from __future__ import annotations

import os
import stat
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from sagalang import ir
from sagalang.cli import main
from sagalang.errors import SagaSyntaxError
from sagalang.fmt import format_duration, format_expr, format_module, format_source
from sagalang.parser import parse, parse_expr

ROOT = Path(__file__).resolve().parent.parent

MESSY = """\
# header comment
saga   shop version '1.0'{
  step a{do x.y(a:1,b:'two',)   undo x.z()}   # after a
  output {total: a.total}
  on failure { retry saga attempts 2 analyze ops.diagnose }
  description "Shop"
  timeout 60000ms
  input{ id: string, secret: string secret, n: integer = 1+2 }
  defaults { retry attempts 3 backoff 1.5s x 2 max 120s  timeout 1500ms }
  compensation { timeout 1h order reverse }
  # before b
  pivot step b after a when (a.total > 10) and not input.free {
    retry forever
    do x.w(items: [1, 2,], m: {k: "v", "a b": null})
    # dangling in b
  }
}
import "lib.saga"
# the end
"""

CANONICAL = """\
import "lib.saga"

# header comment
saga shop version "1.0" {
    description "Shop"

    input {
        id: string,
        secret: string secret
        n: integer = 1 + 2
    }

    defaults {
        timeout 1500ms
        retry attempts 3 backoff 1500ms x2 max 2m
    }

    timeout 1m

    compensation {
        order reverse
        timeout 1h
    }

    on failure {
        retry saga attempts 2 analyze ops.diagnose
    }

    step a {  # after a
        do x.y(a: 1, b: "two")
        undo x.z()
    }

    # before b
    pivot step b after a when a.total > 10 and not input.free {
        do x.w(items: [1, 2], m: {k: "v", "a b": null})
        retry forever
        # dangling in b
    }

    output {
        total: a.total
    }
}

# the end
"""


def test_messy_spec_gets_the_canonical_layout() -> None:
    assert format_source(MESSY) == CANONICAL
    assert format_source(CANONICAL) == CANONICAL
    assert parse(CANONICAL) == parse(MESSY)


def test_every_example_spec_round_trips() -> None:
    specs = sorted((ROOT / "specs" / "examples").rglob("*.saga"))
    for path in specs:
        text = path.read_text(encoding="utf-8")
        out = format_source(text, str(path))
        assert format_source(out) == out, path
        assert parse(out) == parse(text), path


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        *[(0, "0s"), (1, "1ms"), (999, "999ms"), (1000, "1s"), (1500, "1500ms"), (60_000, "1m"), (90_000, "90s")],
        *[(120_000, "2m"), (3_600_000, "1h"), (5_400_000, "90m"), (86_400_000, "1d"), (172_800_000, "2d")],
    ],
)
def test_durations_use_the_largest_exact_unit(ms: int, text: str) -> None:
    assert format_duration(ms) == text
    assert parse(f"saga s {{ timeout {text} }}").sagas[0].timeout == ir.Duration(ms)


@pytest.mark.parametrize(
    ("written", "printed"),
    [("x2", "x2"), ("x 2", "x2"), ("x2.0", "x2"), ("x1.50", "x1.5"), ("x\t3", "x3"), ("x0.00001", "x0.00001")],
)
def test_multipliers(written: str, printed: str) -> None:
    out = format_source(f"saga s {{ defaults {{ retry attempts 2 backoff 1s {written} }} }}")
    assert f"backoff 1s {printed}\n" in out


@pytest.mark.parametrize(
    ("written", "printed"),
    [
        # same-precedence nesting is kept apart in the IR, so its parentheses stay
        ("(a + b) + c", "(a + b) + c"),
        ("a + (b + c)", "a + (b + c)"),
        ("a + b + c", "a + b + c"),
        ("a - (b - c)", "a - (b - c)"),
        ("(a * b) + c", "a * b + c"),
        ("a + (b * c)", "a + b * c"),
        ("(a + b) * c", "(a + b) * c"),
        ("(a or b) and c", "(a or b) and c"),
        ("a or (b and c)", "a or b and c"),
        ("(a and b) and c", "(a and b) and c"),
        ("not (a == b)", "not a == b"),
        ("(not a) and b", "not a and b"),
        ("(not a) + 1", "(not a) + 1"),
        ("1 + (not a)", "1 + not a"),
        ("(1 + (not a)) < 2", "1 + (not a) < 2"),
        ("not (not a)", "not (not a)"),
        ("not not a", "not not a"),
        ("-(-x)", "-(-x)"),
        ("- -x", "--x"),
        ("-(a + b)", "-(a + b)"),
        ("-(not x)", "-not x"),
        ("-(not x) * 2", "-(not x) * 2"),
        ("(a < b) == c", "(a < b) == c"),
        ("a == (b < c)", "a == (b < c)"),
        ("(a.b).c", "(a.b).c"),
        ("a['b']", "a.b"),
        ('a["b c"][0]', 'a["b c"][0]'),
        ("(-x).y", "(-x).y"),
        ("f(x).y.z", "f(x).y.z"),
        ("[1, 2,][0]", "[1, 2][0]"),
        ("(null).a", "(null).a"),
        ("{a: 1, 'b c': 2}.a", '{a: 1, "b c": 2}.a'),
        ("1e999", "1e999"),
        ("2.50", "2.5"),
        ("1e3", "1000.0"),
    ],
)
def test_expressions_get_the_fewest_parentheses(written: str, printed: str) -> None:
    e = parse_expr(written)
    assert format_expr(e) == printed
    assert parse_expr(printed) == e


@pytest.mark.parametrize(
    ("written", "printed"),
    [
        ("'plain'", '"plain"'),
        ("'say \"hi\"'", '"say \\"hi\\""'),
        ('"it\'s"', '"it\'s"'),
        ('"tab\\tnew\\nline\\\\"', '"tab\\tnew\\nline\\\\"'),
        ('"\\u0041\\u00e9"', '"Aé"'),
        ('"\\u0000\\u200b"', '"\\0\\u200b"'),
        ('"cost: \\${x}"', '"cost: \\${x}"'),
        ('"\\u0024{x}"', '"\\${x}"'),
        ('"a $ b {"', '"a $ b {"'),
        ('"Paid ${quote.total} now"', '"Paid ${quote.total} now"'),
        ("'Paid ${ quote . total }'", '"Paid ${quote.total}"'),
        ("\"${x['k']}-${'lit'}\"", "\"${x.k}-${'lit'}\""),
        # two string parts in a row: the IR cannot tell text from ${'...'}, so one of them stays interpolated
        ("\"${'lit'}-${x}\"", "\"lit${'-'}${x}\""),
        ("\"${''}\"", "\"${''}\""),
        ('"${\'a\\"b\'}"', '"${\'a\\"b\'}"'),
        ('"${{a: 1}}"', '"${{a: 1}}"'),
        ("\"${f('x${y}')}\"", "\"${f('x${y}')}\""),
        ('"\\\\${x}"', '"\\\\${x}"'),
        ('"\\\\\\${x"', '"\\\\\\${x"'),
    ],
)
def test_strings_are_double_quoted_and_round_trip(written: str, printed: str) -> None:
    e = parse_expr(written)
    assert format_expr(e) == printed
    assert parse_expr(printed) == e


def test_names_that_are_keywords_stay_names() -> None:
    text = textwrap.dedent(
        """\
        saga step {
            input {
                order: string,
                secret: string secret,
                and: integer = input.order
            }

            step limit for for in input.order limit 2 after after when input.limit {
                do do.do(step: input.order)
            }

            output {
                or: limit,
                not: 1
            }
        }
        """
    )
    assert format_source(text) == text
    saga = parse(text).sagas[0]
    assert [f.name for f in saga.input.fields] == ["order", "secret", "and"]  # type: ignore[union-attr]
    assert saga.steps()[0].name == "limit"


def test_format_module_prints_hand_built_ir() -> None:
    module = ir.Module(
        imports=(ir.Import("lib.saga"),),
        sagas=(
            ir.Saga(
                name="s",
                body=(
                    ir.Parallel(
                        (
                            ir.Step("a", do=ir.Invocation("h.a", (ir.Arg("n", ir.Literal(1)),))),
                            ir.Step("b", kind="readonly", use=ir.Invocation("h.b")),
                        )
                    ),
                    ir.Step(
                        "c",
                        call=ir.SagaCall("other", (ir.Arg("v", ir.Path(ir.Name("a"), (ir.Literal("x"),))),)),
                        when=ir.BoolOp("or", (ir.Name("p"), ir.Unary(("not",), ir.Name("q")))),
                        timeout=ir.Duration(2000),
                    ),
                ),
            ),
        ),
    )
    expected = textwrap.dedent(
        """\
        import "lib.saga"

        saga s {
            parallel {
                step a {
                    do h.a(n: 1)
                }

                readonly step b {
                    use h.b()
                }
            }

            step c when p or not q {
                call other(v: a.x)
                timeout 2s
            }
        }
        """
    )
    assert format_module(module) == expected
    assert parse(expected) == module


def test_empty_blocks_and_empty_file() -> None:
    assert format_source("") == ""
    assert format_source("  \n\n") == ""
    assert format_source("saga s{}") == "saga s {}\n"
    assert format_source("saga s { step a { } parallel { } }") == "saga s {\n    step a {}\n\n    parallel {}\n}\n"
    assert format_source("# only a comment\n\n# and another") == "# only a comment\n# and another\n"


COMMENTED = """\
# file header
import "a.saga"  # why a

saga s {  # about s
    # before the description
    description "d"

    step a {
        do h.x(
            # explains n
            n: 1,  # trailing inside a call
            m: 2)  # after the call
    }  # after a's closing brace

    step b { do h.y() }  # one-liner
    # end of saga body
}
# end of file
"""

COMMENTED_OUT = """\
# file header
import "a.saga"  # why a

saga s {  # about s
    # before the description
    description "d"

    step a {
        # explains n
        # trailing inside a call
        # after the call
        do h.x(n: 1, m: 2)
    }  # after a's closing brace

    step b {  # one-liner
        do h.y()
    }

    # end of saga body
}

# end of file
"""


def test_comments_are_kept_and_placed() -> None:
    assert format_source(COMMENTED) == COMMENTED_OUT
    assert format_source(COMMENTED_OUT) == COMMENTED_OUT


def test_duplicate_clause_is_refused_rather_than_dropped() -> None:
    with pytest.raises(SagaSyntaxError) as info:
        format_source("saga s {\n    timeout 1s\n    timeout 2s\n}\n", "dup.saga")
    assert info.value.code == "E107"
    assert (info.value.span.line, info.value.span.col) == (3, 13)
    assert str(info.value).startswith("dup.saga:3:13:")


def test_bad_input_raises_syntax_error_with_position() -> None:
    with pytest.raises(SagaSyntaxError) as info:
        format_source('saga s {\n    step a { do h.x(v: "open) }\n}\n', "bad.saga")
    assert info.value.code == "E012"
    assert (info.value.span.line, info.value.span.col) == (2, 24)
    assert info.value.file == "bad.saga"


def test_large_spec_formats() -> None:
    steps = "\n".join(
        f"  step s{i} {{ do h.x(n: {i}, v: input.v * 2 + {i}) undo h.y(r: s{i}.id) }}" for i in range(1000)
    )
    text = f"saga big {{\n{steps}\n}}\n"
    out = format_source(text)
    assert out.count("\n    step s") == 1000
    assert parse(out) == parse(text)


# ---- the command ----------------------------------------------------------------


def _write(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path


def test_cli_rewrites_files_in_place(tmp_path: Path, runner: CliRunner) -> None:
    messy = _write(tmp_path / "messy.saga", MESSY)
    (tmp_path / "sub").mkdir()
    clean = _write(tmp_path / "sub" / "clean.saga", CANONICAL)
    before = clean.stat().st_mtime_ns
    result = runner.invoke(main, ["fmt", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert messy.read_text(encoding="utf-8") == CANONICAL
    assert clean.stat().st_mtime_ns == before  # unchanged files are not rewritten
    assert "reformatted" in result.output and "messy.saga" in result.output
    assert not list(tmp_path.rglob("*.tmp"))


def test_cli_check_lists_files_that_would_change(tmp_path: Path, runner: CliRunner) -> None:
    messy = _write(tmp_path / "messy.saga", MESSY)
    _write(tmp_path / "clean.saga", CANONICAL)
    result = runner.invoke(main, ["fmt", "--check", str(tmp_path)])
    assert result.exit_code == 1
    assert "would reformat" in result.output and "messy.saga" in result.output
    assert "clean.saga" not in result.stdout
    assert messy.read_text(encoding="utf-8") == MESSY
    messy.write_text(CANONICAL, encoding="utf-8")
    assert runner.invoke(main, ["fmt", "--check", str(tmp_path)]).exit_code == 0


def test_cli_diff_prints_and_does_not_write(tmp_path: Path, runner: CliRunner) -> None:
    messy = _write(tmp_path / "messy.saga", MESSY)
    result = runner.invoke(main, ["fmt", "--diff", str(messy)])
    assert result.exit_code == 0
    assert "--- a/" in result.stdout and "+++ b/" in result.stdout
    assert "-saga   shop version '1.0'{" in result.stdout
    assert '+saga shop version "1.0" {' in result.stdout
    assert messy.read_text(encoding="utf-8") == MESSY
    assert runner.invoke(main, ["fmt", "--diff", "--check", str(messy)]).exit_code == 1


def test_cli_reports_a_file_that_does_not_parse_and_leaves_it(tmp_path: Path, runner: CliRunner) -> None:
    bad = _write(tmp_path / "bad.saga", "saga s {\n    step a { do h.x( }\n}\n")
    good = _write(tmp_path / "good.saga", MESSY)
    result = runner.invoke(main, ["fmt", str(tmp_path)])
    assert result.exit_code == 1
    assert "bad.saga:2:22: error[E010]: unexpected '}'" in result.output
    assert "^" in result.output
    assert "Traceback" not in result.output
    assert bad.read_text(encoding="utf-8") == "saga s {\n    step a { do h.x( }\n}\n"
    assert good.read_text(encoding="utf-8") == CANONICAL  # the other files are still formatted


def test_cli_keeps_crlf_bom_mode_and_adds_final_newline(tmp_path: Path, runner: CliRunner) -> None:
    crlf = tmp_path / "crlf.saga"
    crlf.write_bytes(b"saga s {\r\n  step a { do h.x() }\r\n}")
    bom = tmp_path / "bom.saga"
    bom.write_bytes(b"\xef\xbb\xbfsaga t {}")
    os.chmod(crlf, 0o640)
    result = runner.invoke(main, ["fmt", str(crlf), str(bom)])
    assert result.exit_code == 0, result.output
    assert crlf.read_bytes() == b"saga s {\r\n    step a {\r\n        do h.x()\r\n    }\r\n}\r\n"
    assert bom.read_bytes() == b"\xef\xbb\xbfsaga t {}\n"
    assert stat.S_IMODE(crlf.stat().st_mode) == 0o640
    assert runner.invoke(main, ["fmt", "--check", str(crlf), str(bom)]).exit_code == 0


def test_cli_missing_path(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(main, ["fmt", str(tmp_path / "nope.saga")])
    assert result.exit_code == 1
    assert "E001" in result.output and "nope.saga" in result.output


WRAPPED = """\
saga s {
    step a {
        do inventory.reserve_all(order: input.order_id, lines: input.lines, warehouse: input.warehouse)  # why
        undo inventory.release(
            # the reservation
            reservation: a.reservation_id, note: "released because a later step failed",  # long
        )
    }
}
"""

WRAPPED_OUT = """\
saga s {
    step a {
        do inventory.reserve_all(  # why
            order: input.order_id,
            lines: input.lines,
            warehouse: input.warehouse,
        )
        # the reservation
        # long
        undo inventory.release(
            reservation: a.reservation_id,
            note: "released because a later step failed",
        )
    }
}
"""


def test_long_calls_get_one_argument_per_line() -> None:
    assert format_source(WRAPPED) == WRAPPED_OUT
    assert format_source(WRAPPED_OUT) == WRAPPED_OUT
    assert parse(WRAPPED_OUT) == parse(WRAPPED)
    assert max(len(line) for line in WRAPPED_OUT.splitlines()) <= 100
    short = "saga s {\n    step a {\n        do h.x(\n            a: 1,\n        )\n    }\n}\n"
    assert format_source(short) == "saga s {\n    step a {\n        do h.x(a: 1)\n    }\n}\n"


ALIGNED = """\
saga s {
    input {
        order_id: string        # the shop's id
        card: string secret     # never logged
        n: integer = 1
        express: boolean = false  # a lone comment keeps two spaces
    }

    step a {
        do h.x()
    }
}
"""


def test_consecutive_trailing_comments_share_a_column() -> None:
    out = format_source(ALIGNED)
    lines = out.split("\n")
    first, second = lines[2], lines[3]
    assert first.index("#") == second.index("#") == len("        card: string secret") + 2
    assert "        express: boolean = false  # a lone comment keeps two spaces" in lines
    assert format_source(out) == out


def test_alignment_spans_nesting_levels_and_stops_at_a_line_without_comment() -> None:
    text = "saga s {  # the saga\n    step a {  # a\n        do h.x()\n    }  # after a\n}\n"
    out = format_source(text)
    assert out.split("\n")[:2] == ["saga s {      # the saga", "    step a {  # a"]
    assert "    }  # after a" in out.split("\n")
    assert format_source(out) == out


def test_hand_aligned_comments_stay_aligned() -> None:
    text = (
        "saga s {\n"
        "    compensation {\n"
        "        order parallel                   # independent undos together\n"
        "        retry attempts 3                 # then give up\n"
        "    }\n"
        "}\n"
    )
    out = format_source(text)
    assert "        order parallel    # independent undos together\n        retry attempts 3  # then give up\n" in out
    assert format_source(out) == out
