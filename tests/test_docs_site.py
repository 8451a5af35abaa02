"""The documentation: the site builds with --strict, and every sample in it is a file or command that works.

- the MkDocs site builds (strict) and highlights ```saga blocks with sagalang's lexer;
- the CLI reference is generated from the commands;
- the tutorial's console transcripts are run in order, in a copy of docs/tutorial,
  and their output compared (a line ``...`` stands for any lines);
- the tutorial's diagram is what ``sagalang render`` draws today;
- the documented GitHub Actions workflow's commands produce annotations and SARIF;
- shell completion scripts are produced for the shells docs/completion.md names.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import yaml
from click.testing import CliRunner

from sagalang.cli import COMMANDS, main

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
BIN = Path(sys.executable).parent
SAGALANG = BIN / "sagalang"
# Pages this test holds to "every sample is a tested file": their code blocks are --8<-- includes.
INCLUDING_PAGES = ("index.md", "tutorial.md", "ci.md")


def tool_env(**extra: str) -> dict[str, str]:
    """The environment for documented commands: this venv first on PATH, no colour, no ambient store."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGALANG_", "TRIP_", "_SAGALANG"))}
    env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", NO_COLOR="1", NO_MKDOCS_2_WARNING="1", **extra)
    return env


def load_script(name: str) -> ModuleType:
    """A module from scripts/ (not a package)."""
    spec = importlib.util.spec_from_file_location(f"docs_script_{name}", ROOT / "scripts" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---- the site ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site, built exactly as ``make docs`` builds it (strict), into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        env=tool_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_nav_lists_only_pages_that_exist() -> None:
    config = yaml.load((ROOT / "mkdocs.yml").read_text(encoding="utf-8"), Loader=yaml.Loader)

    def pages(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, dict):
            return [p for v in node.values() for p in pages(v)]
        if isinstance(node, list):
            return [p for v in node for p in pages(v)]
        return []

    nav = pages(config["nav"])
    assert "tutorial.md" in nav and "cli-reference.md" in nav and "ci.md" in nav
    for page in nav:
        assert page == "cli-reference.md" or (DOCS / page).is_file(), page


def test_site_builds_strict_and_highlights_saga(site: Path) -> None:
    tutorial = (site / "tutorial" / "index.html").read_text(encoding="utf-8")
    # Pygments classes from sagalang.lexer: keyword declaration, handler name, interpolation.
    assert '<span class="kd">saga</span>' in tutorial
    assert '<span class="nf">flights.book</span>' in tutorial
    assert '<span class="si">${</span>' in tutorial
    assert 'class="mermaid"' in tutorial
    index = (site / "index.html").read_text(encoding="utf-8")
    assert '<span class="kd">saga</span>' in index  # the example included from specs/examples
    assert (site / "ci" / "index.html").is_file()
    assert (site / "completion" / "index.html").is_file()


def test_cli_reference_covers_every_command(site: Path) -> None:
    html = (site / "cli-reference" / "index.html").read_text(encoding="utf-8")
    for name in COMMANDS:
        assert f'id="sagalang-{name}"' in html, name
    assert "--format" in html and "--strict" in html


def test_cli_reference_script(tmp_path: Path) -> None:
    gen = load_script("gen_cli_docs")
    text = gen.render()
    assert text.startswith("# CLI reference")
    ctx_main = main.make_context("sagalang", ["validate", "--help"], resilient_parsing=True)
    validate = main.get_command(ctx_main, "validate")
    assert validate is not None
    for opt in ("--format", "--strict", "--plugin", "--root"):
        assert f"`{opt}" in text or f", {opt}" in text, opt
    assert "sagalang validate --format github specs/" in text  # its examples
    out = tmp_path / "cli.md"
    assert gen.main(["-o", str(out)]) == 0
    assert out.read_text(encoding="utf-8") == text
    assert gen.main(["-o", str(out), "--check"]) == 0
    out.write_text(text + "stale\n", encoding="utf-8")
    assert gen.main(["-o", str(out), "--check"]) == 1


def test_code_samples_are_included_files() -> None:
    fence = re.compile(r"^```(\w+)\n(.*?)^```", re.S | re.M)
    included = 0
    for page in INCLUDING_PAGES:
        for lang, body in fence.findall((DOCS / page).read_text(encoding="utf-8")):
            if lang in ("sh", "console", "text"):
                continue  # commands: the tutorial's are run below, the others are install steps
            lines = body.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith('--8<-- "'), f"{page}: inline {lang} sample"
            target = lines[0].split('"')[1]
            assert (DOCS / target).is_file() or (ROOT / target).is_file(), target
            included += 1
    assert included >= 8


# ---- the tutorial, run --------------------------------------------------------------


def transcript() -> list[tuple[str, list[str], int]]:
    """(command, expected output lines, expected exit status) of tutorial.md's console blocks, in order."""
    text = (DOCS / "tutorial.md").read_text(encoding="utf-8")
    steps: list[tuple[str, list[str], int]] = []
    for status, body in re.findall(r"(?:<!-- exit (\d+) -->\n)?```console\n(.*?)^```", text, re.S | re.M):
        for chunk in re.split(r"^\$ ", body, flags=re.M)[1:]:
            command, *output = chunk.rstrip("\n").split("\n")
            steps.append((command, output, int(status or 0)))
    return steps


def matches(expected: list[str], actual: str) -> bool:
    """Whether ``actual`` is ``expected`` line by line, a ``...`` line standing for any lines."""
    parts = [r"(?:[^\n]*\n)*?" if line == "..." else re.escape(line.rstrip()) + r"\n" for line in expected]
    lines = [line.rstrip() for line in actual.rstrip("\n").split("\n")] if actual.strip() else []
    return re.fullmatch("".join(parts), "".join(line + "\n" for line in lines)) is not None


def test_tutorial_transcript_is_real(tmp_path: Path) -> None:
    work = tmp_path / "trip"
    shutil.copytree(DOCS / "tutorial", work, ignore=shutil.ignore_patterns("__pycache__", ".sagalang", "bookings.json"))
    steps = transcript()
    assert len(steps) >= 12
    for command, expected, status in steps:
        proc = subprocess.run(
            ["bash", "-c", command],
            cwd=work,
            env=tool_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=120,
        )
        # The docs show the copy at /tmp/trip, as the tutorial's set-up makes it.
        output = proc.stdout.replace(str(work), "/tmp/trip")
        assert proc.returncode == status, f"$ {command}\n{output}"
        assert matches(expected, output), (
            f"$ {command}\n--- documented\n" + "\n".join(expected) + f"\n--- actual\n{output}"
        )
    assert (work / "trip.svg").read_text(encoding="utf-8").lstrip().startswith(("<?xml", "<svg"))


def test_matches_wildcards() -> None:
    assert matches(["a", "...", "d"], "a\nb\nc\nd\n")
    assert matches(["a", "...", "b"], "a\nb")
    assert not matches(["a", "b"], "a\nc\n")
    assert matches([], "")


def test_tutorial_diagram_is_current(runner: CliRunner) -> None:
    result = runner.invoke(main, ["render", str(DOCS / "tutorial" / "trip.saga"), "--format", "mermaid"])
    assert result.exit_code == 0, result.output
    current = (DOCS / "tutorial" / "trip.mmd").read_text(encoding="utf-8")
    assert result.output.strip() == current.strip(), (
        "docs/tutorial/trip.mmd is stale: run "
        "`sagalang render docs/tutorial/trip.saga --format mermaid > docs/tutorial/trip.mmd`"
    )


# ---- CI integration -----------------------------------------------------------------


def test_github_workflow(tmp_path: Path, runner: CliRunner, monkeypatch: pytest.MonkeyPatch) -> None:
    workflow = yaml.safe_load((DOCS / "examples" / "github-workflow.yml").read_text(encoding="utf-8"))
    job = workflow["jobs"]["validate"]
    assert job["permissions"]["security-events"] == "write"
    steps = job["steps"]
    upload = next(s for s in steps if s.get("uses", "").startswith("github/codeql-action/upload-sarif@"))
    assert upload["if"] == "always()"
    commands = [s["run"] for s in steps if str(s.get("run", "")).startswith("sagalang ")]
    assert any("--format github" in c for c in commands)
    assert any(f"> {upload['with']['sarif_file']}" in c for c in commands)

    # Run the workflow's sagalang steps in a project that `sagalang init` made, with a mistake in it.
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(main, ["init", "shop"]).exit_code == 0
    project = tmp_path / "shop"
    spec = project / "sagas" / "shop.saga"
    spec.write_text(spec.read_text(encoding="utf-8").replace("account.account_id)", "acount.account_id)"))
    results = [
        subprocess.run(["bash", "-c", c], cwd=project, env=tool_env(), capture_output=True, text=True, timeout=120)
        for c in commands
    ]
    github = results[0]
    assert github.returncode == 1
    assert re.search(r"^::error file=sagas/shop\.saga,line=\d+,col=\d+,.*title=E301::", github.stdout, re.M)
    assert all(r.returncode == 0 for r in results[1:])  # the SARIF step never fails the job twice
    sarif = json.loads((project / upload["with"]["sarif_file"]).read_text(encoding="utf-8"))
    assert sarif["version"] == "2.1.0"
    (finding,) = sarif["runs"][0]["results"]
    assert finding["ruleId"] == "E301"
    assert finding["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == "sagas/shop.saga"

    spec.write_text(spec.read_text(encoding="utf-8").replace("acount.", "account."))
    clean = subprocess.run(["bash", "-c", commands[0]], cwd=project, env=tool_env(), capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout + clean.stderr


# ---- shell completion -------------------------------------------------------------


def documented_shells() -> list[str]:
    """The ``_SAGALANG_COMPLETE`` values docs/completion.md tells people to use."""
    text = (DOCS / "completion.md").read_text(encoding="utf-8")
    return sorted(set(re.findall(r"_SAGALANG_COMPLETE=(\w+) sagalang", text)))


def test_completion_docs_cover_three_shells() -> None:
    assert documented_shells() == ["bash_source", "fish_source", "zsh_source"]


@pytest.mark.parametrize("source", ["bash_source", "zsh_source", "fish_source"])
def test_completion_script_is_produced(source: str) -> None:
    proc = subprocess.run(
        [str(SAGALANG)], env=tool_env(_SAGALANG_COMPLETE=source), capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "_sagalang_completion" in proc.stdout
    marker = {"bash_source": "complete -o nosort -F", "zsh_source": "#compdef sagalang", "fish_source": "complete "}
    assert marker[source] in proc.stdout


def test_completion_completes_commands_options_and_choices() -> None:
    def complete(words: str, cword: int) -> list[str]:
        env = tool_env(_SAGALANG_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD=str(cword))
        proc = subprocess.run([str(SAGALANG)], env=env, capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        return [line.split(",", 1)[1] for line in proc.stdout.splitlines()]

    assert complete("sagalang va", 1) == ["validate"]
    assert "init" in complete("sagalang i", 1)
    assert complete("sagalang validate --format ", 3) == ["text", "json", "sarif", "github"]
    assert complete("sagalang validate --st", 2) == ["--strict"]
