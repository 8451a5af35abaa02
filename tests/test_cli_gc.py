"""The collector is paused only while a spec-only command runs, and restored after (nested, threaded)."""

from __future__ import annotations

import gc
import threading
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from sagalang.cli import main
from sagalang.cli.common import paused_gc

ROOT = Path(__file__).resolve().parent.parent


def test_validate_runs_with_the_collector_paused_then_restores_it(
    runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[bool] = []
    import sagalang.validate as validate

    real = validate.validate_project

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(gc.isenabled())
        return real(*args, **kwargs)

    monkeypatch.setattr(validate, "validate_project", spy)
    assert gc.isenabled()
    result = runner.invoke(main, ["validate", str(ROOT / "specs" / "valid" / "pivot_flow.saga")])
    assert result.exit_code == 0, result.output
    assert seen == [False]
    assert gc.isenabled()


def test_a_running_saga_keeps_the_collector(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "a.saga").write_text('saga a version "1" {\n    readonly step s { do t.noop() }\n}\n')
    (tmp_path / "h.py").write_text(
        "import gc\nfrom sagalang.plugins import handler\n\n"
        "@handler('t.noop')\ndef noop():\n    return {'gc': gc.isenabled()}\n"
    )
    args = ["run", str(tmp_path / "a.saga"), "--plugin", str(tmp_path / "h.py"), "--store", "memory:", "--json"]
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert '"gc": true' in result.output


def test_pauses_nest_and_cross_threads() -> None:
    assert gc.isenabled()
    inside = threading.Event()
    release = threading.Event()

    def other() -> None:
        with paused_gc():
            inside.set()
            release.wait(10)

    t = threading.Thread(target=other)
    with paused_gc():
        t.start()
        assert inside.wait(10)
        with paused_gc():
            assert not gc.isenabled()
        assert not gc.isenabled()
    # The other thread still holds its pause.
    assert not gc.isenabled()
    release.set()
    t.join(10)
    assert gc.isenabled()
