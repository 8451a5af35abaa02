"""``sagalang init``: the scaffolded project validates, runs and passes its own tests as created."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from pygments.token import Error

from sagalang.cli import main
from sagalang.lexer import SagaLexer


@pytest.fixture
def project(tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh project made by ``sagalang init signup``; the working directory is its folder."""
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["init", "signup"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "signup"
    monkeypatch.chdir(folder)
    return folder


def test_init_writes_a_complete_project(project: Path) -> None:
    files = sorted(str(p.relative_to(project)) for p in project.rglob("*") if p.is_file())
    assert files == [
        ".gitignore",
        "README.md",
        "handlers.py",
        "pyproject.toml",
        "sagas/signup.input.json",
        "sagas/signup.saga",
        "tests/test_signup.py",
    ]
    spec = (project / "sagas" / "signup.saga").read_text(encoding="utf-8")
    assert 'saga signup version "0.1"' in spec
    assert "${input.username}" in spec  # the language's interpolation survives templating
    assert "{{" not in "".join(p.read_text(encoding="utf-8") for p in project.rglob("*") if p.is_file())
    assert [t for t, _ in SagaLexer().get_tokens(spec) if t in Error] == []
    assert 'plugins = ["handlers.py"]' in (project / "pyproject.toml").read_text(encoding="utf-8")
    json.loads((project / "sagas" / "signup.input.json").read_text(encoding="utf-8"))


def test_the_project_validates_and_is_formatted(project: Path, runner: CliRunner) -> None:
    result = runner.invoke(main, ["validate", "--strict", "sagas/"])
    assert result.exit_code == 0, result.output
    assert "0 errors, 0 warnings" in result.output
    fmt = runner.invoke(main, ["fmt", "--check", "sagas/"])
    assert fmt.exit_code == 0, fmt.output
    # Its handlers come from [tool.sagalang] plugins, so validation really checked them.
    result = runner.invoke(main, ["validate", "--format", "json", "sagas/"])
    assert json.loads(result.output)["diagnostics"] == []


def test_the_projects_own_tests_pass(project: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "2 passed" in proc.stdout


def test_the_project_runs_from_the_cli(project: Path, runner: CliRunner) -> None:
    store = f"sqlite:///{project / 'runs.db'}"
    ok = runner.invoke(
        main, ["run", "sagas/signup.saga", "--input", "sagas/signup.input.json", "--store", store, "--json"]
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["status"] == "completed"
    args = ["run", "sagas/signup.saga", "--input", "sagas/signup.input.json", "--store", store, "--json"]
    failed = runner.invoke(main, [*args, "--set", "username=admin", "--set", "email=grace@example.com"])
    assert failed.exit_code == 1, failed.output
    out = json.loads(failed.output)
    assert out["status"] == "compensated"
    assert out["compensated"] == ["account"]


def test_every_failure_point_of_the_project_holds(project: Path, runner: CliRunner) -> None:
    result = runner.invoke(main, ["test", "sagas/signup.saga"])
    assert result.exit_code == 0, result.output


def test_init_refuses_to_overwrite(project: Path, runner: CliRunner) -> None:
    (project / "handlers.py").write_text("# mine\n", encoding="utf-8")
    result = runner.invoke(main, ["init", "."])
    assert result.exit_code == 1
    assert "refusing to overwrite existing files (use --force)" in result.output
    assert "handlers.py" in result.output
    assert "Traceback" not in result.output
    assert (project / "handlers.py").read_text(encoding="utf-8") == "# mine\n"
    forced = runner.invoke(main, ["init", ".", "--force", "--name", "signup"])
    assert forced.exit_code == 0, forced.output
    assert "@handler" in (project / "handlers.py").read_text(encoding="utf-8")


def test_init_names(tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["init", "my-Sagas"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "my-Sagas" / "sagas" / "my_sagas.saga").is_file()
    assert 'name = "my-Sagas"' in (tmp_path / "my-Sagas" / "pyproject.toml").read_text(encoding="utf-8")
    bad = runner.invoke(main, ["init", "x", "--name", "9lives"])
    assert bad.exit_code == 1
    assert "--name '9lives' is not a valid saga name" in bad.output
    assert not (tmp_path / "x").exists()


def test_init_reports_an_unwritable_folder(tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blocked").write_text("a file where the project folder should go\n", encoding="utf-8")
    result = runner.invoke(main, ["init", "blocked/inner"])
    assert result.exit_code == 1
    assert result.output.startswith("sagalang: error: cannot write blocked/inner/pyproject.toml")
    assert "Traceback" not in result.output
