"""`sagalang lsp` in a real subprocess: the handshake, diagnostics as you type, imports, configuration.

Diagnostics must be exactly what `sagalang validate FILE` reports for the file
(code, severity and position), for every example and every invalid spec.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from lsp_client import LspClient

from sagalang.plugins import Registry
from sagalang.validate import validate_paths

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "specs" / "examples").rglob("*.saga"))
INVALID = sorted((ROOT / "specs" / "invalid").glob("*.saga"))
SEVERITY = {"error": 1, "warning": 2, "info": 3}


@pytest.fixture(scope="module")
def server() -> Iterator[LspClient]:
    """One server for the repository (its pyproject.toml loads the examples' handlers)."""
    client = LspClient(ROOT)
    client.initialize(ROOT, {"debounce_ms": 0})
    yield client
    assert client.close() == 0


def expected(path: Path) -> list[tuple[str, int, int, int]]:
    """What `sagalang validate PATH` reports for the file: code, severity, 0-based line and column."""
    _, diags = validate_paths([path], Registry.discover(cwd=ROOT))
    own = [d for d in diags if Path(d.file).resolve() == path.resolve()]
    return sorted((d.code, SEVERITY[d.severity], max(d.span.line - 1, 0), max(d.span.col - 1, 0)) for d in own)


def published(items: list[dict[str, object]]) -> list[tuple[str, int, int, int]]:
    out = []
    for d in items:
        start = d["range"]["start"]  # type: ignore[index]
        out.append((str(d["code"]), int(d["severity"]), int(start["line"]), int(start["character"])))  # type: ignore[arg-type, index]
    return sorted(out)


def test_initialize_advertises_every_feature(tmp_path: Path) -> None:
    client = LspClient(tmp_path)
    try:
        caps = client.initialize(tmp_path)
    finally:
        assert client.close() == 0
    assert caps["positionEncoding"] == "utf-16"
    for key in (
        "hoverProvider",
        "definitionProvider",
        "referencesProvider",
        "renameProvider",
        "completionProvider",
        "documentFormattingProvider",
        "documentSymbolProvider",
        "codeActionProvider",
    ):
        assert caps[key], key
    assert caps["textDocumentSync"]["change"] == 2  # incremental


@pytest.mark.parametrize("path", EXAMPLES + INVALID, ids=lambda p: str(p.relative_to(ROOT)))
def test_diagnostics_are_those_of_validate(server: LspClient, path: Path) -> None:
    uri = server.open(path)
    got = published(server.diagnostics(uri))
    assert got == expected(path)
    if path.parent.name == "invalid":
        assert any(code[0] in "EW" for code, *_ in got)


def test_hints_follow_the_message(server: LspClient) -> None:
    bad = ROOT / "specs" / "invalid" / "several_problems.saga"
    items = server.diagnostics(server.open(bad, version=7), version=7)
    e302 = next(d for d in items if d["code"] == "E302")
    assert e302["source"] == "sagalang"
    assert "\nhint: did you mean" in e302["message"]


def test_diagnostics_follow_edits_and_the_last_version_wins(tmp_path: Path) -> None:
    spec = tmp_path / "s.saga"
    good = (
        "saga s {\n    input {\n        sku: string\n    }\n\n"
        "    readonly step a {\n        do app.x(s: input.sku)\n    }\n}\n"
    )
    spec.write_text(good, encoding="utf-8")
    client = LspClient(tmp_path)
    try:
        client.initialize(tmp_path, {"debounce_ms": 20})
        uri = client.open(spec)
        assert [d["code"] for d in client.diagnostics(uri, 1)] == ["W502"]
        start = client.mark()
        # Three quick edits: only the state after the last one matters.
        client.change(uri, 2, "skuu", {"start": {"line": 6, "character": 26}, "end": {"line": 6, "character": 29}})
        client.change(uri, 3, "x", {"start": {"line": 6, "character": 30}, "end": {"line": 6, "character": 30}})
        client.change(uri, 4, "", {"start": {"line": 6, "character": 30}, "end": {"line": 6, "character": 31}})
        final = client.diagnostics(uri, 4, start)
        assert sorted(d["code"] for d in final) == ["E302", "W403", "W502"]  # and sku is now unused
        e302 = next(d for d in final if d["code"] == "E302")
        assert e302["range"] == {"start": {"line": 6, "character": 26}, "end": {"line": 6, "character": 30}}
        # A syntax error while typing is reported where the parser stops.
        start = client.mark()
        client.change(uri, 5, "saga s {\n    step a {\n")
        broken = client.diagnostics(uri, 5, start)
        assert [d["code"] for d in broken] == ["E013"]
    finally:
        assert client.close() == 0


def _write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_files_a_document_imports_get_their_diagnostics(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
    lib = _write(
        tmp_path,
        "lib.saga",
        "saga pay {\n    input {\n        amount: number\n    }\n\n"
        "    readonly step p {\n        do app.x(a: input.amont)\n    }\n}\n",
    )
    main = _write(
        tmp_path, "main.saga", 'import "lib.saga"\n\nsaga m {\n    step c {\n        call pay(amount: 1)\n    }\n}\n'
    )
    client = LspClient(tmp_path)
    try:
        client.initialize(tmp_path, {"debounce_ms": 0})
        start = client.mark()
        uri = client.open(main)
        assert client.diagnostics(uri, 1, start) == []
        lib_items = client.diagnostics(lib.as_uri(), None, start)
        assert "E302" in [d["code"] for d in lib_items]
        # The imported file, opened and edited (unsaved): the importer sees the new text.
        start = client.mark()
        lib_uri = client.open(lib)
        client.diagnostics(lib_uri, 1, start)
        client.diagnostics(uri, 1, start)  # opening lib analyses its importer again
        start = client.mark()
        client.change(lib_uri, 2, lib.read_text(encoding="utf-8").replace("saga pay", "saga pays"))
        main_items = client.diagnostics(uri, 1, start)
        assert [d["code"] for d in main_items] == ["E704"]
        assert "did you mean 'pays'" in main_items[0]["message"]
        # Closing a document clears what it published.
        start = client.mark()
        client.notify("textDocument/didClose", {"textDocument": {"uri": lib_uri}})
        assert client.diagnostics(lib_uri, None, start) == []
    finally:
        assert client.close() == 0


def test_the_projects_plugins_are_loaded(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.sagalang]\nplugins = ['handlers.py']\n", encoding="utf-8")
    _write(
        tmp_path,
        "handlers.py",
        '''\
        from sagalang.plugins import handler

        @handler("shop.reserve")
        def reserve(sku: str, qty: int) -> dict:
            """Reserve stock."""
            return {}
        ''',
    )
    spec = _write(
        tmp_path, "s.saga", 'saga s {\n    readonly step a {\n        do shop.reserv(sku: "x", qty: 1)\n    }\n}\n'
    )
    client = LspClient(tmp_path)
    try:
        client.initialize(tmp_path, {"debounce_ms": 0})
        items = client.diagnostics(client.open(spec))
        assert [d["code"] for d in items] == ["E501"]
        assert "did you mean 'shop.reserve'" in items[0]["message"]
    finally:
        assert client.close() == 0


def test_a_plugin_that_fails_to_load_is_shown_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[tool.sagalang]\nplugins = ['broken.py']\n", encoding="utf-8")
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n", encoding="utf-8")
    spec = _write(tmp_path, "s.saga", "saga s {\n    step a {\n        do shop.x()\n    }\n}\n")
    client = LspClient(tmp_path)
    try:
        client.initialize(tmp_path, {"debounce_ms": 0})
        start = client.mark()
        items = client.diagnostics(client.open(spec), None, start)
        assert [d["code"] for d in items] == ["I609"]
        shown = client.notification("window/showMessage", lambda p: "boom" in p["message"], start)
        assert shown["type"] == 2
    finally:
        assert client.close() == 0


def test_without_pygls_the_command_prints_one_line_hint() -> None:
    code = "import sys; sys.modules['pygls'] = None; from sagalang.cli import main; main(['lsp'])"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "sagalang: error: the language server needs pygls and lsprotocol: pip install 'sagalang[lsp]'"
    ]
    assert "Traceback" not in proc.stderr


def test_options_and_plugins_are_logged(tmp_path: Path) -> None:
    (tmp_path / "handlers.py").write_text("", encoding="utf-8")
    client = LspClient(tmp_path, ("--plugin", "handlers.py", "--debounce-ms", "70"))
    try:
        start = client.mark()
        client.initialize(tmp_path)
        note = client.notification("window/logMessage", lambda p: p["message"].startswith("sagalang "), start)
        assert "checked 70 ms after the last edit, plugins handlers.py" in note["message"]
    finally:
        assert client.close() == 0
    client = LspClient(tmp_path)
    try:
        start = client.mark()
        client.initialize(tmp_path, {"debounce_ms": 5})
        note = client.notification("window/logMessage", lambda p: p["message"].startswith("sagalang "), start)
        assert "checked 5 ms after" in note["message"]
    finally:
        assert client.close() == 0


def test_an_unsaved_document_is_checked_under_its_own_uri(server: LspClient) -> None:
    uri = "untitled:Untitled-1"
    start = server.mark()
    server.notify(
        "textDocument/didOpen",
        {"textDocument": {"uri": uri, "languageId": "saga", "version": 1, "text": "saga s {\n    step a {\n"}},
    )
    assert [d["code"] for d in server.diagnostics(uri, 1, start)] == ["E013"]
