"""The rig stage's contacts between SIMs of different partitions, joined by number.

A worker remembers a contact only between two SIMs of its own partition: it knows no other
partition's numbers. The calling groups (:mod:`detector.rigs.calling_groups`) read each
caller's contacts with the SIMs of the whole network, so each worker reports in its summaries
the contacts its SIMs had with numbers it does not hold (the SIM's IMSI and number, the
peer's number, the hour), and the rig stage keeps those of the last day. Both ends of a call
between two partitions report it; a peer's number names a SIM of the network when that SIM
has reported a contact of its own, or is held by the stage.

At each step, the SIMs whose records the stage takes in (their workers' records know only
their partition's contacts) get back every contact of the day with another partition's SIMs,
which the stage then holds too, by their number at least: what the daemon's record of each
holds (:meth:`FeatureEngine.note_contacts`).
"""

from __future__ import annotations

import numpy as np

from detector.features.engine import Contacts, FeatureEngine
from detector.scale.summaries import merged_contacts


class CrossContacts:
    def __init__(self) -> None:
        self.held = Contacts.none()      # the last day's, one per SIM and peer

    def __len__(self) -> int:
        return len(self.held)

    def add(self, new: Contacts) -> None:
        if len(new):
            self.held = merged_contacts(self.held, new)

    def forget_before(self, hour: int) -> None:
        """Drop the contacts older than epoch hour ``hour``."""
        keep = self.held.hour >= hour
        if not keep.all():
            h = self.held
            self.held = Contacts(h.imsi[keep], h.number[keep], h.peer[keep], h.hour[keep])

    def join(self, engine: FeatureEngine, sims: np.ndarray) -> np.ndarray:
        """Give ``sims`` (slots of records just taken in) their contacts of the day with SIMs
        of other partitions; those SIMs not held yet are held by their number. Returns the
        slots whose records changed (of ``sims``, and those held by number).

        Only the records taken in are given their contacts: the calling groups read the
        contacts of callers, and a caller with a new contact has a new record, so its
        worker summarises it at that tick."""
        h = self.held
        if not len(h) or not len(sims):
            return np.empty(0, np.int64)
        mine, their_numbers = engine.imsis(sims), engine.msisdns(sims)
        # the contacts they reported, and those that name their numbers as the peer
        out = np.flatnonzero(np.isin(h.imsi, mine))
        came = np.flatnonzero(np.isin(h.peer, their_numbers[their_numbers != 0]))
        peer_imsi = self._imsis_of(engine, h.peer[out])
        ok = peer_imsi > 0
        a = np.r_[h.imsi[out][ok], self._imsis_of(engine, h.peer[came])]
        b = np.r_[peer_imsi[ok], h.imsi[came]]
        b_number = np.r_[h.peer[out][ok], h.number[came]]
        hour = np.r_[h.hour[out][ok], h.hour[came]]
        ok = a > 0
        a, b, b_number, hour = a[ok], b[ok], b_number[ok], hour[ok]
        if not len(a):
            return np.empty(0, np.int64)
        added = engine.hold_numbers(b, b_number)
        changed = engine.note_contacts(engine.sims.lookup(a), engine.sims.lookup(b), hour)
        return np.union1d(changed, added)

    def _imsis_of(self, engine: FeatureEngine, numbers: np.ndarray) -> np.ndarray:
        """The IMSI of the SIM of the network with each number: held by the stage, or a
        reporter of a contact; 0 for none (a number of another network, or of a SIM not seen)."""
        held = engine.sims_of_numbers(numbers)
        out = np.where(held >= 0, engine.imsis(np.maximum(held, 0)), 0)
        h = self.held
        known = h.number != 0
        if known.any() and (out == 0).any():
            # a number's SIM: the one that reported it as its own most recently
            order = np.lexsort((-h.hour[known], h.number[known]))
            num, imsi = h.number[known][order], h.imsi[known][order]
            first = np.r_[True, num[1:] != num[:-1]]
            num, imsi = num[first], imsi[first]
            at = np.minimum(np.searchsorted(num, numbers), len(num) - 1)
            found = (num[at] == numbers) & (out == 0)
            out[found] = imsi[at[found]]
        return out


def contacts_of(columns: dict[str, np.ndarray]) -> Contacts:
    """The contacts of a ``sum`` message's columns."""
    return Contacts(*(np.asarray(columns[f"contact_{k}"], np.int64) for k in ("imsi", "number", "peer", "hour")))
