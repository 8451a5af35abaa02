"""``sagalang ui``: a web view of the runs in a store, served by Starlette, rendered by Jinja.

Read-only unless started with ``--allow-actions``; every page works without
network access (htmx and the styles are served from this package).
"""

from __future__ import annotations

from .app import UI, create_app
from .config import UIConfig, is_loopback

__all__ = ["UI", "UIConfig", "create_app", "is_loopback"]
