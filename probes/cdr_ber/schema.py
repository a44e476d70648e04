"""The TS 32.298 record types, as compiled by pycrate, and one decoding call.

pycrate ships the 32.298 ASN.1 modules compiled to Python (``pycrate_asn1dir.CDR``). That
module is large: importing it takes seconds, so it is loaded on the first decode, not on
import of this package (sniffing a file must stay cheap). Its type objects keep the last
decoded value inside them (until the next decode overwrites it), so decoding is serialised
by a lock.
"""

from __future__ import annotations

import functools
import logging
import threading
from dataclasses import dataclass
from typing import Any

_LOCK = threading.Lock()

# The record alternatives this reader maps, by their CHOICE tag. The CS (CSRecord) and
# packet (GPRSRecord) CHOICEs reuse some tag numbers for other records (20, 22), but not
# these, so the outer tag alone says which CHOICE to decode with.
CS_MAPPED = {0: "moCallRecord", 1: "mtCallRecord", 6: "moSMSRecord", 7: "mtSMSRecord"}
PS_MAPPED = {78: "sGWRecord", 79: "pGWRecord", 96: "ePDGRecord"}
MAPPED = {**CS_MAPPED, **PS_MAPPED}


class DecodeError(ValueError):
    """A record that the TS 32.298 types do not decode; the message is the library's."""


@dataclass(frozen=True, slots=True)
class Schema:
    cs_record: Any                 # CSChargingDataTypes.CSRecord
    gprs_record: Any               # GPRSChargingDataTypes.GPRSRecord
    names: dict[int, str]          # every CS and GPRS record tag -> its alternative name(s)
    cs_tags: frozenset[int]
    gprs_tags: frozenset[int]


@functools.cache
def schema() -> Schema:
    # loading the modules logs a few hundred INFO lines about duplicate OIDs in the X.500
    # modules the CDR ones import: nothing an operator can act on, so not in the daemon's log
    logging.getLogger("pycrate").setLevel(logging.WARNING)
    from pycrate_asn1dir import CDR   # seconds: see the module docstring

    cs = CDR.CSChargingDataTypes.CSRecord
    gprs = CDR.GPRSChargingDataTypes.GPRSRecord
    names: dict[int, list[str]] = {}
    for choice in (cs, gprs):
        for name, alt in choice._cont.items():
            names.setdefault(alt._tagc[0][1], []).append(name)
    return Schema(cs, gprs, {tag: " or ".join(n) for tag, n in names.items()},
                  frozenset(a._tagc[0][1] for a in cs._cont.values()),
                  frozenset(a._tagc[0][1] for a in gprs._cont.values()))


def record_name(tag: int) -> str | None:
    """The 32.298 record alternative(s) with this context tag, or None when no CS or packet
    record has it."""
    return schema().names.get(tag)


def decode(tag: int, record: bytes) -> tuple[str, dict]:
    """(alternative name, value) of one BER record whose outer tag is ``tag`` (one of
    :data:`MAPPED`). Values are pycrate's: dicts for SET/SEQUENCE, (name, value) for CHOICE,
    bytes for OCTET STRING, str for ENUMERATED. Raises :class:`DecodeError`."""
    s = schema()
    choice = s.cs_record if tag in CS_MAPPED else s.gprs_record
    with _LOCK:
        try:
            choice.from_ber(record)
            value = choice.get_val()
        except Exception as exc:    # the library raises several kinds; all mean "does not decode"
            raise DecodeError(_short(str(exc) or type(exc).__name__)) from None
    return value


def decodes(tag: int, record: bytes) -> bool:
    """Whether ``record`` decodes as the 32.298 CS or packet record its outer tag names
    (either, for the two tags both CHOICEs use)."""
    s = schema()
    for choice, tags in ((s.cs_record, s.cs_tags), (s.gprs_record, s.gprs_tags)):
        if tag in tags:
            with _LOCK:
                try:
                    choice.from_ber(record)
                    return True
                except Exception:
                    continue
    return False


def encode(value: tuple[str, dict]) -> bytes:
    """BER of a CS or packet record value (the inverse of :func:`decode`), for tests and
    for the tools that generate sample files."""
    s = schema()
    name = value[0]
    choice = s.cs_record if name in s.cs_record._cont else s.gprs_record
    with _LOCK:
        choice.set_val(value)
        return choice.to_ber()


def _short(message: str, limit: int = 240) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1] + "…"
