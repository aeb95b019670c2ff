"""Security headers on every response of the admin UI, set once around the whole app.

Pages, redirects, static files, 404s and 500s all pass through `SecurityHeaders`, so a
view cannot forget them. The values:

- `Content-Security-Policy`: only our own scripts, styles and fetches. `style-src` keeps
  `'unsafe-inline'` for the `style="--w: 42%"` attributes that size the bars and charts
  (inline *styles* cannot run code; inline *scripts* stay blocked). The builder's data
  travels in `<script type="application/json">`, which is data, not a script, so
  `script-src 'self'` needs no exception. `frame-ancestors 'none'` is the modern
  `X-Frame-Options: DENY`, sent too for older browsers.
- `Referrer-Policy: same-origin`: the UI's URLs name people and searches
  (`/ui/people/p_…`, `/ui/people?q=hanako@example.jp`); no other origin gets them, not
  even the origin alone (which `strict-origin-when-cross-origin` would send).
- `X-Content-Type-Options: nosniff`: a file is only what its Content-Type says.
- `Cache-Control: no-store` unless the response set its own, except static files: pages
  and CSV downloads hold personal data that no cache should keep.
"""

from __future__ import annotations

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_SECURITY_POLICY", "REFERRER_POLICY", "SecurityHeaders"]

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
REFERRER_POLICY = "same-origin"
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Referrer-Policy": REFERRER_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


class SecurityHeaders:
    """ASGI middleware: the headers above on every HTTP response of `app`."""

    def __init__(self, app: ASGIApp, *, static_prefix: str = "/static/") -> None:
        self.app = app
        self.static_prefix = static_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        static = path.removeprefix(root).startswith(self.static_prefix)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in _HEADERS.items():
                    headers[name] = value
                if not static and "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
