"""The grounds a lookup must carry, checked before anything is looked up.

As in lawful-disclosure handover practice (ETSI TS 102 657 requests name the authorisation and
the requesting officer; ETSI TS 103 120 carries an authorisation reference, its legal type and
the approver): the **case reference** must have the form of one (``[api] case_ref_pattern``),
the **legal basis** must be one of the grounds the carrier has agreed to answer on (``[api]
legal_bases``), and the **officer** is tied to the credential, never taken on the caller's
word: one of the officer ids registered with the credential (``officers`` of its entry in the
credentials file: a police platform lists the officers it forwards for), or, for a personal
client certificate without such a list, the certificate's subject CN.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from detector.api.auth import Identity

# Articles of the PRC Anti-Telecom and Online Fraud Law (2022) under which a carrier's data on
# a phone card is asked for: real-name registration (9), cards beyond the permitted number
# (10), re-verification of abnormal cards (11), SIM-bank devices such as GOIP gateways (14),
# support for fraud (25), selling, renting or lending cards (31).
DEFAULT_LEGAL_BASES = tuple(f"Anti-Telecom and Online Fraud Law Art. {n}"
                            for n in (9, 10, 11, 14, 25, 31))
# A case reference: 4-64 letters, digits and / . - _ beginning and ending with a letter or a
# digit, with at least one digit (e.g. GZ-2026-0042, A4401010000002026100042).
DEFAULT_CASE_REF = r"(?=[^0-9]*[0-9])[A-Za-z0-9][A-Za-z0-9/._-]{2,62}[A-Za-z0-9]"


@dataclass(frozen=True, slots=True)
class Grounds:
    case_ref: str
    legal_basis: str       # as configured
    officer: str           # a registered officer id, or the certificate's subject CN


class GroundsError(Exception):
    def __init__(self, status: int, reason: str, field: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.reason, self.field, self.detail = status, reason, field, detail


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


@dataclass(frozen=True)
class GroundsPolicy:
    legal_bases: tuple[str, ...] = DEFAULT_LEGAL_BASES
    case_ref_pattern: str = DEFAULT_CASE_REF

    def __post_init__(self) -> None:
        object.__setattr__(self, "_bases", {_norm(b): b for b in self.legal_bases})
        object.__setattr__(self, "_case_ref", re.compile(self.case_ref_pattern))

    def officer_required(self, who: Identity) -> bool:
        """Whether the request must name the officer (not when a personal certificate does)."""
        return bool(who.officers) or not (who.auth == "mtls" and who.subject)

    def check(self, who: Identity, case_ref: str, legal_basis: str, officer: str) -> Grounds:
        """The grounds of a lookup by ``who``; :class:`GroundsError` names the field at fault
        (400 for a malformed case reference or an unlisted legal basis, 403 for an officer
        the credential does not carry)."""
        case_ref, officer = case_ref.strip(), officer.strip()
        if not self._case_ref.fullmatch(case_ref):
            raise GroundsError(400, "invalid_case_ref", "case_ref",
                               "case_ref is not a case reference of the configured form")
        basis = self._bases.get(_norm(legal_basis))
        if basis is None:
            raise GroundsError(400, "invalid_legal_basis", "legal_basis",
                               "legal_basis must be one of: " + "; ".join(self.legal_bases))
        if who.officers:
            if officer not in who.officers:
                raise GroundsError(403, "unregistered_officer", "officer",
                                   "officer is not one registered with this credential")
        elif who.auth == "mtls" and who.subject:
            if officer and officer != who.subject:
                raise GroundsError(403, "unregistered_officer", "officer",
                                   "officer must be the subject of the client certificate")
            officer = who.subject
        else:
            raise GroundsError(403, "unregistered_officer", "officer",
                               "this credential has no registered officers, so it cannot "
                               "state lookups")
        return Grounds(case_ref, basis, officer)


def check_settings(legal_bases: tuple[str, ...], case_ref_pattern: str, where: str) -> None:
    """``ValueError`` naming ``where.key`` for settings no policy can be made of."""
    if not legal_bases or not all(b.strip() and len(b) <= 200 and b.isprintable()
                                  for b in legal_bases):
        raise ValueError(f"{where}.legal_bases: must list 1-200 printable characters each, "
                         "at least one")
    try:
        pattern = re.compile(case_ref_pattern)
    except re.error as e:
        raise ValueError(f"{where}.case_ref_pattern: not a regular expression ({e})") from None
    for bad in ("", ".", " ", "-"):
        if pattern.fullmatch(bad):
            raise ValueError(f"{where}.case_ref_pattern: accepts {bad!r}, which is no case "
                             "reference")
