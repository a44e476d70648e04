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
PATH = 6                   # distinct cells a SIM moved through, remembered (VoltDB: 3 or 6)
PATH_INDEXED = 3           # ... of which the newest are in the engine's step index

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
    # the last PATH distinct cells the SIM was seen in, oldest first, and when it entered each
    # (its first record there after one in another cell): -1 and 0 for none yet. Times are
    # epoch seconds in 32 unsigned bits (good until 2106): 24 bytes fewer a SIM
    ("path_cell", "<i4", (PATH,)),
    ("path_at", "<u4", (PATH,)),
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
    s["path_cell"] = -1
    return s


def empty_imei_state(n: int) -> np.ndarray:
    s = np.zeros(n, IMEI_STATE)
    s["last_hour"] = -1
    return s


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_FEW = 8       # keys still probing below which a look-up goes on one key at a time
_SPREAD = 4    # buckets per key at least: runs of full buckets stay short


class KeyIndex:
    """Maps int64 keys (IMSIs, IMEIs, numbers) to dense slots, vectorised: an open-addressing
    hash table (linear probing, at most a quarter full, so that runs of full buckets stay
    short) of int32 slots, each checked against the key it holds in ``keys_by_slot``. A
    look-up is two or three random reads per key where a sorted key array took a binary
    search of ~20 (the rig rules look up the contacts of every caller at every tick), for
    16 to 32 bytes of buckets a key.
    Slots are given in order of arrival, the new keys of one call in ascending order."""

    def __init__(self) -> None:
        self.keys_by_slot = np.empty(0, np.int64)
        self._bits = 0
        self._table = np.empty(0, np.int32)     # slot of the key in each bucket; -1: empty

    def __len__(self) -> int:
        return len(self.keys_by_slot)

    @property
    def nbytes(self) -> int:
        return self.keys_by_slot.nbytes + self._table.nbytes

    def _home(self, keys: np.ndarray) -> np.ndarray:
        return ((keys.astype(np.uint64) * _GOLDEN) >> np.uint64(64 - self._bits)).astype(np.int64)

    def lookup(self, keys: np.ndarray) -> np.ndarray:
        """Slots of ``keys``; -1 where unknown."""
        keys = np.asarray(keys, np.int64)
        out = np.full(len(keys), -1, np.int64)
        if not len(self) or not len(keys):
            return out
        mask = (1 << self._bits) - 1
        at = self._home(keys)
        todo = np.arange(len(keys))
        while len(todo) > _FEW:
            slot = self._table[at]
            used = slot >= 0
            hit = used & (self.keys_by_slot[np.maximum(slot, 0)] == keys[todo])
            out[todo[hit]] = slot[hit]
            go_on = used & ~hit
            todo, at = todo[go_on], (at[go_on] + 1) & mask
        # the few keys left on a long run of full buckets, one by one: a vectorised round
        # costs the same for 3 keys as for 3,000
        table, by_slot = self._table, self.keys_by_slot
        for i, h in zip(todo.tolist(), at.tolist()):
            key = keys[i]
            while (slot := int(table[h])) >= 0:
                if by_slot[slot] == key:
                    out[i] = slot
                    break
                h = (h + 1) & mask
        return out

    def _insert(self, keys: np.ndarray, slots: np.ndarray) -> None:
        """Put new, distinct ``keys`` (already in ``keys_by_slot`` at ``slots``) into the table."""
        mask = (1 << self._bits) - 1
        at = self._home(keys)
        todo = np.arange(len(keys))
        while len(todo):
            free = self._table[at] < 0
            # one key per free bucket this round; the others probe on
            bucket, first = np.unique(at[free], return_index=True)
            won = np.flatnonzero(free)[first]
            self._table[bucket] = slots[todo[won]]
            left = np.ones(len(todo), bool)
            left[won] = False
            todo, at = todo[left], (at[left] + 1) & mask

    def _reserve(self, n: int) -> None:
        """Room for ``n`` keys at most a quarter full (the table doubles and is refilled)."""
        if self._bits and n * _SPREAD <= (1 << self._bits):
            return
        bits = max(self._bits, 4)
        while n * _SPREAD > (1 << bits):
            bits += 1
        self._bits = bits
        self._table = np.full(1 << bits, -1, np.int32)
        if len(self.keys_by_slot):
            self._insert(self.keys_by_slot, np.arange(len(self.keys_by_slot), dtype=np.int64))

    def lookup_or_add(self, keys: np.ndarray) -> tuple[np.ndarray, int]:
        """Slots of ``keys``, adding the unknown ones; returns (slots, number added)."""
        keys = np.asarray(keys, np.int64)
        slots = self.lookup(keys)
        missing = slots < 0
        if not missing.any():
            return slots, 0
        new = np.unique(keys[missing])
        first = len(self.keys_by_slot)
        new_slots = np.arange(first, first + len(new), dtype=np.int64)
        self._reserve(first + len(new))      # may refill the table with the keys held so far
        self.keys_by_slot = np.concatenate([self.keys_by_slot, new])
        self._insert(new, new_slots)
        slots[missing] = new_slots[np.searchsorted(new, keys[missing])]
        return slots, len(new)


def grow(state: np.ndarray, needed: int, make) -> np.ndarray:
    """``state`` with room for ``needed`` records (capacity doubles)."""
    if needed <= len(state):
        return state
    bigger = make(max(needed, 2 * len(state), 1024))
    bigger[: len(state)] = state
    return bigger


class PairIndex:
    """(key, SIM slot) pairs searchable by key: which SIMs have a device, a burst or a cell.

    The state is the truth; this is a superset of it kept as records arrive, so that a rule
    asks about a few keys without reading every SIM: a query returns the SIMs of the pairs
    whose key it asks for that ``valid`` (given keys and slots, per pair whether the SIM's
    state still says so) confirms, each once, ascending. Pairs go to a small buffer, merged
    into the sorted main arrays (stale pairs dropped) once the buffer reaches a quarter of
    them, so that adding costs amortised O(1) and a query O(keys · log pairs + buffer)."""

    def __init__(self, valid) -> None:
        self.valid = valid
        self._keys = np.empty(0, np.int64)
        self._slots = np.empty(0, np.int32)     # SIM slots fit 32 bits: 12 bytes a pair
        self._new_keys: list[np.ndarray] = []
        self._new_slots: list[np.ndarray] = []
        self._n_new = 0
        self._buffer: tuple[np.ndarray, np.ndarray] | None = None   # the buffer, sorted

    def __len__(self) -> int:
        return len(self._keys) + self._n_new

    @property
    def nbytes(self) -> int:
        return self._keys.nbytes + self._slots.nbytes + 12 * self._n_new

    def clear(self) -> None:
        self.__init__(self.valid)

    def add(self, keys: np.ndarray, slots: np.ndarray) -> None:
        if not len(keys):
            return
        self._new_keys.append(np.asarray(keys, np.int64))
        self._new_slots.append(np.asarray(slots, np.int32))
        self._n_new += len(keys)
        self._buffer = None
        if self._n_new > max(4096, len(self._keys) // 4):
            self._merge()

    def _merge(self) -> None:
        keys = np.concatenate([self._keys, *self._new_keys])
        slots = np.concatenate([self._slots, *self._new_slots]).astype(np.int64)
        self._new_keys, self._new_slots, self._n_new, self._buffer = [], [], 0, None
        keep = self.valid(keys, slots)
        keys, slots = keys[keep], slots[keep]
        order = np.lexsort((slots, keys))
        keys, slots = keys[order], slots[order]
        first = np.r_[True, (keys[1:] != keys[:-1]) | (slots[1:] != slots[:-1])] if len(keys) else \
            np.zeros(0, bool)
        self._keys, self._slots = keys[first], slots[first].astype(np.int32)

    def in_ranges(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """The SIMs of valid pairs with a key in some [``lo[i]``, ``hi[i]``], ascending."""
        if self._n_new and self._buffer is None:
            bk, bs = np.concatenate(self._new_keys), np.concatenate(self._new_slots)
            order = np.argsort(bk, kind="stable")
            self._buffer = bk[order], bs[order]
        parts_k, parts_s = [], []
        for keys, slots in ((self._keys, self._slots), self._buffer or (None, None)):
            if keys is None or not len(keys):
                continue
            a, b = np.searchsorted(keys, lo, "left"), np.searchsorted(keys, hi, "right")
            take = _ranges(a, b)
            parts_k.append(keys[take])
            parts_s.append(slots[take])
        if not parts_k:
            return np.empty(0, np.int64)
        keys, slots = np.concatenate(parts_k), np.concatenate(parts_s).astype(np.int64)
        return np.unique(slots[self.valid(keys, slots)]).astype(np.int64)

    def matches(self, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(i, SIM) of the valid pairs with a key in [``lo[i]``, ``hi[i]``], each once,
        ordered by i then SIM: which SIMs answer which of several questions."""
        if self._n_new and self._buffer is None:
            bk, bs = np.concatenate(self._new_keys), np.concatenate(self._new_slots)
            order = np.argsort(bk, kind="stable")
            self._buffer = bk[order], bs[order]
        parts_i, parts_k, parts_s = [], [], []
        for keys, slots in ((self._keys, self._slots), self._buffer or (None, None)):
            if keys is None or not len(keys):
                continue
            a, b = np.searchsorted(keys, lo, "left"), np.searchsorted(keys, hi, "right")
            take = _ranges(a, b)
            parts_i.append(np.repeat(np.arange(len(lo)), np.maximum(b - a, 0)))
            parts_k.append(keys[take])
            parts_s.append(slots[take])
        if not parts_k:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        i, keys = np.concatenate(parts_i), np.concatenate(parts_k)
        slots = np.concatenate(parts_s).astype(np.int64)
        ok = self.valid(keys, slots)
        pairs = np.unique(i[ok] << 32 | slots[ok])     # slots fit 32 bits (see _slots)
        return pairs >> 32, pairs & 0xFFFFFFFF

    def of_keys(self, keys: np.ndarray) -> np.ndarray:
        """The SIMs of valid pairs with one of ``keys``, ascending."""
        keys = np.unique(np.asarray(keys, np.int64))
        return self.in_ranges(keys, keys)


def _ranges(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The indices of the ranges [a[i], b[i]) one after another."""
    n = np.maximum(b - a, 0)
    total = int(n.sum())
    if not total:
        return np.empty(0, np.int64)
    ends = np.cumsum(n)
    return np.repeat(a - (ends - n), n) + np.arange(total)
