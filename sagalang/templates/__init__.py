"""Project scaffolding for ``sagalang init``: the template files and the function that writes them.

Templates are plain files in this package (``*.tmpl``, so no tool mistakes them
for code to lint or collect); ``{{name}}`` is the saga's name and
``{{project}}`` the project's. ``${...}`` is left alone: it is the saga
language's own interpolation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from ..errors import SagaError

__all__ = ["Scaffold", "ScaffoldError", "plan", "render", "saga_name_for", "scaffold"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class ScaffoldError(SagaError):
    """The project cannot be created as asked (bad name, files in the way)."""


@dataclass(frozen=True)
class Scaffold:
    """What ``init`` writes: target path (relative to the project folder) -> template name."""

    name: str
    project: str
    files: tuple[tuple[str, str], ...]


def saga_name_for(folder: Path) -> str:
    """A saga name derived from a folder name (``my-sagas`` -> ``my_sagas``)."""
    base = re.sub(r"[^A-Za-z0-9_]+", "_", folder.resolve().name).strip("_").lower() or "saga"
    return base if _NAME.match(base) else f"saga_{base}"


def plan(folder: Path, name: str | None = None) -> Scaffold:
    """The files ``init`` would write into ``folder`` for saga ``name``."""
    saga = name or saga_name_for(folder)
    if not _NAME.match(saga):
        raise ScaffoldError(
            f"--name {saga!r} is not a valid saga name (letters, digits and _, not starting with a digit)"
        )
    project = folder.resolve().name or saga
    return Scaffold(
        saga,
        project,
        (
            ("pyproject.toml", "pyproject.toml.tmpl"),
            ("README.md", "README.md.tmpl"),
            (".gitignore", "gitignore.tmpl"),
            ("handlers.py", "handlers.py.tmpl"),
            (f"sagas/{saga}.saga", "saga.tmpl"),
            (f"sagas/{saga}.input.json", "input.json.tmpl"),
            (f"tests/test_{saga}.py", "test_saga.py.tmpl"),
        ),
    )


def render(template: str, name: str, project: str) -> str:
    """One template's text with its placeholders filled in."""
    text = files(__name__).joinpath(template).read_text(encoding="utf-8")
    return text.replace("{{name}}", name).replace("{{project}}", project)


def scaffold(folder: Path, name: str | None = None, force: bool = False) -> list[Path]:
    """Write a new saga project into ``folder``; returns the files written.

    Refuses to overwrite an existing file unless ``force``; then nothing is written.
    """
    layout = plan(folder, name)
    targets = [(folder / rel, tmpl) for rel, tmpl in layout.files]
    if not force:
        existing = [str(path) for path, _ in targets if path.exists()]
        if existing:
            raise ScaffoldError(
                "refusing to overwrite existing files (use --force): " + ", ".join(existing),
            )
    texts = [(path, render(tmpl, layout.name, layout.project)) for path, tmpl in targets]
    written: list[Path] = []
    for path, text in texts:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        except OSError as err:
            raise ScaffoldError(f"cannot write {path}: {err.strerror or err}") from err
        written.append(path)
    return written
