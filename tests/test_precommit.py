"""The pre-commit hooks of .pre-commit-hooks.yaml, exercised for real by ``pre-commit run``.

pre-commit installs the hook repository into a virtualenv of its own (``language:
python``), so the test builds a git repository from this working tree's sources
(committed or not) and points a project's ``.pre-commit-config.yaml`` at it, as
``repo:`` accepts any git path. Building that environment needs the package
index, like any pre-commit user's first run (~15 s), so it happens once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from sagalang.cli import COMMANDS

ROOT = Path(__file__).resolve().parent.parent
PRE_COMMIT = Path(sys.executable).parent / "pre-commit"
# Canonically formatted, so the fmt hook leaves it alone.
GOOD = """\
saga hello version "1" {
    input {
        name: string
    }

    readonly step greet {
        do hello.greet(name: input.name)
    }
}
"""
HANDLERS = '''\
from sagalang.plugins import handler


@handler("hello.greet")
def greet(name: str) -> dict[str, str]:
    """Say hello."""
    return {"text": f"hello {name}"}
'''


def git(cwd: Path, *args: str) -> None:
    """Run git quietly with a throwaway identity."""
    subprocess.run(
        ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository holding this working tree as a clone would (tracked and new files, not ignored ones)."""
    src = tmp_path_factory.mktemp("hook-repo")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\0")
    for name in filter(None, listed):
        if (ROOT / name).is_file():  # a file deleted but not yet committed is left out
            (src / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    git(src, "init", "-q")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "hooks")
    return src


@pytest.fixture(scope="module")
def pre_commit_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """pre-commit's cache, shared by this module's tests so the hook env is built once."""
    return tmp_path_factory.mktemp("pre-commit-home")


def pre_commit(project: Path, home: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``pre-commit ARGS`` inside ``project`` with its own cache and no colour."""
    env = {**os.environ, "PRE_COMMIT_HOME": str(home), "NO_COLOR": "1"}
    env.pop("VIRTUAL_ENV", None)
    if path is not None:
        env["PATH"] = path
    return subprocess.run(
        [str(PRE_COMMIT), *args, "--color", "never"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def make_project(root: Path, files: dict[str, str]) -> Path:
    """A git repository with ``files`` staged (pre-commit only sees tracked files)."""
    root.mkdir()
    for name, text in files.items():
        (root / name).write_text(text, encoding="utf-8")
    git(root, "init", "-q")
    git(root, "add", "-A")
    return root


def test_hooks_file_declares_both_hooks() -> None:
    hooks = {h["id"]: h for h in yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))}
    assert set(hooks) == {"sagalang-validate", "sagalang-fmt"}
    for hook in hooks.values():
        assert hook["files"] == r"\.saga$"
        assert hook["entry"].split()[0] == "sagalang"
        assert hook["entry"].split()[1] in COMMANDS


def hooks_config(hook_repo: Path, *hooks: dict[str, object]) -> str:
    """A .pre-commit-config.yaml using ``hooks`` from the hook repository at its HEAD."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=hook_repo, capture_output=True, text=True, check=True)
    return yaml.safe_dump({"repos": [{"repo": str(hook_repo), "rev": head.stdout.strip(), "hooks": list(hooks)}]})


BROKEN = 'saga broken {\n    step a { do hello.greet(name: "x" }\n}\n'
MESSY = 'saga   hello   version "1"{\ninput{name:string}\nreadonly step greet {do hello.greet(name: input.name)}}\n'
PROJECT = {"pyproject.toml": '[tool.sagalang]\nplugins = ["handlers.py"]\n', "handlers.py": HANDLERS}


@pytest.mark.slow
def test_hooks_from_this_repository(tmp_path: Path, hook_repo: Path, pre_commit_home: Path) -> None:
    # One test, so the hook environment (pip-installed from the hook repository) is built once.
    config = hooks_config(hook_repo, {"id": "sagalang-validate"}, {"id": "sagalang-fmt"})
    project = make_project(
        tmp_path / "validate", {"hello.saga": GOOD, "broken.saga": BROKEN, ".pre-commit-config.yaml": config, **PROJECT}
    )
    failed = pre_commit(project, pre_commit_home, "run", "--all-files")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "sagalang validate" in failed.stdout and "Failed" in failed.stdout
    assert "broken.saga:2:39: error[E010]" in failed.stdout
    # The project's own handlers (its pyproject's plugins) loaded in the hook's environment:
    # without them hello.greet would be reported (W502) as a handler that cannot be checked.
    assert "1 error, 0 warnings in 2 files" in failed.stdout

    (project / "broken.saga").unlink()
    git(project, "add", "-A")
    passed = pre_commit(project, pre_commit_home, "run", "--all-files")
    assert passed.returncode == 0, passed.stdout + passed.stderr
    assert passed.stdout.count("Passed") == 2

    # sagalang-fmt rewrites a file in place; pre-commit fails the commit, and the re-added file passes.
    (project / "hello.saga").write_text(MESSY, encoding="utf-8")
    git(project, "add", "-A")
    first = pre_commit(project, pre_commit_home, "run", "sagalang-fmt", "--all-files")
    assert first.returncode == 1, first.stdout + first.stderr
    assert "files were modified by this hook" in first.stdout
    assert (project / "hello.saga").read_text(encoding="utf-8") == GOOD
    git(project, "add", "-A")
    again = pre_commit(project, pre_commit_home, "run", "--all-files")
    assert again.returncode == 0, again.stdout + again.stderr

    # docs/examples/pre-commit-config.yaml, pointed at this tree instead of the published repository.
    documented = yaml.safe_load((ROOT / "docs" / "examples" / "pre-commit-config.yaml").read_text(encoding="utf-8"))
    ours = yaml.safe_load(config)["repos"][0]
    documented["repos"][0].update(repo=ours["repo"], rev=ours["rev"])
    (project / ".pre-commit-config.yaml").write_text(yaml.safe_dump(documented), encoding="utf-8")
    git(project, "add", "-A")
    ok = pre_commit(project, pre_commit_home, "run", "--all-files")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    # Its args: [--strict] makes a warning (a handler nobody registered) fail the commit.
    (project / "other.saga").write_text(GOOD.replace("hello", "other"), encoding="utf-8")
    git(project, "add", "-A")
    strict = pre_commit(project, pre_commit_home, "run", "--all-files")
    assert strict.returncode == 1, strict.stdout + strict.stderr
    assert "other.saga:7:12: error[W502]" in strict.stdout


def test_documented_local_config(tmp_path: Path, pre_commit_home: Path) -> None:
    # docs/examples/pre-commit-local.yaml: hooks run by the sagalang on PATH (language: system).
    config = (ROOT / "docs" / "examples" / "pre-commit-local.yaml").read_text(encoding="utf-8")
    project = make_project(
        tmp_path / "project",
        {
            "hello.saga": GOOD,
            ".pre-commit-config.yaml": config,
            "pyproject.toml": '[tool.sagalang]\nplugins = ["h.py"]\n',
            "h.py": HANDLERS,
        },
    )
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    ok = pre_commit(project, pre_commit_home, "run", "--all-files", path=path)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    (project / "hello.saga").write_text(GOOD.replace("input.name", "input.nme"), encoding="utf-8")
    git(project, "add", "-A")
    bad = pre_commit(project, pre_commit_home, "run", "--all-files", path=path)
    assert bad.returncode == 1
    assert "hello.saga:7:" in bad.stdout
