"""The language server: pygls wiring, debounced diagnostics, and one handler per feature.

Each handler finds the document's analysis and hands it to the module that
answers (hover, navigation, completion, symbols, actions); nothing here
decides anything about the language.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from lsprotocol import types as lsp
from pygls.lsp.server import LanguageServer

from ..errors import SagaSyntaxError
from ..fmt import format_source
from .actions import code_actions, to_lsp
from .completion import complete
from .hover import hover
from .navigation import definition, prepare_rename, references, rename
from .symbols import document_symbols
from .text import Text
from .workspace import Analysis, Workspace, path_of, uri_of

__all__ = ["DEFAULT_DEBOUNCE", "SagaServer", "build_server"]

log = logging.getLogger(__name__)

DEFAULT_DEBOUNCE = 0.05  # seconds between the last keystroke and a new analysis


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sagalang")
    except PackageNotFoundError:
        return "0+unknown"


class SagaServer(LanguageServer):
    """sagalang's language server: the workspace state and the debounced diagnostics."""

    def __init__(self, plugins: tuple[str, ...] = (), debounce: float = DEFAULT_DEBOUNCE) -> None:
        super().__init__("sagalang", _version(), text_document_sync_kind=lsp.TextDocumentSyncKind.Incremental)
        self.state = Workspace(plugins=plugins, on_problem=self.warn)
        self.debounce = debounce
        self.pending: dict[str, asyncio.TimerHandle] = {}
        # Files whose diagnostics came from another document's analysis: file uri -> that document's uri.
        self.published_by: dict[str, str] = {}

    def warn(self, message: str) -> None:
        """Show a problem to the user (a plugin that does not load, a file that cannot be formatted)."""
        self.window_show_message(lsp.ShowMessageParams(lsp.MessageType.Warning, message))

    # ---- diagnostics ----
    def schedule(self, targets: list[str]) -> None:
        """Analyse these documents once the user has paused typing."""
        loop = asyncio.get_running_loop()
        for target in targets:
            handle = self.pending.pop(target, None)
            if handle is not None:
                handle.cancel()
            self.pending[target] = loop.call_later(self.debounce, self.publish, target)

    def publish(self, uri: str) -> None:
        """Validate an open document and publish the diagnostics of every file it reaches."""
        self.pending.pop(uri, None)
        analysis = self.state.analysis(uri)
        if analysis is None:
            return
        for path, diags in analysis.by_path().items():
            if path == analysis.path:
                items = [to_lsp(analysis.text, d) for d in diags]
                self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(uri, items, analysis.version))
                continue
            target = uri_of(path)
            if target in self.state.docs:
                continue  # an open file publishes its own diagnostics
            self.published_by[target] = uri
            items = [to_lsp(_text_of(analysis, path), d) for d in diags]
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(target, items))

    def forget(self, uri: str) -> None:
        """A document closed: clear what it published for itself and for the files it imports."""
        handle = self.pending.pop(uri, None)
        if handle is not None:
            handle.cancel()
        self.state.close(uri)
        for target in [uri, *(t for t, owner in self.published_by.items() if owner == uri)]:
            self.published_by.pop(target, None)
            self.text_document_publish_diagnostics(lsp.PublishDiagnosticsParams(target, []))

    def analysis(self, uri: str) -> Analysis | None:
        """The current analysis of an open document."""
        return self.state.analysis(uri)


def _text_of(analysis: Analysis, path: Path) -> Text:
    sf = analysis.project.files.get(path)
    return Text(sf.text if sf is not None and sf.text is not None else "", analysis.text.encoding)


def _options(params: lsp.InitializeParams) -> dict[str, Any]:
    options = params.initialization_options
    return options if isinstance(options, dict) else {}


def build_server(plugins: tuple[str, ...] = (), debounce: float = DEFAULT_DEBOUNCE) -> SagaServer:
    """A server with every feature registered (start it with ``start_io()``)."""
    server = SagaServer(plugins, debounce)
    _register_sync(server)
    _register_features(server)
    return server


def _register_sync(server: SagaServer) -> None:
    @server.feature(lsp.INITIALIZE)
    def initialize(ls: SagaServer, params: lsp.InitializeParams) -> None:
        ls.state.encoding = str(ls.workspace.position_encoding or "utf-16")
        debounce = _options(params).get("debounce_ms")
        if isinstance(debounce, int | float) and not isinstance(debounce, bool) and debounce >= 0:
            ls.debounce = debounce / 1000

    @server.feature(lsp.INITIALIZED)
    def initialized(ls: SagaServer, params: lsp.InitializedParams) -> None:
        # The client's log (VS Code's Output panel) says what the server runs with.
        plugins = f", plugins {', '.join(ls.state.plugins)}" if ls.state.plugins else ""
        message = f"sagalang {ls.version}: files checked {ls.debounce * 1000:g} ms after the last edit{plugins}"
        ls.window_log_message(lsp.LogMessageParams(lsp.MessageType.Info, message))

    @server.feature(lsp.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: SagaServer, params: lsp.DidOpenTextDocumentParams) -> None:
        doc = params.text_document
        ls.schedule(ls.state.open(doc.uri, doc.text, doc.version))

    @server.feature(lsp.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: SagaServer, params: lsp.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        doc = ls.workspace.get_text_document(uri)
        ls.schedule(ls.state.open(uri, doc.source, params.text_document.version))

    @server.feature(lsp.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: SagaServer, params: lsp.DidSaveTextDocumentParams) -> None:
        uri = params.text_document.uri
        ls.schedule([uri, *ls.state.dependents(path_of(uri))])

    @server.feature(lsp.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: SagaServer, params: lsp.DidCloseTextDocumentParams) -> None:
        ls.forget(params.text_document.uri)


def _register_features(server: SagaServer) -> None:
    @server.feature(lsp.TEXT_DOCUMENT_HOVER)
    def on_hover(ls: SagaServer, params: lsp.HoverParams) -> lsp.Hover | None:
        a = ls.analysis(params.text_document.uri)
        return hover(a, params.position) if a is not None else None

    @server.feature(lsp.TEXT_DOCUMENT_DEFINITION)
    def on_definition(ls: SagaServer, params: lsp.DefinitionParams) -> list[lsp.Location]:
        a = ls.analysis(params.text_document.uri)
        return definition(a, params.position) if a is not None else []

    @server.feature(lsp.TEXT_DOCUMENT_REFERENCES)
    def on_references(ls: SagaServer, params: lsp.ReferenceParams) -> list[lsp.Location]:
        a = ls.analysis(params.text_document.uri)
        return references(a, params.position, params.context.include_declaration) if a is not None else []

    @server.feature(lsp.TEXT_DOCUMENT_PREPARE_RENAME)
    def on_prepare_rename(ls: SagaServer, params: lsp.PrepareRenameParams) -> lsp.Range | None:
        a = ls.analysis(params.text_document.uri)
        return prepare_rename(a, params.position) if a is not None else None

    @server.feature(lsp.TEXT_DOCUMENT_RENAME)
    def on_rename(ls: SagaServer, params: lsp.RenameParams) -> lsp.WorkspaceEdit | None:
        a = ls.analysis(params.text_document.uri)
        return rename(a, params.position, params.new_name) if a is not None else None

    @server.feature(lsp.TEXT_DOCUMENT_COMPLETION, lsp.CompletionOptions(trigger_characters=[".", "(", ",", "{"]))
    def on_completion(ls: SagaServer, params: lsp.CompletionParams) -> lsp.CompletionList:
        uri = params.text_document.uri
        a = ls.analysis(uri)
        if a is None:
            return lsp.CompletionList(False, [])
        module = a.module or ls.state.parsed.get(uri)
        scope = {name: saga for name, (saga, _) in a.scope().items()}
        if not scope and module is not None:
            scope = {s.name: s for s in module.sagas}
        items = complete(a.text, a.text.offset(params.position), module, a.registry, scope)
        return lsp.CompletionList(False, items)

    @server.feature(lsp.TEXT_DOCUMENT_FORMATTING)
    def on_formatting(ls: SagaServer, params: lsp.DocumentFormattingParams) -> list[lsp.TextEdit] | None:
        a = ls.analysis(params.text_document.uri)
        return _formatting(ls, a) if a is not None else None

    @server.feature(lsp.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
    def on_symbols(ls: SagaServer, params: lsp.DocumentSymbolParams) -> list[lsp.DocumentSymbol]:
        a = ls.analysis(params.text_document.uri)
        return document_symbols(a) if a is not None else []

    @server.feature(
        lsp.TEXT_DOCUMENT_CODE_ACTION, lsp.CodeActionOptions(code_action_kinds=[lsp.CodeActionKind.QuickFix])
    )
    def on_code_action(ls: SagaServer, params: lsp.CodeActionParams) -> list[lsp.CodeAction]:
        a = ls.analysis(params.text_document.uri)
        return code_actions(a, params.range) if a is not None else []


def _formatting(ls: SagaServer, a: Analysis) -> list[lsp.TextEdit] | None:
    """``sagalang fmt`` on the document's text: one edit replacing it all (none when already formatted)."""
    source = a.text.text
    try:
        formatted = format_source(source.replace("\r\n", "\n"), a.source.display if a.source else a.uri)
    except SagaSyntaxError as err:
        ls.warn(f"sagalang fmt: cannot format {err}")
        return None
    if "\r\n" in source:
        formatted = formatted.replace("\n", "\r\n")
    if formatted == source:
        return []
    return [lsp.TextEdit(a.text.whole(), formatted)]
