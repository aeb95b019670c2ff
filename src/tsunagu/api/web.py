"""What browsers fetch: the tag (`/tag.js`) and the Segment browser SDK's settings.

The Segment browser SDK (`@segment/analytics-next`) starts by fetching
`{cdn}/v1/projects/{writeKey}/settings`; pointing its CDN at tsunagu makes it read ours,
whose `Segment.io` integration sends every event back to tsunagu's `/v1/...` endpoints.
"""

from __future__ import annotations

import gzip
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

from ..core.errors import NotFound
from .responses import CORS_HEADERS, send_error, send_json

if TYPE_CHECKING:
    from ..app import Platform

__all__ = ["handle_settings", "handle_tag", "is_settings_path"]


@cache
def _tag() -> tuple[bytes, bytes]:
    source = resources.files("tsunagu.web").joinpath("tag.js").read_bytes()
    return source, gzip.compress(source, 9)


async def handle_tag(scope: dict[str, Any], receive: Any, send: Any) -> None:
    plain, packed = _tag()
    accept = dict(scope["headers"]).get(b"accept-encoding", b"")
    body = packed if b"gzip" in accept else plain
    headers = [
        (b"content-type", b"application/javascript; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        # short: a new tag version reaches every site within minutes
        (b"cache-control", b"public, max-age=300"),
        (b"vary", b"Accept-Encoding"),
        *CORS_HEADERS,
    ]
    if body is packed:
        headers.append((b"content-encoding", b"gzip"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def is_settings_path(path: str) -> bool:
    return path.startswith("/v1/projects/") and path.endswith("/settings")


async def handle_settings(platform: Platform, scope: dict[str, Any], receive: Any, send: Any) -> None:
    key = scope["path"][len("/v1/projects/") : -len("/settings")]
    if platform.workspace_for_write_key(key) is None:
        await send_error(send, NotFound.for_field("writeKey", "no workspace has this write key"))
        return
    host = dict(scope["headers"]).get(b"host", b"127.0.0.1").decode()
    scheme = scope.get("scheme", "http")
    api_host = f"{host}/v1"
    await send_json(
        send,
        200,
        {
            "integrations": {
                "Segment.io": {
                    "apiKey": key,
                    "apiHost": api_host,
                    "protocol": scheme,
                    "unbundledIntegrations": [],
                    "addBundledMetadata": True,
                    "maybeBundledConfigIds": {},
                    "versionSettings": {"componentTypes": ["browser"]},
                }
            },
            "plan": {
                "track": {"__default": {"enabled": True, "integrations": {}}},
                "identify": {"__default": {"enabled": True}},
                "group": {"__default": {"enabled": True}},
            },
            "edgeFunction": {},
            "analyticsNextEnabled": True,
            "middlewareSettings": {},
            "enabledMiddleware": {},
            # metrics go to us too (answered and dropped), never to Segment
            "metrics": {"sampleRate": 0, "host": api_host},
            "legacyVideoPluginsEnabled": False,
            "remotePlugins": [],
        },
    )
