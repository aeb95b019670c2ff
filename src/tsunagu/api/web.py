"""What browsers fetch: the tag (`/tag.js`) and the Segment browser SDK's settings.

The Segment browser SDK (`@segment/analytics-next`) starts by fetching
`{cdn}/v1/projects/{writeKey}/settings`; pointing its CDN at tsunagu makes it read ours,
whose `Segment.io` integration sends every event back to tsunagu's `/v1/...` endpoints.
"""

from __future__ import annotations

import gzip
import os
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..core.errors import NotFound
from .responses import CORS_HEADERS, send_error, send_json

if TYPE_CHECKING:
    from ..app import Platform

__all__ = ["handle_browser_sdk", "handle_settings", "handle_tag", "is_browser_sdk_path", "is_settings_path"]

# Where the Segment browser SDK's files are (its npm package's dist/umd): with it set,
# tsunagu is the SDK's whole CDN, and a site only changes the CDN address.
SDK_DIR_ENV = "TSUNAGU_BROWSER_SDK_DIR"


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


def is_browser_sdk_path(path: str) -> bool:
    return path.startswith("/analytics-next/bundles/") or (
        path.startswith("/analytics.js/v1/") and path.endswith("/analytics.min.js")
    )


async def handle_browser_sdk(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Serve the Segment browser SDK (standalone build and its chunks) from its npm package."""
    directory = os.environ.get(SDK_DIR_ENV)
    if not directory:
        await send_error(
            send,
            NotFound.for_field(
                "path",
                f"this server does not host the Segment browser SDK: set {SDK_DIR_ENV} to the dist/umd folder "
                "of the @segment/analytics-next npm package",
            ),
        )
        return
    path = scope["path"]
    name = "standalone.js" if path.startswith("/analytics.js/") else path.rsplit("/", 1)[-1]
    root = Path(directory).resolve()
    file = (root / name).resolve()
    if file.parent != root or not file.is_file() or not name.endswith(".js"):
        await send_error(send, NotFound.for_field("path", f"no SDK file {name!r}"))
        return
    body = file.read_bytes()
    headers = [
        (b"content-type", b"application/javascript; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"public, max-age=3600"),
        *CORS_HEADERS,
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
