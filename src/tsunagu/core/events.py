"""Events: the Segment-spec wire message, and the normalized `Event` the engine sees.

Normalization is pure: it takes the receive time and an id factory from the caller.
The rules follow the Segment HTTP tracking API spec
(https://segment.com/docs/connections/sources/catalog/libraries/server/http-api/):
batch-level `context` is merged under each item's, `userId` or `anonymousId` is
required, and client clock skew is corrected with
`timestamp = receivedAt - (sentAt - originalTimestamp)`.

**One edge.** Everything a client sends is checked here, once, before anything is
acknowledged, so that every store behind it can hold what it is given: every string is
valid UTF-8 (no invalid bytes, no unpaired `\\uD800`-`\\uDFFF` escape), every number is a
finite 64-bit float or an integer within the signed 64-bit range, and nothing nests
deeper than `MAX_NESTING`. What fails is refused with the field's path and the reason
(`properties.items[2].price: integer out of range ...`), never stored, never replaced.
`properties` and `context` are decoded once and kept as canonical JSON bytes (duplicate
keys resolved the way the engine reads them, escapes undone), so the engine, the log and
the analytics store all see the same values.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import msgspec

from .errors import FieldError, InvalidInput, PayloadTooLarge

__all__ = [
    "EVENT_TYPES",
    "INT_MAX",
    "INT_MIN",
    "MAX_BATCH_BYTES",
    "MAX_EVENT_BYTES",
    "MAX_ID_LENGTH",
    "MAX_NESTING",
    "Batch",
    "Event",
    "Message",
    "check_value",
    "decode_batch",
    "decode_message",
    "explain",
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
    properties: dict[str, Any] | None = None
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None
    integrations: dict[str, Any] | None = None  # checked like the rest, then dropped: nothing reads it yet
    timestamp: datetime | None = None
    originalTimestamp: datetime | None = None
    sentAt: datetime | None = None
    messageId: str | int | None = None
    writeKey: str | None = None


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
_batch_decoder = msgspec.json.Decoder(Batch)
_json_encode = msgspec.json.Encoder().encode
_NO_CONTEXT: dict[str, Any] = {}
_msgpack_encode = msgspec.msgpack.Encoder().encode
# a client clock this far ahead is broken, not skewed
MAX_FUTURE_MS = 86_400_000


def _decode_error(exc: Exception, prefix: str, raw: bytes = b"") -> FieldError:
    """Turn a msgspec error (`Expected str, got int - at $.userId`) into a FieldError.

    Errors msgspec cannot place (invalid UTF-8, an unpaired surrogate, a number out of
    range inside a free-form object) are located by `explain`, which names the path.
    """
    text = str(exc)
    if isinstance(exc, UnicodeDecodeError):
        return FieldError(prefix, f"body is not valid UTF-8 (byte {exc.start})")
    if isinstance(exc, RecursionError):
        return FieldError(prefix, f"nested deeper than {MAX_NESTING} levels")
    if raw and (" - at `$" not in text or "[...]" in text or not isinstance(exc, msgspec.ValidationError)):
        found = explain(raw, prefix)
        if found is not None:
            return found
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
        # msgspec refuses invalid UTF-8, unpaired surrogates and floats past 1.8e308 as
        # it decodes; what it decodes and no store could hold is integers past 64 bits.
        msg = _message_decoder.decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        raise _invalid(_decode_error(exc, prefix, raw)) from None
    if raw.count(b"{") + raw.count(b"[") > MAX_NESTING:
        _check_depth(msg, prefix)
    if _LONG_RUN in raw.translate(_DIGITS_ONLY):
        errors: list[FieldError] = []
        for name in ("properties", "traits", "context", "integrations"):
            value = getattr(msg, name)
            if value and (err := _first_bad(value, f"{prefix}.{name}" if prefix else name)) is not None:
                errors.append(err)
        if errors:
            raise InvalidInput.for_fields(errors)
    return msg


def decode_batch(body: bytes) -> Batch:
    if len(body) > MAX_BATCH_BYTES:
        raise PayloadTooLarge.for_field("", f"batch is {len(body):,} bytes; the limit is {MAX_BATCH_BYTES // 1024} KB")
    try:
        batch = _batch_decoder.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError) as exc:
        # Items stay raw (each is judged on its own), so an error here is in the envelope.
        err = _decode_error(exc, "", body)
        if err.field == "" and "batch" in err.reason and "missing" in err.reason.lower():
            err = FieldError("batch", "required: a list of messages")
        raise _invalid(err) from None
    errors: list[FieldError] = []
    long_run = _LONG_RUN in body.translate(_DIGITS_ONLY)
    for name in ("context", "integrations"):
        value = getattr(batch, name)
        if value is None:
            continue
        if not _depth_ok(value, MAX_NESTING):
            errors.append(FieldError(name, f"nested deeper than {MAX_NESTING} levels"))
        elif long_run and (bad := _first_bad(value, name)) is not None:
            errors.append(bad)
    if errors:
        raise InvalidInput.for_fields(errors)
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
    for name in ("properties", "traits", "context", "integrations"):
        value = getattr(msg, name)
        if value is not None and not _depth_ok(value, MAX_NESTING):
            field = f"{prefix}.{name}" if prefix else name
            raise InvalidInput.for_field(field, f"nested deeper than {MAX_NESTING} levels")


# -- the edge: what every store can hold ------------------------------------------------

#: the signed 64-bit range: what DuckDB, PostgreSQL, BigQuery and ClickHouse all call BIGINT
INT_MIN = -(1 << 63)
INT_MAX = (1 << 63) - 1
_INT_REASON = (
    f"integer out of range: must be between {INT_MIN} and {INT_MAX} (a 64-bit integer); send larger numbers as strings"
)
_FLOAT_REASON = "number out of range: must be a finite 64-bit float (at most about 1.8e308)"
_TEXT_REASON = "is not valid UTF-8 text (invalid bytes, or an unpaired surrogate escape \\uD800-\\uDFFF)"
_KEY_RE = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$]*$")


class _OutOfRange:
    """A number Python's json parsed that no store could hold (kept to name its path)."""

    __slots__ = ("text",)

    def __init__(self, text: str) -> None:
        self.text = text


def _parse_int(text: str) -> int | _OutOfRange:
    if len(text) > 20:  # also keeps int() clear of Python's 4,300-digit limit
        return _OutOfRange(text)
    value = int(text)
    return value if INT_MIN <= value <= INT_MAX else _OutOfRange(text)


def _parse_float(text: str) -> float | _OutOfRange:
    value = float(text)
    return value if math.isfinite(value) else _OutOfRange(text)


def _refuse_constant(text: str) -> Any:
    raise ValueError(f"{text} is not JSON")


def _child(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    if _KEY_RE.match(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{json.dumps(key, ensure_ascii=False)}]"


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _first_bad(value: Any, path: str) -> FieldError | None:
    """The first value (depth first) no store could hold: a number out of range, bad text."""
    stack = [(value, path)]
    while stack:
        v, at = stack.pop()
        t = type(v)
        if t is dict:
            for k, item in reversed(v.items()):
                if not _is_text(k):
                    return FieldError(at, f"has a key that {_TEXT_REASON}")
                stack.append((item, _child(at, k)))
        elif t is list:
            stack.extend((item, _child(at, i)) for i, item in reversed(list(enumerate(v))))
        elif t is str:
            if not _is_text(v):
                return FieldError(at, _TEXT_REASON)
        elif t is _OutOfRange:
            return FieldError(at, _FLOAT_REASON if any(c in v.text for c in ".eE") else _INT_REASON)
        elif t is int and not INT_MIN <= v <= INT_MAX:
            return FieldError(at, _INT_REASON)
        elif t is float and not math.isfinite(v):
            return FieldError(at, _FLOAT_REASON)
    return None


def explain(raw: bytes, field: str) -> FieldError | None:
    """Why `raw` cannot be stored, with the path of the first bad value (slow; errors only).

    Python's json is lenient where msgspec is strict (it takes unpaired surrogates and,
    through `surrogateescape`, invalid bytes), so it can parse what msgspec refused and
    find where the problem is. None if it finds nothing wrong.
    """
    text = raw.decode("utf-8", "surrogateescape")
    try:
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_refuse_constant)
    except RecursionError:
        return FieldError(field, f"nested deeper than {MAX_NESTING} levels")
    except ValueError as exc:
        return FieldError(field, f"malformed JSON: {exc}")
    return _first_bad(value, field)


# An integer of 18 digits or fewer always fits in 64 bits, so only JSON text holding a run
# of 19 digits (a number, or text inside a string) needs its numbers looked at: one C
# pass (translate, then a substring search) instead of a walk of every value.
_DIGITS_ONLY = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_LONG_RUN = b"0" * 19


def check_value(value: Any, field: str, errors: list[FieldError]) -> None:
    """Append an error if a value (already decoded from JSON) holds one no store can hold."""
    if (err := _first_bad(value, field)) is not None:
        errors.append(err)


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
    if isinstance(value, float) and not math.isfinite(value):
        errors.append(FieldError(field(), "must be a string or a finite number"))
        return None
    if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
        errors.append(FieldError(field(), _INT_REASON))
        return None
    text = value if isinstance(value, str) else str(value)
    if len(text) > MAX_ID_LENGTH:
        errors.append(FieldError(field(), f"longer than {MAX_ID_LENGTH} characters"))
        return None
    return text


def _links(ctx: dict[str, Any]) -> dict[str, Any] | None:
    """The identity-bearing parts of a context, or None (the common case)."""
    traits = ctx.get("traits")
    external = ctx.get("externalIds")
    device = ctx.get("device")
    if traits is None and external is None and device is None:
        return None
    links: dict[str, Any] = {}
    if isinstance(traits, dict) and traits:
        links["traits"] = traits
    if isinstance(external, list) and external:
        links["externalIds"] = external
    if isinstance(device, dict) and device.get("token"):
        links["device_token"] = device["token"]
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


def _message_id(value: str | int | None, field: Callable[[], str], errors: list[FieldError]) -> str | None:
    """The client's messageId as text, or None when it sent none (one is made up then)."""
    if value is None or value == "":
        return None
    text = value if value.__class__ is str else str(value)
    if isinstance(value, int) and not INT_MIN <= value <= INT_MAX:
        errors.append(FieldError(field(), _INT_REASON))
    elif len(text) > MAX_ID_LENGTH:  # the de-duplication set holds every id for days
        errors.append(FieldError(field(), f"longer than {MAX_ID_LENGTH} characters"))
    return text  # type: ignore[return-value]


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
    mid = msg.messageId
    if (
        not batch_context
        and kind in _FAST_TYPES
        and (uid is None or (uid.__class__ is str and 0 < len(uid) <= MAX_ID_LENGTH))
        and (aid is None or (aid.__class__ is str and 0 < len(aid) <= MAX_ID_LENGTH))
        and (uid is not None or aid is not None)
        and (kind != "track" or (msg.event and len(msg.event) <= 200))
        and (mid is None or (mid.__class__ is str and len(mid) <= MAX_ID_LENGTH))
    ):
        ctx = msg.context or _NO_CONTEXT
        channel = ctx.get("channel")
        store = ctx.get("store_id")
        if store is None:
            store = ctx.get("storeId")
        if (
            (channel is None or (channel.__class__ is str and channel in _PLAIN_CHANNELS))
            and ctx.get("store") is None
            and (store is None or (store.__class__ is str and 0 < len(store) <= MAX_ID_LENGTH))
        ):
            if channel is None:
                channel = "web" if kind == "page" else "app" if kind == "screen" else "server"
            if not mid:
                mid = new_id()
            traits = msg.traits
            if not traits and kind == "identify" and isinstance(ctx.get("traits"), dict):
                traits = ctx["traits"]
            props = msg.properties
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
                _json_encode(props) if props else b"{}",  # canonical: a key sent twice keeps its last value
                traits or {},
                _json_encode(ctx) if ctx else b"{}",
                None,
                None,
                _links(ctx) if "traits" in ctx or "externalIds" in ctx or "device" in ctx else None,
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
    message_id = _message_id(msg.messageId, at("messageId"), errors)
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
    if (
        user_id is None
        and anonymous_id is None
        and kind != "alias"
        and msg.userId in (None, "")
        and (msg.anonymousId in (None, ""))
    ):
        errors.append(FieldError(at("userId")(), "userId or anonymousId is required"))

    props = _json_encode(msg.properties) if msg.properties else b"{}"
    ctx = msg.context or {}
    if batch_context:
        ctx = {**batch_context, **ctx}
    raw_ctx = _json_encode(ctx) if ctx else b"{}"

    channel = ctx.get("channel")
    if channel is None:
        channel = "web" if kind == "page" else "app" if kind == "screen" else "server"
    elif not isinstance(channel, str) or not _CHANNEL_RE.match(
        channel := _CHANNEL_ALIASES.get(channel, channel.lower())
    ):
        errors.append(FieldError(at("context.channel")(), "must be a short lowercase name such as web, app or store"))
        channel = "server"
    store = ctx.get("store_id")
    if store is None:
        store = ctx.get("storeId")
    if store is None and isinstance(ctx.get("store"), dict):
        store = ctx["store"].get("id")
    if isinstance(store, (dict, list)):
        errors.append(FieldError(at("context.store_id")(), "must be a string"))
        store = None
    store_id = _id(store, at("context.store_id"), errors)
    traits = msg.traits
    if not traits and kind == "identify" and isinstance(ctx.get("traits"), dict):
        traits = ctx["traits"]
    if errors:
        raise InvalidInput.for_fields(errors)
    if message_id is None:
        message_id = new_id()
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
        _links(ctx),
    )
