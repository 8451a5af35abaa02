"""Cancellation from outside the driving task: another store connection, and SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from interp_kit import Kit, spec_of, step

from sagalang.interpreter import run

pytest.importorskip("sagalang.journal.sqlite")


def test_cancel_flag_from_another_connection_is_honoured(tmp_path: Path) -> None:
    from sagalang.journal import open_store

    kit = Kit()
    kit.sleep["b"] = 10
    spec = spec_of(tmp_path, "saga s {\n" + step("a") + "\n" + step("b") + "\n}\n", kit.registry)
    url = f"sqlite:///{tmp_path / 'j.db'}"

    async def main() -> None:
        driver, other = open_store(url), open_store(url)
        await driver.open()
        await other.open()
        try:
            task = asyncio.ensure_future(run(spec, {}, store=driver, registry=kit.registry, run_id="r1"))
            while "b" not in kit.did("do"):
                await asyncio.sleep(0.01)
            # What `sagalang cancel r1` does from another process.
            assert await other.request_cancel("r1")
            result = await asyncio.wait_for(task, 5)
            assert result.status == "cancelled"
            assert kit.did("undo") == ["b", "a"]
            rec = await other.get_run("r1")
            assert rec is not None and rec.status == "cancelled"
        finally:
            await driver.close()
            await other.close()

    asyncio.run(main())


HANDLERS = """
import asyncio
from sagalang.plugins import handler

@handler("w.work")
async def work(tag: str, sleep: float = 0) -> dict:
    await asyncio.sleep(sleep)
    return {"tag": tag}

@handler("w.undo")
async def undo(tag: str) -> None:
    print("undo", tag, flush=True)
"""

SPEC = """
saga job {
    step a { do w.work(tag: "a") undo w.undo(tag: "a") }
    step b { do w.work(tag: "b", sleep: 30) undo w.undo(tag: "b") }
}
"""


def test_sigterm_cancels_and_compensates(tmp_path: Path) -> None:
    (tmp_path / "w.py").write_text(HANDLERS)
    (tmp_path / "job.saga").write_text(textwrap.dedent(SPEC))
    cmd = [sys.executable, "-m", "sagalang", "run", "job.saga", "--plugin", "w.py", "--store", "memory:"]
    proc = subprocess.Popen(
        [*cmd, "--progress"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if line.strip() == "b: started":
            break
    else:
        proc.kill()
        pytest.fail("the run never reached step b")
    os.kill(proc.pid, signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 1
    assert "cancelled" in out
    assert out.index("undo b") < out.index("undo a")
