"""Hostile ingest requests, as an attacker holding the public write key would send them.

One generator for the suite's fuzz test (driven by hypothesis' `st.randoms()`, so
failures shrink and replay) and for `bench/fuzz.py` (driven by a seeded
`random.Random`, for 100,000 requests). Every part of a Segment-spec request varies:
the path and method, the credentials, the content type and encoding, the envelope
(single message or batch, batch-level context and integrations), every field of every
message (ids, names, times, properties, traits, context, integrations) with strings
and numbers no store can hold spliced in as raw JSON tokens, and bytes mangled after
encoding.

`Request.expect` is the set of statuses a correct server may answer; anything else
(and any 5xx) is a defect.
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import zlib
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ALLOWED", "Request", "hostile_request"]

#: every status an ingest request may get: never a 5xx
ALLOWED = frozenset({200, 204, 400, 401, 404, 405, 413})

PATHS = [
    "/v1/track", "/v1/t", "/v1/identify", "/v1/i", "/v1/page", "/v1/p", "/v1/screen", "/v1/s",
    "/v1/group", "/v1/g", "/v1/alias", "/v1/a", "/v1/batch", "/v1/b", "/v1/import", "/v1/m",
]  # fmt: skip
TYPES = ["track", "identify", "page", "screen", "group", "alias"]
# Valid text that breaks naive code: NUL, separators, bidi, combining marks, quotes, paths.
ODD_STRINGS = [
    "", " ", "u", "ゴールド会員", "🛍️👩‍👩‍👧", "\u0000", "a\u0000b", "\u2028\u2029", "\u202eRTL", "e\u0301", "\ufeff",
    "\uffff", "'\"\\", "<script>alert(1)</script>", "'; DROP TABLE events; --", "$.a", "a.b.c", "[0]", "%s%n", "NaN",
    "Infinity", "null", "1e400", "user_id:x", "\t\r\n", "Ā" * 70,
]  # fmt: skip
# Text no store can hold (unpaired surrogates become invalid UTF-8 bytes on the wire).
BAD_STRINGS = ["\ud800", "\udfff", "x\udc80y", "\ud83d"]
VALID_NUMBERS = [
    b"0", b"-0", b"1", b"-1", b"0.1", b"1e308", b"-1e308", b"5e-324", b"1e-400", b"9223372036854775807",
    b"-9223372036854775808", b"0.000000000000000000000000000001", b"1.7976931348623157e308", b"4611686018427387904",
]  # fmt: skip
# Spliced in as raw JSON tokens (Python's json could not write them).
BAD_NUMBERS = [
    b"1e400", b"-1e400", b"1E+999", b"9223372036854775808", b"-9223372036854775809", b"18446744073709551615",
    b"18446744073709551616", b"123456789012345678901234567890", b"9" * 4301, b"1.7976931348623159e308",
]  # fmt: skip
RAW_JUNK = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x00", b"\x7f", b'"', b"\\"]
CHANNELS = ["web", "app", "store", "Browser", "mobile", "email", "line", "LINE", "Web Store!", "", "x" * 40]
TIMES = [
    "2024-05-01T09:00:00.000Z", "2024-05-01T09:00:00+09:00", "2024-05-01", "1970-01-01T00:00:00Z",
    "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z", "yesterday", "2024-13-45T99:99:99Z", "",
]  # fmt: skip


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    expect: frozenset[int] = ALLOWED
    kind: str = ""
    notes: list[str] = field(default_factory=list)

    def reproducer(self, url: str) -> str:
        """A curl command that sends the same bytes (for a report)."""
        hdrs = " ".join(f"-H {json.dumps(f'{k}: {v}')}" for k, v in self.headers.items())
        b64 = base64.b64encode(self.body).decode()
        return f"echo {b64} | base64 -d | curl -s -X {self.method} {hdrs} --data-binary @- {url}{self.path}"


class _Tokens:
    """Placeholders in the JSON that become raw bytes after encoding; `hostile` says
    whether this request may carry values no store can hold (else: odd but valid)."""

    def __init__(self, hostile: bool) -> None:
        self.hostile = hostile
        self.raw: dict[str, bytes] = {}

    def bad(self, rng: random.Random, share: float = 0.15) -> bool:
        return self.hostile and rng.random() < share

    def add(self, raw: bytes) -> str:
        key = f"__raw{len(self.raw)}__"
        self.raw[key] = raw
        return key

    def splice(self, data: bytes) -> bytes:
        for key, raw in self.raw.items():
            data = data.replace(f'"{key}"'.encode(), raw)
        return data


def _string(rng: random.Random, tokens: _Tokens) -> Any:
    if tokens.bad(rng):
        if rng.random() < 0.5:
            return rng.choice(BAD_STRINGS)
        return tokens.add(b'"' + rng.choice(RAW_JUNK[:5]) + b'"')  # invalid bytes inside a string
    r = rng.random()
    if r < 0.6:
        return rng.choice(["sku-A1", "tops", "ブランド", "https://shop.example.jp/p/1", "M000123", "gold"])
    if r < 0.92:
        return rng.choice(ODD_STRINGS)
    return "x" * rng.choice([200, 257, 1000, 5000])


def _number(rng: random.Random, tokens: _Tokens) -> Any:
    if tokens.bad(rng):
        return tokens.add(rng.choice(BAD_NUMBERS))
    if rng.random() < 0.6:
        return rng.choice([0, 1, -1, 12900, 3.5, 2**31, 2**53, -(2**53), 1.5e-7])
    return tokens.add(rng.choice(VALID_NUMBERS))


def _value(rng: random.Random, tokens: _Tokens, depth: int = 0) -> Any:
    r = rng.random()
    if depth < 4 and r < 0.15:
        return {_key(rng, tokens): _value(rng, tokens, depth + 1) for _ in range(rng.randint(0, 4))}
    if depth < 4 and r < 0.25:
        return [_value(rng, tokens, depth + 1) for _ in range(rng.randint(0, 4))]
    if r < 0.55:
        return _string(rng, tokens)
    if r < 0.85:
        return _number(rng, tokens)
    return rng.choice([True, False, None])


def _key(rng: random.Random, tokens: _Tokens) -> str:
    if tokens.bad(rng, 0.05):
        return tokens.add(b'"k' + rng.choice(RAW_JUNK[:5]) + b'"')
    if rng.random() < 0.7:
        return rng.choice(["sku", "price", "revenue", "category", "items", "name", "email", "rank", "n", "$set_once"])
    return rng.choice(ODD_STRINGS) or "k"


def _object(rng: random.Random, tokens: _Tokens, n: int = 4) -> dict[str, Any]:
    return {_key(rng, tokens): _value(rng, tokens) for _ in range(rng.randint(0, n))}


def _id(rng: random.Random, tokens: _Tokens) -> Any:
    if tokens.bad(rng, 0.1):
        return rng.choice([True, [], {}, "u" * 300, tokens.add(rng.choice(BAD_NUMBERS)), rng.choice(BAD_STRINGS)])
    r = rng.random()
    if r < 0.7:
        return f"U{rng.randint(0, 50)}"
    if r < 0.8:
        return rng.randint(-5, 10**6)
    if r < 0.9:
        return rng.choice([1.5, 2**63 - 1, "u" * 256, "会員-0001"])
    text = _string(rng, tokens)
    return text if text and len(text) <= 256 else "U1"


def _context(rng: random.Random, tokens: _Tokens) -> Any:
    if tokens.bad(rng, 0.08):
        return rng.choice(["web", [], 1])
    ctx = _object(rng, tokens, 2)
    if rng.random() < 0.5:
        ctx["channel"] = rng.choice([*CHANNELS, 1, ["web"]] if tokens.bad(rng, 0.5) else CHANNELS[:7])
    if rng.random() < 0.3:
        ids = ["S001", "新宿店", 1, "S" * 256]
        ctx[rng.choice(["store_id", "storeId"])] = rng.choice(
            [*ids, ["S1"], {"id": "S1"}, "s" * 300] if tokens.bad(rng, 0.5) else ids
        )
    if rng.random() < 0.1:
        ctx["store"] = rng.choice([{"id": "S002"}, {"id": {"x": 1}}, "S003"] if tokens.hostile else [{"id": "S002"}])
    if rng.random() < 0.25:
        ctx["traits"] = rng.choice([_object(rng, tokens), "x", [1]] if tokens.hostile else [_object(rng, tokens)])
    if rng.random() < 0.15:
        ctx["externalIds"] = [
            {"type": rng.choice(["email", "pos_customer_id", "", 1]), "id": _id(rng, tokens)}
            for _ in range(rng.randint(0, 3))
        ]
    if rng.random() < 0.1:
        ctx["device"] = {"token": _id(rng, tokens)}
    if rng.random() < 0.4:
        ctx["page"] = {"path": _string(rng, tokens), "title": _string(rng, tokens), "url": _string(rng, tokens)}
    return ctx


def _message(rng: random.Random, tokens: _Tokens, with_type: bool) -> dict[str, Any]:
    msg: dict[str, Any] = {}
    if with_type or rng.random() < 0.2:
        msg["type"] = rng.choice([*TYPES, "purchase", "", 1, None]) if tokens.bad(rng, 0.1) else rng.choice(TYPES)
    for name in ("userId", "anonymousId"):
        if rng.random() < 0.7 or (name == "userId" and not tokens.hostile):
            msg[name] = _id(rng, tokens)
    if rng.random() < 0.85:
        names = ["view", "buy", "cart", "checkin", "お気に入り", "e" * 200, _string(rng, tokens) or "x"]
        msg["event"] = rng.choice([*names, "", "e" * 201, 5, None] if tokens.bad(rng, 0.3) else names)
    if rng.random() < 0.3:
        msg["name"] = _string(rng, tokens)
    if rng.random() < 0.15 or not tokens.hostile:  # alias and group need them
        msg["previousId"] = _id(rng, tokens)
    if rng.random() < 0.15 or not tokens.hostile:
        msg["groupId"] = _id(rng, tokens)
    if rng.random() < 0.7:
        msg["properties"] = rng.choice(["x", [1], 5]) if tokens.bad(rng, 0.05) else _object(rng, tokens, 8)
    if rng.random() < 0.4:
        msg["traits"] = rng.choice(["x", [1]]) if tokens.bad(rng, 0.05) else _object(rng, tokens)
    if rng.random() < 0.6:
        msg["context"] = _context(rng, tokens)
    if rng.random() < 0.2:
        msg["integrations"] = rng.choice([[1], "x"]) if tokens.bad(rng, 0.2) else _object(rng, tokens, 2)
    for name in ("timestamp", "originalTimestamp", "sentAt"):
        if rng.random() < 0.25:
            good = [TIMES[0], TIMES[1]]
            msg[name] = rng.choice([*TIMES, 1714550400, ["2024"]] if tokens.bad(rng, 0.3) else good)
    if rng.random() < 0.8:
        ids = [f"m-{rng.getrandbits(64):016x}", f"m-{rng.randint(0, 30)}", 12, "", "m" * 256]
        msg["messageId"] = rng.choice([*ids, "m" * 300] if tokens.bad(rng, 0.1) else ids)
    return msg


def _mangle(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    r = rng.random()
    if r < 0.3 and data:
        i = rng.randrange(len(data))
        return data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :], "byte flipped"
    if r < 0.5 and data:
        return data[: rng.randrange(len(data))], "truncated"
    if r < 0.7 and data:
        i = rng.randrange(len(data))
        return data[:i] + rng.choice(RAW_JUNK) + data[i:], "junk inserted"
    if r < 0.85:
        return b"[" * rng.choice([33, 1000, 60_000]) + b"]" * rng.choice([0, 33]), "deep nesting"
    return rng.randbytes(rng.randint(0, 2000)), "random bytes"


def hostile_request(rng: random.Random, write_key: str) -> Request:
    """One request; `rng` decides everything (a seeded Random, or hypothesis' randoms()).

    Half the requests carry only odd but storable values (so the engine and the stores
    behind it get exercised with them); the other half may carry anything.
    """
    tokens = _Tokens(hostile=rng.random() < 0.5)
    path = rng.choice(PATHS)
    method = "POST" if rng.random() < 0.97 else rng.choice(["GET", "PUT", "DELETE", "OPTIONS", "PATCH"])
    headers: dict[str, str] = {}
    key_in_body = False
    auth = rng.random()
    if auth < 0.8:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()
    elif auth < 0.85:
        key_in_body = True
    elif auth < 0.9:
        headers["Authorization"] = "Basic " + base64.b64encode(b"wk_wrong:").decode()
    elif auth < 0.93:
        headers["Authorization"] = rng.choice(["Bearer " + write_key, "Basic %%%", "Basic", "Digest x", "Basic w4k="])
    headers["Content-Type"] = rng.choice(["application/json"] * 6 + ["text/plain", "application/x-www-form-urlencoded"])
    batch = path in ("/v1/batch", "/v1/b", "/v1/import")
    kind = "batch" if batch else "message"
    notes: list[str] = []
    if rng.random() < 0.05:
        body, note = _mangle(rng, b"")
        kind, notes = "raw", [note]
    else:
        if batch:
            doc: Any = {"batch": [_message(rng, tokens, True) for _ in range(rng.choice([0, 1, 1, 3, 10, 40]))]}
            if rng.random() < 0.3:
                doc["context"] = _context(rng, tokens)
            if rng.random() < 0.1:
                doc["integrations"] = _object(rng, tokens, 2)
            if rng.random() < 0.2:
                doc["sentAt"] = rng.choice(TIMES)
            if rng.random() < 0.03:
                doc["batch"] = rng.choice([{"type": "track"}, "x", None])
        else:
            doc = _message(rng, tokens, False)
        if key_in_body:
            doc["writeKey"] = rng.choice([write_key, "wk_nope", 5]) if tokens.hostile else write_key
        ascii_only = rng.random() < 0.5
        text = json.dumps(doc, ensure_ascii=ascii_only)
        body = tokens.splice(text.encode("utf-8", "surrogatepass"))  # lone surrogates: invalid UTF-8 bytes
        if tokens.bad(rng, 0.15):
            body, note = _mangle(rng, body)
            notes.append(note)
    enc = rng.random()
    if enc < 0.08:
        headers["Content-Encoding"] = "gzip"
        body = gzip.compress(body)
    elif enc < 0.1:
        headers["Content-Encoding"] = "deflate"
        body = zlib.compress(body)
    elif enc < 0.12:
        headers["Content-Encoding"] = "gzip"  # a lie
        notes.append("claims gzip")
    return Request(method, path, headers, body, kind=kind, notes=notes)
