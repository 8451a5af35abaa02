"""How a ``sagalang ui`` server is set up: the store, where it listens, whether actions are on."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

__all__ = ["UIConfig", "is_loopback"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (127.0.0.0/8, ::1, localhost)."""
    name = host.strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class UIConfig:
    """The settings of one server; a token is required whenever ``host`` is not a loopback address."""

    store_url: str
    host: str = "127.0.0.1"
    port: int = 8765
    allow_actions: bool = False
    token: str | None = None
    plugins: tuple[str, ...] = ()
    page_size: int = 50
    poll_seconds: float = 2.0

    def problem(self) -> str | None:
        """Why this configuration must not start (None when it may)."""
        if not self.token and not is_loopback(self.host):
            return (
                f"--host {self.host} is not a loopback address: give --token TOKEN (or $SAGALANG_UI_TOKEN) "
                "so that only those who know it can see the runs"
            )
        if self.token is not None and len(self.token) < 16:
            return "--token must be at least 16 characters long"
        return None
