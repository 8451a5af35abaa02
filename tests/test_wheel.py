"""The built wheel ships the grammar: install it into a fresh venv and validate a spec with it."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_grammar_and_validates(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(ROOT)],
        check=True,
        capture_output=True,
        text=True,
    )
    wheel = next(dist.glob("sagalang-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "sagalang/grammar/saga.lark" in names
    assert not any(n.startswith(("tests/", "specs/")) for n in names)

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, capture_output=True)
    # The dependencies come from this test's environment (PYTHONPATH does not run its
    # .pth files, so the editable checkout of sagalang is not visible): the sagalang
    # that runs is the one from the wheel.
    deps = sysconfig.get_paths()["purelib"]
    work = tmp_path / "work"
    work.mkdir()
    (work / "ok.saga").write_text("saga ok {\n    step a {\n        do svc.a()\n        undo svc.b()\n    }\n}\n")
    (work / "bad.saga").write_text("saga bad {\n    step a after nope { do svc.a() undo svc.b() }\n}\n")
    env = {**os.environ, "PYTHONPATH": deps, "SAGALANG_NO_GRAMMAR_CACHE": "1"}
    where = subprocess.run(
        [str(py), "-c", "import sagalang.parser as p; print(p.__file__); print(p.grammar_path())"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert str(env_dir) in where.stdout.splitlines()[0]
    assert str(env_dir) in where.stdout.splitlines()[1]
    ok = subprocess.run(
        [str(env_dir / "bin" / "sagalang"), "validate", "ok.saga"], cwd=work, env=env, capture_output=True, text=True
    )
    assert ok.returncode == 0, ok.stdout + ok.stderr
    bad = subprocess.run(
        [str(env_dir / "bin" / "sagalang"), "validate", "bad.saga"], cwd=work, env=env, capture_output=True, text=True
    )
    assert bad.returncode == 1
    assert "bad.saga:2:18: error[E201]" in bad.stdout
