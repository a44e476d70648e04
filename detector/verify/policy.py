"""Which line-verification action a flag calls for: a documented, pure policy.

For each committed flag the daemon asks the carrier–police platform for one action on the
flagged line, and for one more on the rig it belongs to when that rig is large:

1. ``reverify`` — re-check the holder's real-name registration. For a card of a bulk
   registration (``bulk_registration``: one ID document, consecutive ICCIDs, one channel),
   for a lone SIM anomaly (no rig) and for members of small rigs (fewer than
   ``suspend_min_sims`` SIMs), or of rigs without physical evidence.
2. ``suspend`` — suspend the line pending verification. For a member of a rig of at least
   ``suspend_min_sims`` SIMs when there is device or co-location evidence: the flag itself
   is a co-location (``rig``) or a shared-device (``rig_member``) flag, or the rig's evidence
   shows SIMs rotating over shared devices or machine-like SIMs together in a cell.
3. ``police_lead`` — additionally, once per rig, when the rig has at least
   ``police_lead_min_sims`` SIMs: a lead for the police naming every line of the rig.

The suppression window (``suppress_s``) is applied by the outbox, not here: no second request
for the same line (IMSI or MSISDN) and action, nor a second police lead for the same rig,
within the window.
"""

from __future__ import annotations

from dataclasses import dataclass

from detector.flags import Flag, Rig

ACTIONS = ("reverify", "suspend", "police_lead")
PHYSICAL_KINDS = ("rig", "rig_member")          # co-location / shared device flags
PHYSICAL_EVIDENCE = ("devices", "cell")         # keys of Rig.evidence


@dataclass(frozen=True, slots=True)
class ActionPolicy:
    suspend_min_sims: int = 3
    police_lead_min_sims: int = 10
    suppress_s: float = 86400.0

    def __post_init__(self) -> None:
        if self.suspend_min_sims < 2:
            raise ValueError("suspend_min_sims must be at least 2")
        if self.police_lead_min_sims < 2:
            raise ValueError("police_lead_min_sims must be at least 2")
        if self.suppress_s < 0:
            raise ValueError("suppress_s must not be negative")


@dataclass(frozen=True, slots=True)
class Decision:
    action: str              # reverify | suspend: for the flagged line
    police_lead: bool        # also a police lead for the flag's rig
    why: str                 # plain words, sent in the request


def decide(flag: Flag, rig: Rig | None, policy: ActionPolicy = ActionPolicy()) -> Decision:
    """The action for ``flag``'s line, given the rig it belongs to (None for a lone SIM)."""
    size = len(rig.sims) if rig is not None else 0
    lead = rig is not None and size >= policy.police_lead_min_sims
    if flag.kind == "bulk_registration":
        return Decision("reverify", lead, "card of a bulk registration: re-verify the holder")
    if rig is None or size < 2:
        return Decision("reverify", lead, "lone SIM anomaly: re-verify the holder")
    if size < policy.suspend_min_sims:
        return Decision("reverify", lead, f"member of a small rig ({size} SIMs): re-verify")
    physical = flag.kind in PHYSICAL_KINDS or any(k in rig.evidence for k in PHYSICAL_EVIDENCE)
    if not physical:
        return Decision("reverify", lead, f"member of a rig of {size} SIMs without device or "
                                          f"co-location evidence: re-verify")
    return Decision("suspend", lead, f"member of a rig of {size} SIMs with device or "
                                     f"co-location evidence: suspend pending verification")
