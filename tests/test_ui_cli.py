"""``sagalang ui`` as a command: its checks before it starts, and a real server in a subprocess."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from urllib.request import urlopen

from click.testing import CliRunner

from sagalang.cli import main

SAGALANG = [sys.executable, "-m", "sagalang"]


def test_help_names_the_flags() -> None:
    res = CliRunner().invoke(main, ["ui", "--help"])
    assert res.exit_code == 0
    for flag in ("--store", "--host", "--port", "--allow-actions", "--token"):
        assert flag in res.output


def test_a_host_off_loopback_needs_a_token(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        main, ["ui", "--host", "0.0.0.0", "--store", f"sqlite:///{tmp_path / 'j.db'}"], env={"SAGALANG_UI_TOKEN": ""}
    )
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        "sagalang: error: --host 0.0.0.0 is not a loopback address: give --token TOKEN (or $SAGALANG_UI_TOKEN) "
        "so that only those who know it can see the runs"
    ]


def test_without_the_ui_extra_it_says_what_to_install() -> None:
    # A fresh interpreter in which uvicorn cannot be imported, as when the extra is not installed.
    code = "import sys; sys.modules['uvicorn'] = None; from sagalang.cli import main; main(['ui'])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip() == "sagalang: error: `sagalang ui` needs uvicorn: pip install 'sagalang[ui]'"


def test_an_unusable_store_is_one_line_and_exit_1(tmp_path: Path) -> None:
    (tmp_path / "adir").mkdir()
    proc = subprocess.run(
        [*SAGALANG, "ui", "--store", f"sqlite:///{tmp_path / 'adir'}", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.startswith("sagalang: error: cannot open the journal") and "Traceback" not in proc.stderr


def test_serves_until_interrupted(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [*SAGALANG, "ui", "--store", f"sqlite:///{tmp_path / 'j.db'}", "--port", "0"],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SAGALANG_UI_TOKEN": ""},
    )
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()  # printed once the server listens
        found = re.search(r"sagalang ui \(read-only\) on (http://127\.0\.0\.1:\d+/)", line)
        assert found, line
        with urlopen(found.group(1), timeout=30) as res:
            assert res.status == 200 and "No runs." in res.read().decode()
    finally:
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=60)[1]
    assert proc.returncode == 0, out
    assert "Traceback" not in out


def test_a_port_in_use_is_one_line_and_exit_1(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [*SAGALANG, "ui", "--store", f"sqlite:///{tmp_path / 'j.db'}", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"sagalang: error: cannot listen on 127.0.0.1:{port}: Address already in use"
