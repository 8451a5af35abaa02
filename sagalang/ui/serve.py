"""Run the web view under uvicorn until interrupted."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import uvicorn

from ..errors import StoreError
from .app import create_app
from .config import UIConfig

__all__ = ["serve"]


def address(config: UIConfig, port: int | None = None) -> str:
    """The URL to open (with the token, so that opening it once lets the browser in)."""
    host = f"[{config.host}]" if ":" in config.host and not config.host.startswith("[") else config.host
    shown = "127.0.0.1" if host in ("0.0.0.0", "[::]") else host
    url = f"http://{shown}:{port if port is not None else config.port}/"
    return url + (f"?token={config.token}" if config.token else "")


def serve(config: UIConfig, announce: Callable[[str], None] = print) -> None:
    """Serve ``config`` until Ctrl-C; a store that cannot be opened is a StoreError before anything listens."""
    app = create_app(config)
    server = uvicorn.Server(
        uvicorn.Config(app, host=config.host, port=config.port, log_level="warning", lifespan="on", access_log=False)
    )

    async def main() -> None:
        await app.state.ui.store.open()  # fail early and clearly; the app's own open is then a no-op
        task = asyncio.create_task(server.serve())
        while not server.started and not task.done():
            await asyncio.sleep(0.05)
        if server.started:
            port = server.servers[0].sockets[0].getsockname()[1] if server.servers else config.port
            mode = "actions on" if config.allow_actions else "read-only"
            announce(f"sagalang ui ({mode}) on {address(config, port)}  (Ctrl-C to stop)")
        await task
        if not server.started:
            raise StoreError(f"cannot listen on {config.host}:{config.port} (is the port in use?)")

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
