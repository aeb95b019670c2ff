"""Which identifiers an event carries, normalized, strongest first."""

from __future__ import annotations

from typing import Any

from .config import WorkspaceConfig
from .events import Event

__all__ = ["identifier_key", "identifiers_of", "normalize_value", "split_key"]


def normalize_value(typ: str, value: Any) -> str | None:
    """Canonical form, so the POS's `Sato@Example.JP ` and the web's email meet."""
    if value is None or isinstance(value, (dict, list, bool)):
        return None
    text = str(value).strip()
    if not text:
        return None
    if typ == "email":
        return text.lower()
    if typ == "phone":
        digits = "".join(ch for ch in text if ch.isdigit())
        return ("+" + digits if text.startswith("+") else digits) or None
    return text


def identifier_key(typ: str, value: str) -> str:
    return f"{typ}:{value}"


def split_key(key: str) -> tuple[str, str]:
    typ, _, value = key.partition(":")
    return typ, value


def identifiers_of(event: Event, config: WorkspaceConfig) -> list[str]:
    """Identifier keys of an event, user_id first (the event belongs to it)."""
    keys: list[str] = []
    if event.user_id is not None:
        keys.append("user_id:" + event.user_id)
    if event.anonymous_id is not None:
        keys.append("anonymous_id:" + event.anonymous_id)
    links = event.links
    if links is not None:
        if tok := normalize_value("device_token", links.get("device_token")):
            keys.append("device_token:" + tok)
        for ext in links.get("externalIds", ()):
            if isinstance(ext, dict) and isinstance(ext.get("type"), str):
                typ = ext["type"].strip().lower().replace(" ", "_")
                value = normalize_value(typ, ext.get("id"))
                if typ and value:
                    keys.append(identifier_key(typ, value))
        if ctx_traits := links.get("traits"):
            _from_traits(ctx_traits, config, keys)
    if event.type == "identify" and event.traits:
        _from_traits(event.traits, config, keys)
    return keys


def _from_traits(traits: dict[str, Any], config: WorkspaceConfig, keys: list[str]) -> None:
    for trait, typ in config.identifier_traits.items():
        if trait in traits and (value := normalize_value(typ, traits[trait])):
            key = identifier_key(typ, value)
            if key not in keys:
                keys.append(key)
