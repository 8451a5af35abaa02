"""The web view's defences: the access token, CSRF tokens for every form, allowed hosts, headers.

* **Token.** With ``--token``, every request but static files must carry it:
  ``Authorization: Bearer TOKEN``, or a cookie set by opening any page once
  with ``?token=TOKEN`` (the server then redirects to the same page without it,
  so the token does not stay in the address bar or the history).
* **CSRF.** A form carries an HMAC of a random cookie under a key of this
  server process; a POST without the matching pair, or from another origin, is refused.
* **Hosts.** Bound to a loopback address, the server answers only requests
  naming a loopback host, so a page elsewhere cannot reach it by DNS rebinding.
* **Headers.** A strict Content-Security-Policy (scripts, styles and images
  from this server only; no inline script), no framing, no referrer to other sites, no caching.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

__all__ = [
    "CSRF_COOKIE",
    "CSRF_FIELD",
    "LOOPBACK_HOSTS",
    "TOKEN_COOKIE",
    "Guard",
    "security_headers",
]

TOKEN_COOKIE = "sagalang_ui_token"
CSRF_COOKIE = "sagalang_ui_csrf"
CSRF_FIELD = "csrf_token"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
# A diagram opened on its own is a document: it must not run anything either.
SVG_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"


def security_headers(response: Response, svg: bool = False) -> None:
    """Add the headers every response carries."""
    response.headers["Content-Security-Policy"] = SVG_CSP if svg else CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"  # no-referrer would make form posts say Origin: null
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Cache-Control", "no-store")


def _digest(token: str) -> str:
    return hashlib.sha256(b"sagalang-ui-token\0" + token.encode()).hexdigest()


class Guard:
    """The token check and the CSRF tokens of one server process."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self._token_digest = _digest(token) if token else None
        self._key = secrets.token_bytes(32)  # signs CSRF tokens; new with every start

    # -- the access token -------------------------------------------------------------------

    def admits(self, request: Request) -> bool:
        """Whether ``request`` carries the token (always, when the server has none)."""
        if self.token is None:
            return True
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer ") and hmac.compare_digest(auth[7:].strip().encode(), self.token.encode()):
            return True
        cookie = request.cookies.get(TOKEN_COOKIE, "")
        return bool(cookie) and hmac.compare_digest(cookie.encode(), (self._token_digest or "").encode())

    def token_login(self, request: Request) -> Response | None:
        """For ``?token=TOKEN``: a redirect to the same URL without it, setting the cookie (None otherwise)."""
        given = request.query_params.get("token")
        if self.token is None or given is None or request.method != "GET":
            return None
        if not hmac.compare_digest(given.encode(), self.token.encode()):
            return None
        rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
        target = request.url.path + (f"?{urlencode(rest)}" if rest else "")
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(TOKEN_COOKIE, self._token_digest or "", httponly=True, samesite="strict", path="/")
        return response

    async def check(self, request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        """Middleware: the token on everything but static files, then the security headers."""
        if self.token is not None and not request.url.path.startswith("/static/"):
            login = self.token_login(request)
            if login is not None:
                security_headers(login)
                return login
            if not self.admits(request):
                refused = PlainTextResponse(
                    "sagalang ui: this server needs its token: open the address `sagalang ui` printed "
                    "(…/?token=TOKEN) or send Authorization: Bearer TOKEN\n",
                    status_code=401,
                )
                security_headers(refused)
                return refused
        response = await call_next(request)
        security_headers(response, svg=response.headers.get("content-type", "").startswith("image/svg+xml"))
        return response

    # -- CSRF ---------------------------------------------------------------------------------

    def csrf_cookie(self, request: Request) -> str:
        """The browser's CSRF cookie value, or a new one (set it with :meth:`set_csrf_cookie`)."""
        value = request.cookies.get(CSRF_COOKIE, "")
        return value if len(value) == 43 else secrets.token_urlsafe(32)

    def set_csrf_cookie(self, response: Response, value: str) -> None:
        """Send the CSRF cookie a form's token was made for."""
        response.set_cookie(CSRF_COOKIE, value, httponly=True, samesite="strict", path="/")

    def csrf_token(self, cookie: str) -> str:
        """The token a form carries for ``cookie``."""
        return hmac.new(self._key, cookie.encode(), hashlib.sha256).hexdigest()

    def csrf_problem(self, request: Request, submitted: str | None) -> str | None:
        """Why a POST fails the CSRF check (None when it passes)."""
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            return "the form was sent from another site"
        cookie = request.cookies.get(CSRF_COOKIE)
        if not cookie or not submitted:
            return "the form has no CSRF token (open the page again and resend it)"
        if not hmac.compare_digest(submitted.encode(), self.csrf_token(cookie).encode()):
            return "the form's CSRF token does not match (it expired when the server restarted: open the page again)"
        return None
