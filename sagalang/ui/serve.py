"""Run the web view under uvicorn until interrupted."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import uvicorn

from ..errors import SagaError
from .app import create_app
from .config import UIConfig

__all__ = ["address", "listen", "serve"]


def address(config: UIConfig, port: int | None = None) -> str:
    """The URL to open (with the token, so that opening it once lets the browser in)."""
    host = config.host.strip("[]")
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{port if port is not None else config.port}/"
    return url + (f"?token={config.token}" if config.token else "")


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free one), or a SagaError saying why not."""
    try:
        family, kind, proto, _, where = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
    except OSError as err:
        raise SagaError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(where)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise SagaError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None
    return sock


def serve(config: UIConfig, announce: Callable[[str], None] = print) -> None:
    """Serve ``config`` until Ctrl-C; a store that cannot be opened or a busy port is a SagaError first."""
    app = create_app(config)

    async def main() -> None:
        await app.state.ui.store.open()  # fail early and clearly; the app's own open is then a no-op
        sock = listen(config.host, config.port)
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", access_log=False))
        mode = "actions on" if config.allow_actions else "read-only"
        announce(f"sagalang ui ({mode}) on {address(config, sock.getsockname()[1])}  (Ctrl-C to stop)")
        try:
            await server.serve(sockets=[sock])
        finally:
            sock.close()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
