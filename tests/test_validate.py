"""The validator through its public API: rules, data flow, step classes, registry, speed."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from sagalang.diagnostics import Diagnostic
from sagalang.errors import HandlerError, SagaValidationError
from sagalang.plugins import Handler, Registry
from sagalang.validate import check, validate_paths


def _act(**args: Any) -> dict[str, Any]:
    return args


def _revert(**args: Any) -> None:
    return None


def _charge(amount: float, card: str, currency: str = "EUR") -> dict[str, Any]:
    return {"id": "c1"}


class _Lock:
    def execute(self, ctx: Any, key: str) -> dict[str, str]:
        return {"lock": key}

    def compensate(self, ctx: Any, key: str) -> None:
        return None

    def can_compensate(self) -> bool:
        return True


@pytest.fixture
def registry() -> Registry:
    """Handlers in namespace ``app``."""
    reg = Registry()
    reg.add("app.act", _act)
    reg.add("app.revert", _revert)
    reg.add("app.charge", _charge)
    reg.add("app.lock", _Lock)
    return reg


def run(tmp_path: Path, text: str, registry: Registry | None = None, name: str = "s.saga") -> list[Diagnostic]:
    """Validate one spec written to ``tmp_path``."""
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    _, diags = validate_paths([path], registry, root=tmp_path)
    return diags


def codes(diags: list[Diagnostic], with_infos: bool = False) -> list[str]:
    """The codes found (infos left out unless asked)."""
    return [d.code for d in diags if with_infos or d.severity != "info"]


# ---- data flow -----------------------------------------------------------------------


def test_linear_reads_are_fine(tmp_path: Path, registry: Registry) -> None:
    diags = run(
        tmp_path,
        """saga s {
            input { n: integer }
            step a { do app.act(n: input.n) undo app.revert(id: default(a.id, null)) }
            step b { do app.act(prev: a.id, all: [a, input]) undo app.revert(id: default(result.id, null), prev: a.id) }
            output { a: a.id, b: b.id }
        }""",
        registry,
    )
    assert codes(diags) == []


def test_undo_may_not_read_a_later_step(tmp_path: Path, registry: Registry) -> None:
    diags = run(
        tmp_path,
        """saga s {
            step a { do app.act() undo app.revert(x: b.id) }
            step b { do app.act() undo app.revert() }
        }""",
        registry,
    )
    assert codes(diags) == ["E303"]
    assert diags[0].span.line == 2 and "'b' runs after 'a'" in (diags[0].hint or "")


def test_when_and_for_cannot_read_their_own_step(tmp_path: Path, registry: Registry) -> None:
    diags = run(
        tmp_path,
        """saga s {
            step a when a.ok { do app.act() undo app.revert() }
            step b for x in b.items { do app.act(x: x) undo app.revert(x: x) }
        }""",
        registry,
    )
    assert codes(diags) == ["E303", "E303"]


def test_conditional_reads(tmp_path: Path, registry: Registry) -> None:
    diags = run(
        tmp_path,
        """saga s {
            input { go: boolean = true }
            step a when input.go { do app.act() undo app.revert(id: default(a.id, null)) }
            step b { do app.act(x: default(a.id, 0), y: a == null, z: coalesce(a.id, 1)) undo app.revert() }
            step c { do app.act(x: coalesce(1, a.id)) undo app.revert() }
            output { v: a.id }
        }""",
        registry,
    )
    # The own undo, default(), coalesce() before its last argument and a bare name are fine;
    # coalesce's last argument is its fallback, so reading a skipped step there is not.
    assert [(d.code, d.span.line) for d in diags if d.severity != "info"] == [("E304", 5), ("E304", 6)]


def test_default_fallback_is_not_guarded(tmp_path: Path, registry: Registry) -> None:
    diags = run(
        tmp_path,
        """saga s {
            input { go: boolean = true }
            step a when input.go { do app.act() undo app.revert() }
            step b { do app.act(x: default(input.go, a.id)) undo app.revert() }
        }""",
        registry,
    )
    assert codes(diags) == ["E304"]


def test_fan_out_list_reads(tmp_path: Path, registry: Registry) -> None:
    diags = run(
        tmp_path,
        """saga s {
            input { items: list[object] }
            step f for it in input.items limit 2 {
                do app.act(x: it.x) undo app.revert(r: default(result.id, null), x: it.x)
            }
            step g { do app.act(first: f[0].id, n: len(f), all: f, bad: f.id) undo app.revert() }
        }""",
        registry,
    )
    assert [(d.code, d.span.line) for d in diags] == [("W305", 6)]


def test_names_outside_their_scope(tmp_path: Path, registry: Registry) -> None:
    diags = run(
        tmp_path,
        """saga s {
            input { items: list[object] }
            step f for it in input.items { do app.act(x: it) undo app.revert() }
            step g { do app.act(x: it, y: result, z: nothing, w: saga.id, v: saga.nope) undo app.revert() }
            output { r: result.id }
        }""",
        registry,
    )
    assert sorted(codes(diags)) == ["E301", "E306", "E306", "E307", "E310"]


def test_schema_input_fields_are_not_checked(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "in.json").write_text(json.dumps({"type": "object"}), encoding="utf-8")
    diags = run(
        tmp_path,
        """saga s {
            input schema "in.json"
            step a { do app.act(x: input.anything) undo app.revert() }
        }""",
        registry,
    )
    assert codes(diags) == []


def test_after_across_parallel_block(tmp_path: Path, registry: Registry) -> None:
    diags = run(
        tmp_path,
        """saga s {
            step a { do app.act() undo app.revert() }
            parallel {
                step l { do app.act(a: a.id) undo app.revert() }
                step r { do app.act(a: a.id) undo app.revert() }
            }
            step m after l { do app.act(l: l.id, a: a.id) undo app.revert() }
            step n after m { do app.act(r: r.id) undo app.revert() }
            step j { do app.act(l: l.id, r: r.id, m: m.id) undo app.revert() }
        }""",
        registry,
    )
    # n runs after m, after l; r may still be running. j has no 'after', so it depends only on the
    # step written before it (n): r is not guaranteed to be done there either.
    assert [(d.code, d.span.line) for d in diags] == [("E303", 8), ("E303", 9)]
    assert "add 'after r'" in (diags[1].hint or "")


# ---- ordering ----------------------------------------------------------------------------


def test_cycle_reads_as_chain(tmp_path: Path, registry: Registry) -> None:
    diags = run(
        tmp_path,
        """saga s {
            step a after b { do app.act() undo app.revert() }
            step b after a { do app.act() undo app.revert() }
        }""",
        registry,
    )
    assert codes(diags) == ["E202"]
    assert "'a' runs after 'b', 'b' runs after 'a'" in diags[0].message


def test_dense_cycle_is_reported_once_and_fast(tmp_path: Path, registry: Registry) -> None:
    names = [f"s{i}" for i in range(14)]
    body = "\n".join(
        f"step {n} after {', '.join(m for m in names if m != n)} {{ do app.act() undo app.revert() }}" for n in names
    )
    start = time.perf_counter()
    diags = run(tmp_path, f"saga s {{\n{body}\n}}", registry)
    assert time.perf_counter() - start < 5  # enumerating every simple cycle here would never finish
    assert codes(diags) == ["E202"]


# ---- step classes ------------------------------------------------------------------------


def test_implicit_pivot_and_retriable_are_reported_as_infos(tmp_path: Path, registry: Registry) -> None:
    diags = run(
        tmp_path,
        """saga s {
            defaults { retry attempts 3 }
            step a { do app.act() undo app.revert() }
            step b { do app.act() }
            step c { do app.act() }
        }""",
        registry,
    )
    infos = [d for d in diags if d.code == "I609"]
    assert [d.span.line for d in infos] == [4, 5]
    assert "acts as the pivot" in infos[0].message and "acts as a retriable step" in infos[1].message
    assert codes(diags) == []


def test_irreversible_steps_concurrent_with_the_implicit_pivot(tmp_path: Path, registry: Registry) -> None:
    diags = run(
        tmp_path,
        """saga s {
            step a { do app.act() undo app.revert() }
            parallel {
                step b { do app.act() }
                step c { do app.act() }
            }
        }""",
        registry,
    )
    assert [(d.code, d.span.line) for d in diags if d.severity == "error"] == [("E607", 5)]


def test_default_retry_forever_warns_once(tmp_path: Path, registry: Registry) -> None:
    diags = run(
        tmp_path,
        """saga s {
            defaults { retry forever backoff 1s }
            step a { do app.act() undo app.revert() }
            step b { do app.act() undo app.revert() }
        }""",
        registry,
    )
    assert [(d.code, d.span.line) for d in diags] == [("W611", 2)]
    assert "'a' and 1 more" in diags[0].message


def test_compensatable_sub_saga_and_step_object(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "pay.saga").write_text(
        """saga pay {
            input { amount: number  card: string }
            step charge { do app.charge(amount: input.amount, card: input.card) undo app.revert() }
        }""",
        encoding="utf-8",
    )
    diags = run(
        tmp_path,
        """import "pay.saga"
        saga s {
            step lock { use app.lock(key: "k") }
            step p { call pay(amount: 1, card: "c") }
            pivot step ship { do app.act(lock: lock.lock) }
        }""",
        registry,
    )
    assert codes(diags) == []


# ---- handlers ----------------------------------------------------------------------------


def test_handlers_unchecked_without_registry(tmp_path: Path) -> None:
    diags = run(tmp_path, "saga s { step a { do nope.nothing(x: 1) undo nope.undo() } }", None)
    assert codes(diags) == []


def test_unknown_namespace_warns_once_per_file(tmp_path: Path, registry: Registry) -> None:
    diags = run(
        tmp_path,
        """saga s {
            step a { do mail.send() undo mail.recall() }
            step b { do mail.send() undo mail.recall() }
        }
        saga t { step a { do mail.send() undo mail.recall() } }""",
        registry,
    )
    assert codes(diags) == ["W502"]


def test_kwargs_handlers_accept_any_argument(tmp_path: Path, registry: Registry) -> None:
    diags = run(tmp_path, 'saga s { step a { do app.act(whatever: 1) undo app.revert(x: "y") } }', registry)
    assert codes(diags) == []


def test_handler_signature(tmp_path: Path, registry: Registry) -> None:
    diags = run(
        tmp_path,
        'saga s { step a { do app.charge(amount: 1, curency: "EUR") undo app.revert() } }',
        registry,
    )
    assert sorted(codes(diags)) == ["E503", "E504"]
    unknown = next(d for d in diags if d.code == "E503")
    assert unknown.hint == "did you mean 'currency'?"
    missing = next(d for d in diags if d.code == "E504")
    assert "card" in missing.message


def test_handler_namespace_failing_to_load(tmp_path: Path) -> None:
    class Broken(Registry):
        def get(self, name: str) -> Handler | None:
            raise HandlerError("handlers 'app' failed to import: ImportError: boom")

    diags = run(tmp_path, "saga s { step a { do app.act() undo app.revert() } }", Broken())
    assert codes(diags) == ["E509"]
    assert "boom" in diags[0].message


# ---- values, inputs, files ---------------------------------------------------------------


def test_input_defaults(tmp_path: Path, registry: Registry) -> None:
    diags = run(
        tmp_path,
        """saga s {
            input {
                a: list[integer] = [1, 2]
                b: list[integer] = [1, "x"]
                c: number = 1
                d: object = {k: 1}
                e: string = null
                f: integer = true
                g: string[integer]
            }
            step x { do app.act(v: input) undo app.revert() }
        }""",
        registry,
    )
    assert [(d.code, d.span.line) for d in diags] == [("E903", 4), ("E903", 8), ("E901", 9)]


def test_schema_checked_once_per_file(tmp_path: Path, registry: Registry) -> None:
    (tmp_path / "out.json").write_text('{"type": 12}', encoding="utf-8")
    diags = run(
        tmp_path,
        """saga s {
            step a { do app.act() undo app.revert() output schema "out.json" }
            step b { do app.act() undo app.revert() output schema "out.json" }
        }""",
        registry,
    )
    assert codes(diags) == ["E906", "E906"]


def test_bad_bytes_and_empty_files(tmp_path: Path) -> None:
    (tmp_path / "bin.saga").write_bytes(b"saga s {\x00}")
    (tmp_path / "latin.saga").write_bytes('saga s { description "caf\xe9" }'.encode("latin-1"))
    (tmp_path / "empty.saga").write_text("", encoding="utf-8")
    _, diags = validate_paths([tmp_path], None, root=tmp_path)
    assert sorted(d.code for d in diags) == ["E002", "E003", "E005"]


def test_check_raises_with_every_error(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "s.saga"
    path.write_text(
        "saga s { step a { do app.act(x: b.id) undo app.revert() retry attempts 0 } }",
        encoding="utf-8",
    )
    with pytest.raises(SagaValidationError) as err:
        check([path], registry, root=tmp_path)
    assert sorted(d.code for d in err.value.diagnostics) == ["E301", "E801"]
    ok = tmp_path / "ok.saga"
    ok.write_text("saga s { step a { do app.act() undo app.revert() } }", encoding="utf-8")
    assert check([ok], registry, root=tmp_path).entries == [ok.resolve()]


def test_diagnostics_are_sorted_across_files(tmp_path: Path, registry: Registry) -> None:
    for name in ("b.saga", "a.saga"):
        (tmp_path / name).write_text(
            "saga s {\n step x { do app.act(y: z.q) undo app.revert() retry attempts 0 }\n}", encoding="utf-8"
        )
    _, diags = validate_paths([tmp_path], registry, root=tmp_path)
    keys = [(d.file, d.span.line, d.span.col) for d in diags]
    assert keys == sorted(keys) and len(diags) == 4


# ---- performance ---------------------------------------------------------------------------


def _linear_saga(n: int) -> str:
    lines = ["saga big {", "  input { n: integer }", "  defaults { retry attempts 3 backoff 100ms x2 max 5s }"]
    lines.append("  step s0 { do app.act(x: input.n) undo app.revert(x: input.n) }")
    for i in range(1, n):
        lines.append(
            f'  step s{i} {{ do app.act(x: s{i - 1}.v, y: input.n + 1, z: "${{s{max(0, i - 5)}.id}}") '
            f"undo app.revert(x: input.n, r: default(result.v, null)) }}"
        )
    lines.append(f"  output {{ last: s{n - 1}.v }}")
    return "\n".join([*lines, "}"])


def test_importing_the_validator_does_not_import_jsonschema() -> None:
    code = "import sys, sagalang.validate; sys.exit('jsonschema' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_validator_never_raises_on_mutated_specs(tmp_path: Path, registry: Registry) -> None:
    import random
    import re

    rng = random.Random(7)
    sources = sorted((Path(__file__).resolve().parent.parent / "specs").rglob("*.saga"))
    extra = ["pivot", "readonly", "retriable", "after", "when", "for", "call", "use", "result", "0", "forever"]
    checked = 0
    for source in sources:
        text = source.read_text(encoding="utf-8")
        words = sorted(set(re.findall(r"\b[A-Za-z_]\w*\b", text))) + extra
        for _ in range(4):
            mutant = text
            for _ in range(rng.randrange(1, 4)):
                token = rng.choice(list(re.finditer(r"\b[A-Za-z_]\w*\b|\b\d+\b", mutant)))
                mutant = mutant[: token.start()] + rng.choice(words) + mutant[token.end() :]
            path = tmp_path / source.name
            path.write_text(mutant, encoding="utf-8")
            _, diags = validate_paths([path], registry, root=tmp_path)  # must not raise
            assert all(d.code and d.file for d in diags)
            checked += 1
    assert checked >= 4 * 45
