"""Counts in words for people: "1 cell", "2 cells", never "1 cells" or "cell(s)".

Pure and dependency-free, so the records (:mod:`detector.flags`), the report and the API can
all print counts the same way.
"""

from __future__ import annotations

# nouns whose plural is not the singular + "s"
IRREGULAR = {"entry": "entries", "reply": "replies", "delivery": "deliveries",
             "lookup": "lookups", "SMS": "SMS", "IMSI": "IMSIs", "IMEI": "IMEIs",
             "batch": "batches", "match": "matches", "day": "days"}


def plural(noun: str) -> str:
    """The plural of ``noun`` (the table above, else ``noun + "s"``)."""
    return IRREGULAR.get(noun, noun + "s")


def counted(n: int, noun: str, nouns: str | None = None) -> str:
    """``n`` and ``noun`` agreeing in number: 1 takes the singular, every other count
    (0 included, as English has it) the plural ``nouns`` (default :func:`plural`)."""
    return f"{n} {noun if n == 1 else (nouns or plural(noun))}"
