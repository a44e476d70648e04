"""The unit and meaning of each evidence feature (:mod:`detector.features.catalog`), for the
lookup answer, the console and anything else that shows a feature's value: a bare name and
number ("night_share_24h 0.61") leaves the reader to guess what was counted."""

from __future__ import annotations

from typing import Any

from detector.features.catalog import BY_NAME


def unit_of(name: str) -> str:
    """The unit of feature ``name``; '' for a name the catalogue does not hold."""
    feature = BY_NAME.get(name)
    return feature.unit if feature is not None else ""


def meaning_of(name: str) -> str:
    """What feature ``name`` counts, in words ('' when unknown)."""
    feature = BY_NAME.get(name)
    return feature.phrase.removeprefix("s ") if feature is not None else ""


def described(features: dict[str, Any]) -> list[dict[str, Any]]:
    """Each feature of an evidence snapshot with its value, unit and meaning, in the
    snapshot's order."""
    return [{"name": n, "value": v, "unit": unit_of(n), "meaning": meaning_of(n)}
            for n, v in features.items()]


def with_units(sub: dict[str, Any]) -> dict[str, Any]:
    """A projected subscriber record whose evidence (if it shows one) also names the unit of
    each feature (``evidence.units``: name -> unit)."""
    evidence = sub.get("evidence")
    if isinstance(evidence, dict) and isinstance(evidence.get("features"), dict):
        sub = {**sub, "evidence": {**evidence,
                                   "units": {n: unit_of(n) for n in evidence["features"]}}}
    return sub
