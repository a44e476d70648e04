"""Per-SIM and per-device feature state: fixed-size records in numpy arrays.

Each SIM owns one record of :data:`SIM_STATE` (its bytes are the checkpoint unit), laid
out as a ring of 24 hourly slots plus a few running values; each device (IMEI) owns one
:data:`IMEI_STATE` record. Slots hold the hours ``last_hour-23 .. last_hour``: when a SIM
moves to a later hour, the slots of the hours it skipped are cleared.
"""

from __future__ import annotations

import numpy as np

SLOTS = 24                 # hourly slots: the 24 h window
IMEI_SLOTS = 6             # devices remembered per SIM
MATES = 8                  # SIMs of the network a SIM was last in contact with
BITS_CALLEES = 64          # linear-counting bitmap of peers per hour
BITS_CELLS = 32            # linear-counting bitmap of cells per hour
BITS_CALLERS = 32          # bitmap of the numbers that called the SIM, per hour

# Counters per hourly slot (uint16, saturating).
VOICE_OUT, VOICE_OUT_ANSWERED, VOICE_IN, SMS_OUT, SMS_IN, DATA = range(6)
N_COUNTERS = 6

# One hour of a SIM (slot-major, so that clearing an hour is one record write).
SIM_SLOT = np.dtype([
    ("cnt", "<u2", (N_COUNTERS,)),
    ("dur_sum", "<f4"),                        # answered MO voice seconds
    ("dur_sq", "<f4"),
    ("callees", "<u8"),                        # peers of MO voice and SMS
    ("cells", "<u4"),
    ("callers", "<u4"),                        # numbers of MT voice calls
    ("top_cell", "<i4"),                       # the hour's most used cell (global cell id)
    ("top_n", "<u2"),
])
EMPTY_SIM_SLOT = np.zeros((), SIM_SLOT)
EMPTY_SIM_SLOT["top_cell"] = -1

SIM_STATE = np.dtype([
    ("last_hour", "<i4"),                      # newest event hour (epoch hours), -1 = none yet
    ("last_ts", "<i8"),                        # newest event time
    ("msisdn", "<i8"),
    ("slot", SIM_SLOT, (SLOTS,)),
    ("last_mo", "<i8"),                        # time of the last MO voice call
    ("gap", "<f4", (3,)),                      # decayed count, sum, sum of squares of call gaps
    ("imei", "<i8", (IMEI_SLOTS,)),            # recent devices
    ("imei_hour", "<i4", (IMEI_SLOTS,)),       # hour each was last seen
    ("activated", "<i8"),                      # registration time, 0 = unknown
    ("id_key", "<i8"),                         # hash of the registration's ID document hash
    ("id_cards", "<u2"),                       # cards registered on the same ID document
    # synchronised attaches: the SIM's latest burst (others attached in its cell within
    # SYNC_WINDOW_S, when, where, a bitmap of who) and the burst before it
    ("sync_n", "<u2"),
    ("sync_cell", "<i4"),
    ("sync_ts", "<i8"),
    ("sync_bits", "<u8"),
    ("prev_sync_ts", "<i8"),
    ("prev_sync_bits", "<u8"),
    ("talk_bits", "<u8"),                      # companions of a burst it called, texted or heard from
    ("mates", "<i8", (MATES,)),                # IMSIs of SIMs of the network it called, texted or heard from
    ("mate_hour", "<i4", (MATES,)),            # hour of the latest contact with each
    ("code_ts", "<i8"),                        # newest SMS received from a verification-code sender
    # the SIM's answers to authentication: decayed count and sum of latencies (ms), newest time
    ("auth", "<f4", (2,)),
    ("last_auth", "<i8"),
])

IMEI_SLOT = np.dtype([("sims", "<u8")])     # bitmap of SIMs the device carried that hour
EMPTY_IMEI_SLOT = np.zeros((), IMEI_SLOT)

IMEI_STATE = np.dtype([
    ("last_hour", "<i4"),
    ("slot", IMEI_SLOT, (SLOTS,)),
])


def empty_sim_state(n: int) -> np.ndarray:
    s = np.zeros(n, SIM_STATE)
    s["last_hour"] = -1
    s["slot"] = EMPTY_SIM_SLOT
    s["imei_hour"] = -1
    s["mate_hour"] = -1
    s["id_cards"] = 1
    return s


def empty_imei_state(n: int) -> np.ndarray:
    s = np.zeros(n, IMEI_STATE)
    s["last_hour"] = -1
    return s


class KeyIndex:
    """Maps int64 keys (IMSIs, IMEIs) to dense slots, vectorised: a sorted key array plus
    the slot of each, searched with ``searchsorted``; new keys are merged in once per batch."""

    def __init__(self) -> None:
        self._keys = np.empty(0, np.int64)
        self._slots = np.empty(0, np.int64)
        self.keys_by_slot = np.empty(0, np.int64)

    def __len__(self) -> int:
        return len(self.keys_by_slot)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Slots of ``keys``; -1 where unknown."""
        pos = np.searchsorted(self._keys, keys)
        pos_c = np.minimum(pos, max(len(self._keys) - 1, 0))
        found = (pos < len(self._keys)) & (self._keys[pos_c] == keys) if len(self._keys) else \
            np.zeros(len(keys), bool)
        return np.where(found, self._slots[pos_c] if len(self._keys) else -1, -1)

    def lookup_or_add(self, keys: np.ndarray) -> tuple[np.ndarray, int]:
        """Slots of ``keys``, adding the unknown ones; returns (slots, number added)."""
        slots = self.lookup(keys)
        missing = slots < 0
        if not missing.any():
            return slots, 0
        new = np.unique(keys[missing])
        first = len(self.keys_by_slot)
        new_slots = np.arange(first, first + len(new), dtype=np.int64)
        self.keys_by_slot = np.concatenate([self.keys_by_slot, new])
        at = np.searchsorted(self._keys, new)
        self._keys = np.insert(self._keys, at, new)
        self._slots = np.insert(self._slots, at, new_slots)
        slots[missing] = new_slots[np.searchsorted(new, keys[missing])]
        return slots, len(new)


def grow(state: np.ndarray, needed: int, make) -> np.ndarray:
    """``state`` with room for ``needed`` records (capacity doubles)."""
    if needed <= len(state):
        return state
    bigger = make(max(needed, 2 * len(state), 1024))
    bigger[: len(state)] = state
    return bigger
