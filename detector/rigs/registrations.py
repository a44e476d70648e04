"""Bulk registrations: many cards on one ID document, registered as one batch.

One ID document, one channel, consecutive ICCIDs, activated within ``bulk_window_s``: the
structure of 一证多卡 batches. A registration is not a behaviour and flags nothing alone;
the rule of :mod:`detector.rigs.bulk_siblings` flags a batch's cards once one of them is
flagged for how it is used, and the rig book links them into one rig.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from detector.records import RegistrationBatch
from detector.rigs.policy import RigPolicy


class BulkRegistrations:
    def __init__(self, policy: RigPolicy) -> None:
        self.policy = policy
        self._members: dict[int, tuple[int, ...]] = {}  # imsi -> imsis of its bulk registration
        self._text: dict[int, str] = {}

    def register(self, batch: RegistrationBatch) -> None:
        """Find bulk registrations: one ID document, one channel, consecutive ICCIDs,
        activated within the window (the structure of 一证多卡 batches)."""
        if not len(batch):
            return
        body = np.array([int(i[:-1]) for i in batch.iccid], np.int64)  # without the Luhn digit
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, key in enumerate(zip(batch.id_hash.tolist(), batch.channel.tolist())):
            groups[key].append(i)
        for (_, channel), idx in groups.items():
            if len(idx) < self.policy.bulk_min_cards:
                continue
            idx = np.array(idx)[np.argsort(body[idx])]
            # runs of consecutive ICCIDs activated close together
            breaks = np.flatnonzero(np.diff(body[idx]) != 1) + 1
            for run in np.split(idx, breaks):
                span = int(batch.activated_at[run].max() - batch.activated_at[run].min())
                if len(run) < self.policy.bulk_min_cards or span > self.policy.bulk_window_s:
                    continue
                members = tuple(int(x) for x in batch.imsi[run])
                text = (f"{len(run)} cards on one ID document with consecutive ICCIDs "
                        f"from channel {channel}, activated within {span // 60} minutes")
                for m in members:
                    self._members[m] = members
                    self._text[m] = text

    def members(self, imsi: int) -> tuple[int, ...]:
        """The IMSIs of the bulk registration ``imsi`` is in (itself included); none if it is
        in none."""
        return self._members.get(imsi, ())

    def text(self, imsi: int) -> str:
        """The words for the bulk registration ``imsi`` is in; empty if it is in none."""
        return self._text.get(imsi, "")
