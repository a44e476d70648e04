"""Typed keys of a config table: one checker for the settings dataclasses that read TOML."""

from __future__ import annotations

from dataclasses import fields
from typing import Any


def conforms(value: Any, default: Any) -> tuple[bool, Any]:
    """Whether a TOML value has the type of a setting's ``default`` (bool, int, float, a tuple
    of strings as a list, else str), and the value as the setting holds it."""
    if isinstance(default, bool):
        return isinstance(value, bool), value
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool), value
    if isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if isinstance(default, tuple):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        return ok, tuple(value) if ok else value
    return isinstance(value, str), value


def expect_type(where: str, value: Any, default: Any) -> Any:
    """``value`` as the setting holds it; ``ValueError`` "where: expected T, got V" if its
    type is not the default's."""
    ok, value = conforms(value, default)
    if not ok:
        raise ValueError(f"{where}: expected {type(default).__name__}, got {value!r}")
    return value


_MUST = {bool: "true or false", int: "an integer", float: "a number", tuple: "a list of strings"}


def typed_values(cls, table: Any, where: str) -> dict[str, Any]:
    """``table``'s keys checked against the dataclass ``cls``: known names, and the type of
    each field's default (:func:`conforms`). ``ValueError`` names ``where.key``."""
    if not isinstance(table, dict):
        raise ValueError(f"{where}: must be a table")
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown key (known: {', '.join(sorted(known))})")
        default = known[key].default
        ok, value = conforms(value, default)
        if not ok:
            must = next((m for kind, m in _MUST.items() if isinstance(default, kind)), "a string")
            raise ValueError(f"{where}.{key}: must be {must}")
        values[key] = value
    return values
