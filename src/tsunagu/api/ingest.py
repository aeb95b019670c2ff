"""Segment-spec HTTP ingest, as a bare ASGI handler: the hot path has no framework.

Wire-compatible with the Segment HTTP tracking API (track, identify, page, screen,
group, alias, batch, import), including the short paths the Segment browser SDK posts to
(`/v1/t`, `/v1/b`, ...), `text/plain` bodies, gzip, and the write key as the basic-auth
user or `writeKey` in the body.
"""

from __future__ import annotations

import base64
import binascii
import logging
import zlib
from typing import TYPE_CHECKING, Any

import msgspec

from ..core.errors import FieldError, InvalidInput, MethodNotAllowed, PayloadTooLarge, TsunaguError, Unauthorized
from ..core.events import MAX_BATCH_BYTES, decode_batch, decode_message, normalize
from .responses import CORS_HEADERS, send_error, send_json

if TYPE_CHECKING:
    from ..app import Platform

__all__ = ["INGEST_PATHS", "handle_ingest"]

log = logging.getLogger("tsunagu.ingest")

_SINGLE = {
    "track": "track", "t": "track", "identify": "identify", "i": "identify",
    "page": "page", "p": "page", "screen": "screen", "s": "screen",
    "group": "group", "g": "group", "alias": "alias", "a": "alias",
}  # fmt: skip
_BATCH = {"batch", "b", "import"}
# /v1/m: the Segment browser SDK's own metrics, answered and dropped (never sent on)
INGEST_PATHS = frozenset([*(f"/v1/{k}" for k in (*_SINGLE, *_BATCH)), "/v1/m"])
# A compressed body is read up to this much before it is inflated (and the inflated
# size is capped at MAX_BATCH_BYTES), so a gzip bomb costs us at most this.
_MAX_WIRE_BYTES = MAX_BATCH_BYTES + 1024
_OK = {"success": True}


async def _read_body(scope: dict[str, Any], receive: Any) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > _MAX_WIRE_BYTES:
                raise PayloadTooLarge.for_field("", f"body is over the limit of {MAX_BATCH_BYTES // 1024} KB a batch")
            chunks.append(chunk)
        if not message.get("more_body"):
            break
    body = b"".join(chunks)
    encoding = _header(scope, b"content-encoding")
    if encoding and encoding.lower() in (b"gzip", b"deflate"):
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib framing
        try:
            body = inflater.decompress(body, MAX_BATCH_BYTES + 1)
        except zlib.error as exc:
            raise InvalidInput.for_field("", f"body is not valid {encoding.decode()}: {exc}") from None
        if len(body) > MAX_BATCH_BYTES or inflater.unconsumed_tail:
            raise PayloadTooLarge.for_field(
                "",
                f"inflated body is over the limit of {MAX_BATCH_BYTES // 1024} KB a batch",
            )
    return body


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


def _basic_user(scope: dict[str, Any]) -> str | None:
    auth = _header(scope, b"authorization")
    if not auth:
        return None
    scheme, _, token = auth.partition(b" ")
    if scheme.lower() != b"basic":
        raise Unauthorized.for_field("Authorization", "use HTTP basic auth with the write key as the user")
    try:
        user = base64.b64decode(token.strip(), validate=True).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        raise Unauthorized.for_field("Authorization", "basic auth credentials are not valid base64") from None
    return user or None


def _workspace(platform: Platform, key: str | None) -> str:
    if not key:
        raise Unauthorized.for_field(
            "writeKey", "missing: send the write key as the HTTP basic auth user or as writeKey in the body"
        )
    workspace = platform.workspace_for_write_key(key)
    if workspace is None:
        raise Unauthorized.for_field("writeKey", "unknown write key: no workspace has it")
    return workspace


async def handle_ingest(platform: Platform, scope: dict[str, Any], receive: Any, send: Any) -> None:
    method = scope["method"]
    if method == "OPTIONS":
        await send({"type": "http.response.start", "status": 204, "headers": CORS_HEADERS})
        await send({"type": "http.response.body", "body": b""})
        return
    if method != "POST":
        err = MethodNotAllowed(f"{method} is not a method of {scope['path']}: use POST")
        await send_error(send, err, [(b"allow", b"OPTIONS, POST")])
        return
    name = scope["path"][4:]
    if name == "m":
        await send_json(send, 200, _OK)
        return
    try:
        header_key = _basic_user(scope)
        body = await _read_body(scope, receive)
        if name in _BATCH:
            await _batch(platform, header_key, body, send)
        else:
            await _single(platform, _SINGLE[name], header_key, body, send)
    except TsunaguError as err:
        await send_error(send, err)
    except Exception:  # never a crash, never a bare 500 page
        log.exception("ingest failed")
        await send_error(send, TsunaguError("internal error; see the server log"))


class _KeyOnly(msgspec.Struct):
    writeKey: Any = None


_key_decoder = msgspec.json.Decoder(_KeyOnly)


def _body_key(body: bytes) -> str | None:
    """The writeKey in a body that may be otherwise invalid (we judge the rest after auth)."""
    try:
        key = _key_decoder.decode(body).writeKey
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return None
    return key if isinstance(key, str) else None


async def _single(platform: Platform, kind: str, header_key: str | None, body: bytes, send: Any) -> None:
    workspace = _workspace(platform, header_key if header_key is not None else _body_key(body))
    msg = decode_message(body)
    now = platform.clock()
    event = normalize(msg, received_at=now, new_id=platform.new_id, type_=kind)
    pipeline = await platform.pipeline(workspace)
    result = await pipeline.submit([event], now)
    if result.refused:
        raise InvalidInput.for_field("", result.refused[0][1])
    await send_json(send, 200, _OK)


async def _batch(platform: Platform, header_key: str | None, body: bytes, send: Any) -> None:
    workspace = _workspace(platform, header_key if header_key is not None else _body_key(body))
    batch = decode_batch(body)
    if not batch.batch:
        raise InvalidInput.for_field("batch", "must hold at least one message")
    now = platform.clock()
    new_id = platform.new_id
    context, sent_at = batch.context, batch.sentAt
    events = []
    where: list[int] = []  # the batch index of each event
    rejected: list[FieldError] = []
    for i, raw in enumerate(batch.batch):
        prefix = f"batch[{i}]"
        try:
            msg = decode_message(raw, prefix)
            events.append(
                normalize(
                    msg, received_at=now, new_id=new_id, batch_context=context, batch_sent_at=sent_at, prefix=prefix
                )
            )
            where.append(i)
        except InvalidInput as err:
            rejected.extend(FieldError(e.field, e.reason, i) for e in err.errors)
    if not events:
        raise InvalidInput(f"all {len(batch.batch)} messages were rejected", rejected)
    pipeline = await platform.pipeline(workspace)
    result = await pipeline.submit(events, now)
    if result.refused:
        rejected += [FieldError(f"batch[{where[j]}]", reason, where[j]) for j, reason in result.refused]
        rejected.sort(key=lambda e: e.index or 0)
        if not result.accepted and not result.duplicates and len(rejected) >= len(batch.batch):
            raise InvalidInput(f"all {len(batch.batch)} messages were rejected", rejected)
    if rejected:
        await send_json(
            send,
            200,
            {
                "success": True,
                "accepted": result.accepted,
                "duplicates": result.duplicates,
                "rejected": [e.to_dict() for e in rejected],
            },
        )
    else:
        await send_json(send, 200, _OK)
