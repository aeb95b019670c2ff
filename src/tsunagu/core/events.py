"""Events: the Segment-spec wire message, and the normalized `Event` the engine sees.

Normalization is pure: it takes the receive time and an id factory from the caller.
The rules follow the Segment HTTP tracking API spec
(https://segment.com/docs/connections/sources/catalog/libraries/server/http-api/):
batch-level `context` is merged under each item's, `userId` or `anonymousId` is
required, and client clock skew is corrected with
`timestamp = receivedAt - (sentAt - originalTimestamp)`.

`properties` and `context` stay the JSON bytes the client sent: the hot path never
builds dictionaries it does not read (the engine reads a handful of context fields,
decoded into a small struct), and the analytics store takes the bytes as they are.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from .errors import FieldError, InvalidInput, PayloadTooLarge

__all__ = [
    "EVENT_TYPES",
    "MAX_BATCH_BYTES",
    "MAX_EVENT_BYTES",
    "MAX_ID_LENGTH",
    "MAX_NESTING",
    "Batch",
    "Event",
    "Message",
    "decode_batch",
    "decode_message",
    "normalize",
    "to_ms",
]

# The Segment HTTP API limits; clients already split their batches to fit them.
MAX_EVENT_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024
MAX_ID_LENGTH = 256
# Real payloads nest a few levels (properties.items[].variant); anything deeper than this
# is a bug or an attack on recursive consumers downstream.
MAX_NESTING = 32

EVENT_TYPES = frozenset({"track", "identify", "page", "screen", "group", "alias"})

# Segment's own `context.channel` values, mapped to ours.
_CHANNEL_ALIASES = {"browser": "web", "client": "web", "mobile": "app"}
_CHANNEL_RE = re.compile(r"^[a-z0-9_\-]{1,32}$")
_FAST_TYPES = frozenset({"track", "page", "screen", "identify"})
_PLAIN_CHANNELS = frozenset({"web", "app", "store", "email", "line", "server", "push", "pos", "call_center", "sms"})
_EMPTY = msgspec.Raw(b"")

Id = str | int | float | None


class Message(msgspec.Struct, gc=False):
    """One Segment-spec message as a client sends it. Unknown keys are ignored."""

    type: str | None = None
    event: str | None = None
    name: str | None = None
    category: str | None = None
    userId: Id = None
    anonymousId: Id = None
    previousId: Id = None
    groupId: Id = None
    properties: msgspec.Raw = _EMPTY
    traits: dict[str, Any] | None = None
    context: msgspec.Raw = _EMPTY
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    messageId: str | int | None = None
    writeKey: str | None = None


class Context(msgspec.Struct, gc=False):
    """The few `context` fields the engine reads; the rest is skipped unparsed."""

    channel: Any = None
    store_id: Any = None
    storeId: Any = None
    store: Any = None
    traits: Any = None
    externalIds: Any = None
    device: Any = None


class Batch(msgspec.Struct, gc=False):
    """The `/v1/batch` envelope: items stay raw so each is judged on its own."""

    batch: list[msgspec.Raw]
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None
    sentAt: datetime | None = None
    writeKey: str | None = None


class Event(msgspec.Struct, array_like=True, gc=False):
    """A normalized event: what the log stores and the engine applies.

    Times are integer milliseconds since the Unix epoch (UTC). `properties` and
    `context` are JSON objects as bytes; `links` holds the identity-bearing parts of
    the context (`traits`, `externalIds`, the device token) when there are any.
    """

    message_id: str
    type: str
    event: str | None
    user_id: str | None
    anonymous_id: str | None
    timestamp: int
    received_at: int
    channel: str
    store_id: str | None
    properties: bytes
    traits: dict[str, Any]
    context: bytes
    previous_id: str | None = None
    group_id: str | None = None
    links: dict[str, Any] | None = None

    def props(self) -> dict[str, Any]:
        return msgspec.json.decode(self.properties) if self.properties else {}

    def ctx(self) -> dict[str, Any]:
        return msgspec.json.decode(self.context) if self.context else {}


_message_decoder = msgspec.json.Decoder(Message)
_context_decoder = msgspec.json.Decoder(Context)
_batch_decoder = msgspec.json.Decoder(Batch)
_json_encode = msgspec.json.Encoder().encode
_msgpack_encode = msgspec.msgpack.Encoder().encode
# a client clock this far ahead is broken, not skewed
MAX_FUTURE_MS = 86_400_000


def _decode_error(exc: Exception, prefix: str) -> FieldError:
    """Turn a msgspec error (`Expected str, got int - at $.userId`) into a FieldError."""
    text = str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return FieldError(prefix, f"body is not valid UTF-8 (byte {exc.start})")
    if isinstance(exc, RecursionError):
        return FieldError(prefix, f"nested deeper than {MAX_NESTING} levels")
    field = prefix
    reason = text
    if " - at `$" in text:
        reason, _, path = text.rpartition(" - at `$")
        path = path.rstrip("`").lstrip(".")
        field = f"{prefix}.{path}" if prefix and path else (prefix or path)
    reason = reason.replace("Expected", "must be").replace("`", "")
    if reason.startswith("JSON is malformed"):
        reason = "malformed JSON: " + reason.removeprefix("JSON is malformed: ")
    return FieldError(field, reason)


def _invalid(err: FieldError) -> InvalidInput:
    return InvalidInput(f"{err.field}: {err.reason}" if err.field else err.reason, [err])


def decode_message(raw: bytes | msgspec.Raw, prefix: str = "") -> Message:
    if not isinstance(raw, bytes):
        raw = bytes(raw)
    if len(raw) > MAX_EVENT_BYTES:
        raise PayloadTooLarge.for_field(
            prefix, f"event is {len(raw):,} bytes; the limit is {MAX_EVENT_BYTES // 1024} KB"
        )
    try:
        msg = _message_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise _invalid(_decode_error(exc, prefix)) from None
    if raw.count(b"{") + raw.count(b"[") > MAX_NESTING:
        _check_depth(msg, prefix)
    return msg


def decode_batch(body: bytes) -> Batch:
    if len(body) > MAX_BATCH_BYTES:
        raise PayloadTooLarge.for_field("", f"batch is {len(body):,} bytes; the limit is {MAX_BATCH_BYTES // 1024} KB")
    try:
        batch = _batch_decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        err = _decode_error(exc, "")
        if err.field == "" and "batch" in err.reason and "missing" in err.reason.lower():
            err = FieldError("batch", "required: a list of messages")
        raise _invalid(err) from None
    if batch.context is not None:
        if not _depth_ok(batch.context, MAX_NESTING):
            raise InvalidInput.for_field("context", f"nested deeper than {MAX_NESTING} levels")
        errors: list[FieldError] = []
        _encodable(batch.context, "context", errors)
        if errors:
            raise InvalidInput(f"context: {errors[0].reason}", errors)
    return batch


def _depth_ok(value: Any, limit: int) -> bool:
    """True if `value` nests no deeper than `limit` levels."""
    if limit < 0:
        return False
    if isinstance(value, dict):
        return all(_depth_ok(v, limit - 1) for v in value.values())
    if isinstance(value, list):
        return all(_depth_ok(v, limit - 1) for v in value)
    return True


def _check_depth(msg: Message, prefix: str) -> None:
    for name in ("properties", "traits", "context"):
        value = getattr(msg, name)
        if isinstance(value, msgspec.Raw):
            if not value:
                continue
            try:
                value = msgspec.json.decode(value)
            except RecursionError:
                value = None
                ok = False
            else:
                ok = _depth_ok(value, MAX_NESTING)
        else:
            ok = value is None or _depth_ok(value, MAX_NESTING)
        if not ok:
            field = f"{prefix}.{name}" if prefix else name
            raise InvalidInput.for_field(field, f"nested deeper than {MAX_NESTING} levels")


def to_ms(dt: datetime) -> int:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def _id(value: Id, field: Callable[[], str], errors: list[FieldError]) -> str | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        errors.append(FieldError(field(), "must be a string"))
        return None
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_ID_LENGTH:
        errors.append(FieldError(field(), f"longer than {MAX_ID_LENGTH} characters"))
        return None
    return text


def _links(ctx: Context) -> dict[str, Any] | None:
    """The identity-bearing parts of a context, or None (the common case)."""
    if ctx.traits is None and ctx.externalIds is None and ctx.device is None:
        return None
    links: dict[str, Any] = {}
    if isinstance(ctx.traits, dict) and ctx.traits:
        links["traits"] = ctx.traits
    if isinstance(ctx.externalIds, list) and ctx.externalIds:
        links["externalIds"] = ctx.externalIds
    if isinstance(ctx.device, dict) and ctx.device.get("token"):
        links["device_token"] = ctx.device["token"]
    return links or None


def _timestamp(msg: Message, received_at: int, batch_sent_at: datetime | None, prefix: str) -> int:
    # Clock skew: the client's own clock stamped both the event and the send, so their
    # difference is trustworthy even when the clock itself is not.
    base = msg.originalTimestamp or msg.timestamp
    if base is None:
        return received_at
    timestamp = to_ms(base)
    sent_at = msg.sentAt or batch_sent_at
    if sent_at is not None:
        timestamp = min(received_at, received_at - (to_ms(sent_at) - timestamp))
    if not 0 <= timestamp <= received_at + MAX_FUTURE_MS:
        name = "originalTimestamp" if msg.originalTimestamp else "timestamp"
        raise InvalidInput.for_field(
            f"{prefix}.{name}" if prefix else name,
            "is outside 1970-01-01 … a day after now, even after correcting the client's clock by sentAt",
        )
    return timestamp


def _encodable(value: Any, field: str, errors: list[FieldError]) -> None:
    """Integers past 64 bits decode from JSON but cannot be stored; say so up front."""
    try:
        _msgpack_encode(value)
    except (OverflowError, TypeError) as exc:
        errors.append(FieldError(field, f"cannot be stored: {exc}"))


def normalize(
    msg: Message,
    *,
    received_at: int,
    new_id: Callable[[], str],
    type_: str | None = None,
    batch_context: dict[str, Any] | None = None,
    batch_sent_at: datetime | None = None,
    prefix: str = "",
) -> Event:
    """Validate one message and return the Event the engine applies.

    `type_` is the endpoint's type (`/v1/track` is always a track); batch items carry
    their own. Raises InvalidInput listing every bad field at once.
    """
    # The hot path: the shapes well-behaved clients send, checked with as few Python
    # operations as possible; anything unusual takes the careful path below.
    kind = type_ or msg.type
    uid = msg.userId
    aid = msg.anonymousId
    props = bytes(msg.properties) if msg.properties else b"{}"
    raw_ctx = bytes(msg.context) if msg.context else b"{}"
    if (
        not batch_context
        and kind in _FAST_TYPES
        and (uid is None or (uid.__class__ is str and 0 < len(uid) <= MAX_ID_LENGTH))
        and (aid is None or (aid.__class__ is str and 0 < len(aid) <= MAX_ID_LENGTH))
        and (uid is not None or aid is not None)
        and (kind != "track" or (msg.event and len(msg.event) <= 200))
        and props[0] == 123  # "{"
        and raw_ctx[0] == 123
    ):
        ctx = _context_decoder.decode(raw_ctx)
        channel = ctx.channel
        store = ctx.store_id if ctx.store_id is not None else ctx.storeId
        if (
            (channel is None or channel in _PLAIN_CHANNELS)
            and ctx.store is None
            and (store is None or (store.__class__ is str and 0 < len(store) <= MAX_ID_LENGTH))
        ):
            if channel is None:
                channel = "web" if kind == "page" else "app" if kind == "screen" else "server"
            mid = msg.messageId
            if mid.__class__ is not str or not mid:
                mid = new_id() if mid is None or mid == "" else str(mid)
            traits = msg.traits
            if not traits and kind == "identify" and isinstance(ctx.traits, dict):
                traits = ctx.traits
            links = _links(ctx)
            if traits or links:
                errors: list[FieldError] = []
                _encodable(traits, f"{prefix}.traits" if prefix else "traits", errors)
                _encodable(links, f"{prefix}.context" if prefix else "context", errors)
                if errors:
                    raise InvalidInput.for_fields(errors)
            return Event(
                mid,  # type: ignore[arg-type]
                kind,  # type: ignore[arg-type]
                msg.event if kind == "track" else msg.name,
                uid,  # type: ignore[arg-type]
                aid,  # type: ignore[arg-type]
                _timestamp(msg, received_at, batch_sent_at, prefix),
                received_at,
                channel,
                store,
                props,
                traits or {},
                raw_ctx,
                None,
                None,
                links,
            )
    return _normalize_carefully(
        msg,
        received_at=received_at,
        new_id=new_id,
        type_=type_,
        batch_context=batch_context,
        batch_sent_at=batch_sent_at,
        prefix=prefix,
    )


def _normalize_carefully(
    msg: Message,
    *,
    received_at: int,
    new_id: Callable[[], str],
    type_: str | None,
    batch_context: dict[str, Any] | None,
    batch_sent_at: datetime | None,
    prefix: str,
) -> Event:
    errors: list[FieldError] = []

    def at(name: str) -> Callable[[], str]:
        return lambda: f"{prefix}.{name}" if prefix else name

    kind = type_ or msg.type
    if kind is None:
        errors.append(FieldError(at("type")(), "required: one of " + ", ".join(sorted(EVENT_TYPES))))
    elif kind not in EVENT_TYPES:
        errors.append(FieldError(at("type")(), f"{kind!r} is not one of " + ", ".join(sorted(EVENT_TYPES))))
    user_id = _id(msg.userId, at("userId"), errors)
    anonymous_id = _id(msg.anonymousId, at("anonymousId"), errors)
    previous_id = _id(msg.previousId, at("previousId"), errors)
    group_id = _id(msg.groupId, at("groupId"), errors)
    name: str | None = None
    if kind == "track":
        if not msg.event:
            errors.append(FieldError(at("event")(), "required for track: the event name"))
        elif len(msg.event) > 200:
            errors.append(FieldError(at("event")(), "longer than 200 characters"))
        name = msg.event
    elif kind in ("page", "screen"):
        name = msg.name
    elif kind == "alias":
        if previous_id is None:
            errors.append(FieldError(at("previousId")(), "required for alias"))
        if user_id is None:
            errors.append(FieldError(at("userId")(), "required for alias"))
    elif kind == "group" and group_id is None:
        errors.append(FieldError(at("groupId")(), "required for group"))
    if user_id is None and anonymous_id is None and kind != "alias":
        errors.append(FieldError(at("userId")(), "userId or anonymousId is required"))

    props = bytes(msg.properties) if msg.properties else b""
    if props in (b"", b"null"):
        props = b"{}"
    elif props[:1] != b"{":
        errors.append(FieldError(at("properties")(), "must be an object"))
    raw_ctx = bytes(msg.context) if msg.context else b""
    if raw_ctx in (b"", b"null"):
        raw_ctx = b"{}"
    elif raw_ctx[:1] != b"{":
        errors.append(FieldError(at("context")(), "must be an object"))
        raw_ctx = b"{}"
    if batch_context:
        merged = {**batch_context, **msgspec.json.decode(raw_ctx)}
        raw_ctx = _json_encode(merged)
    ctx = _context_decoder.decode(raw_ctx)

    channel = ctx.channel
    if channel is None:
        channel = "web" if kind == "page" else "app" if kind == "screen" else "server"
    elif not isinstance(channel, str) or not _CHANNEL_RE.match(
        channel := _CHANNEL_ALIASES.get(channel, channel.lower())
    ):
        errors.append(FieldError(at("context.channel")(), "must be a short lowercase name such as web, app or store"))
        channel = "server"
    store = ctx.store_id if ctx.store_id is not None else ctx.storeId
    if store is None and isinstance(ctx.store, dict):
        store = ctx.store.get("id")
    if isinstance(store, (dict, list)):
        errors.append(FieldError(at("context.store_id")(), "must be a string"))
        store = None
    store_id = _id(store, at("context.store_id"), errors)
    if errors:
        raise InvalidInput.for_fields(errors)

    message_id = msg.messageId
    if message_id is None or message_id == "":
        message_id = new_id()
    elif not isinstance(message_id, str):
        message_id = str(message_id)
    traits = msg.traits
    if not traits and kind == "identify" and isinstance(ctx.traits, dict):
        traits = ctx.traits
    links = _links(ctx)
    _encodable(traits, at("traits")(), errors)
    _encodable(links, at("context")(), errors)
    if errors:
        raise InvalidInput.for_fields(errors)
    return Event(
        message_id,
        kind,  # type: ignore[arg-type]
        name,
        user_id,
        anonymous_id,
        _timestamp(msg, received_at, batch_sent_at, prefix),
        received_at,
        channel,
        store_id,
        props,
        traits or {},
        raw_ctx,
        previous_id,
        group_id,
        links,
    )
