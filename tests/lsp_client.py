"""A small JSON-RPC client that drives ``sagalang lsp`` in a real subprocess over stdio.

Messages are read by a thread; a test waits for a response or a notification
on a condition variable (with a deadline), never by sleeping.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

TIMEOUT = 60.0


class LspError(Exception):
    """The server answered a request with an error."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message", str(error)))
        self.error = error


class LspClient:
    """One server process and the messages it sent."""

    def __init__(self, cwd: Path, args: tuple[str, ...] = (), env: dict[str, str] | None = None) -> None:
        self.stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close(), after the process)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "sagalang", "lsp", *args],
            cwd=cwd,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env={**os.environ, **(env or {})},
        )
        self.cond = threading.Condition()
        self.responses: dict[int, dict[str, Any]] = {}
        self.notifications: list[dict[str, Any]] = []
        self.next_id = 0
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    # ---- wire ----
    def _send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode("utf-8")
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        self.proc.stdin.flush()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    with self.cond:
                        self.cond.notify_all()
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            assert length is not None
            message = json.loads(out.read(length))
            with self.cond:
                if "id" in message and "method" in message:
                    self._answer_server_request(message)
                elif "id" in message:
                    self.responses[message["id"]] = message
                else:
                    self.notifications.append(message)
                self.cond.notify_all()

    def _answer_server_request(self, message: dict[str, Any]) -> None:
        self._send({"id": message["id"], "result": None})

    def _wait(self, found: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
        with self.cond:
            ok = self.cond.wait_for(lambda: found() is not None or self.proc.poll() is not None, timeout)
            value = found()
            if value is None:
                raise AssertionError(
                    f"no {what} within {timeout}s (server {'exited' if ok else 'silent'})\n{self.log()}"
                )
            return value

    def log(self) -> str:
        """What the server wrote on stderr."""
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")[-4000:]

    # ---- protocol ----
    def request(self, method: str, params: Any, timeout: float = TIMEOUT) -> Any:
        """Send a request and return its result (LspError when the server answers with an error)."""
        self.next_id += 1
        rid = self.next_id
        self._send({"id": rid, "method": method, "params": params})
        response = self._wait(lambda: self.responses.get(rid), f"response to {method}", timeout)
        if "error" in response:
            raise LspError(response["error"])
        return response.get("result")

    def notify(self, method: str, params: Any) -> None:
        """Send a notification."""
        self._send({"method": method, "params": params})

    def notification(self, method: str, match: Callable[[dict[str, Any]], bool], start: int = 0) -> dict[str, Any]:
        """The first notification ``method`` from index ``start`` on whose params ``match`` (waiting for it)."""

        def find() -> dict[str, Any] | None:
            for note in self.notifications[start:]:
                if note["method"] == method and match(note["params"]):
                    return note["params"]  # type: ignore[no-any-return]
            return None

        return self._wait(find, f"{method} notification")  # type: ignore[no-any-return]

    def mark(self) -> int:
        """The number of notifications seen so far (to wait only for later ones)."""
        with self.cond:
            return len(self.notifications)

    def initialize(self, root: Path, options: dict[str, Any] | None = None) -> dict[str, Any]:
        """The initialize handshake; returns the server's capabilities."""
        result = self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root.as_uri(),
                "capabilities": {"general": {"positionEncodings": ["utf-16"]}},
                "initializationOptions": options or {},
            },
        )
        self.notify("initialized", {})
        return result["capabilities"]  # type: ignore[no-any-return]

    def open(self, path: Path, text: str | None = None, version: int = 1) -> str:
        """didOpen a file (its text from disk unless given); returns its URI."""
        uri = path.resolve().as_uri()
        body = path.read_text(encoding="utf-8") if text is None else text
        self.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "saga", "version": version, "text": body}},
        )
        return uri

    def change(self, uri: str, version: int, text: str, rng: dict[str, Any] | None = None) -> None:
        """didChange: the whole text, or ``text`` in place of ``rng``."""
        change: dict[str, Any] = {"text": text} if rng is None else {"range": rng, "text": text}
        self.notify(
            "textDocument/didChange", {"textDocument": {"uri": uri, "version": version}, "contentChanges": [change]}
        )

    def diagnostics(self, uri: str, version: int | None = None, start: int = 0) -> list[dict[str, Any]]:
        """The diagnostics published for ``uri`` (for ``version`` when given), waiting for them."""
        params = self.notification(
            "textDocument/publishDiagnostics",
            lambda p: p["uri"] == uri and (version is None or p.get("version") == version),
            start,
        )
        return params["diagnostics"]  # type: ignore[no-any-return]

    def at(self, method: str, uri: str, line: int, character: int, **extra: Any) -> Any:
        """A request about one position of a document."""
        params = {"textDocument": {"uri": uri}, "position": {"line": line, "character": character}, **extra}
        return self.request(method, params)

    def close(self) -> int:
        """shutdown + exit; returns the server's exit code."""
        try:
            if self.proc.poll() is None:
                self.request("shutdown", None, timeout=20)
                self.notify("exit", None)
            return self.proc.wait(timeout=20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            assert self.proc.stdin is not None and self.proc.stdout is not None
            self.proc.stdin.close()
            self.reader.join(timeout=20)
            self.proc.stdout.close()
            self.stderr.close()
