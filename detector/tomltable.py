"""Typed keys of a config table: one checker for the settings dataclasses that read TOML."""

from __future__ import annotations

from dataclasses import fields
from typing import Any


def typed_values(cls, table: Any, where: str) -> dict[str, Any]:
    """``table``'s keys checked against the dataclass ``cls``: known names, and the type of
    each field's default (bool, int, float, else str). ``ValueError`` names ``where.key``."""
    if not isinstance(table, dict):
        raise ValueError(f"{where}: must be a table")
    known = {f.name: f for f in fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            raise ValueError(f"{where}.{key}: unknown key (known: {', '.join(sorted(known))})")
        default, name = known[key].default, f"{where}.{key}"
        if isinstance(default, bool):
            if not isinstance(value, bool):
                raise ValueError(f"{name}: must be true or false")
        elif isinstance(default, int):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name}: must be an integer")
        elif isinstance(default, float):
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError(f"{name}: must be a number")
            value = float(value)
        elif not isinstance(value, str):
            raise ValueError(f"{name}: must be a string")
        values[key] = value
    return values
