"""JSON responses for the raw ASGI ingest path (no framework on the hot path)."""

from __future__ import annotations

from typing import Any

import msgspec

from ..core.errors import TsunaguError

__all__ = ["CORS_HEADERS", "send_error", "send_json"]

_encode = msgspec.json.Encoder().encode

# Browsers post from the retailer's own site: answer from any origin, with the headers the
# Segment browser SDK sends.
CORS_HEADERS = [
    (b"access-control-allow-origin", b"*"),
    (b"access-control-allow-methods", b"POST, GET, OPTIONS"),
    (b"access-control-allow-headers", b"Authorization, Content-Type, X-Retry-Count, Content-Encoding"),
    (b"access-control-max-age", b"86400"),
]


async def send_json(send: Any, status: int, body: Any, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    payload = _encode(body)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"x-content-type-options", b"nosniff"),
    ]
    headers += CORS_HEADERS
    if extra:
        headers += extra
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def send_error(send: Any, error: TsunaguError, extra: list[tuple[bytes, bytes]] | None = None) -> None:
    """`error` in the one error shape (`TsunaguError.to_dict`), as every surface answers it."""
    headers = list(extra or ())
    if error.status == 401:
        headers.append((b"www-authenticate", b'Basic realm="tsunagu"'))
    await send_json(send, error.status, error.to_dict(), headers)
