"""The feature engine: applies record batches to per-SIM state and computes features.

One engine serves the daemon, batch scoring and training, so that a feature means the same
everywhere. Everything is vectorised over a batch: records are grouped by (SIM, hour slot)
with ``np.unique`` and reduced with ``bincount``/``reduceat``; there is no per-record loop.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields

import numpy as np

from detector.features import state as st
from detector.features.catalog import FEATURES
from detector.ids import radio_cell
from detector.records import CdrBatch, Direction, RecordType, RegistrationBatch, Result

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_HOUR = 3600
_GAP_CAP_S = 4 * _HOUR      # longer pauses are breaks, not the rhythm of a dialler
_GAP_HALF_LIFE_H = 12.0    # gaps weigh half after 12 h: the regularity of the last day
_FEATURE_CHUNK = 4096      # SIMs per pass of features()
_AUTH_HALF_LIFE_H = 12.0   # an authentication's latency weighs half after 12 h
# A rig's modules register one after another when the box powers on or swaps SIMs: attaches
# in one cell within this many seconds of each other count as one burst. People switch
# phones on at unrelated moments; in a busy cell (200 attaches a day) a chance neighbour
# within 30 s happens about once in five attaches, three or more almost never.
SYNC_WINDOW_S = 30


def _bits(values: np.ndarray, n_bits: int) -> np.ndarray:
    """One bit (as a uint) chosen by a multiplicative hash of each value."""
    shift = np.uint64(64 - int(np.log2(n_bits)))
    h = (values.astype(np.uint64) * _GOLDEN) >> shift
    return np.left_shift(np.uint64(1), h)


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x) if hasattr(np, "bitwise_count") else \
        np.unpackbits(x.view(np.uint8).reshape(*x.shape, -1), axis=-1).sum(-1)


def linear_count(bitmap: np.ndarray, n_bits: int) -> np.ndarray:
    """Distinct-value estimate of a linear-counting bitmap (Whang et al. 1990)."""
    zeros = n_bits - _popcount(bitmap).astype(np.float64)
    return np.where(zeros > 0, -n_bits * np.log(np.maximum(zeros, 1) / n_bits),
                    n_bits * np.log(n_bits))


def _sort_order(*keys: np.ndarray) -> np.ndarray:
    """``np.lexsort(keys)`` (last key primary, stable) for non-negative integer keys, as one
    argsort of the keys packed into int64: several times faster. The record's position fills
    the low bits, so the unstable sort breaks ties as lexsort does."""
    n = len(keys[0])
    if n == 0:
        return np.empty(0, np.int64)
    widths = [int(k.max()).bit_length() for k in keys]
    shift = (n - 1).bit_length()
    if shift + sum(widths) > 63:
        return np.lexsort(keys)
    packed = np.arange(n, dtype=np.int64)
    for k, width in zip(keys, widths):
        packed |= k.astype(np.int64) << shift
        shift += width
    return np.argsort(packed)


def _runs(*keys: np.ndarray) -> np.ndarray:
    """Start of each run of equal keys (arrays sorted together)."""
    change = np.zeros(len(keys[0]), bool)
    change[0:1] = True
    for k in keys:
        change[1:] |= k[1:] != k[:-1]
    return np.flatnonzero(change)


# (record type, direction) -> counter; data records are counted whatever their direction,
# signalling observations in a spare column that is dropped (they are not traffic)
_NO_COUNTER = st.N_COUNTERS
_KLASS = np.full((max(RecordType) + 1, 2), _NO_COUNTER, np.int64)
_KLASS[RecordType.DATA] = st.DATA
_KLASS[RecordType.VOICE, [Direction.MO, Direction.MT]] = st.VOICE_OUT, st.VOICE_IN
_KLASS[RecordType.SMS, [Direction.MO, Direction.MT]] = st.SMS_OUT, st.SMS_IN


@dataclass(frozen=True, slots=True)
class Applied:
    """What one batch did: the SIM slots it touched and the records refused as late."""

    sims: np.ndarray     # unique SIM slots touched
    late: np.ndarray     # boolean mask over the batch: older than the allowed lateness
    new_sims: int


@dataclass(frozen=True, slots=True, eq=False)
class Bursts:
    """Per SIM, its latest power-on burst and the one before (:meth:`FeatureEngine.bursts`)."""

    cell: np.ndarray     # radio cell id of the latest burst
    ts: np.ndarray       # its event time; 0 = none
    others: np.ndarray   # other SIMs that attached with it (an estimate)
    prev_ts: np.ndarray  # event time of the burst before; 0 = none


@dataclass(frozen=True, slots=True, eq=False)
class Contacts:
    """Contacts of SIMs with numbers, one per SIM and peer at its newest hour."""

    imsi: np.ndarray     # int64, the SIM's
    number: np.ndarray   # int64, the SIM's number (0 when unknown)
    peer: np.ndarray     # int64, the number it called, texted or heard from
    hour: np.ndarray     # int64, epoch hour of the newest such contact

    @staticmethod
    def none() -> Contacts:
        e = np.empty(0, np.int64)
        return Contacts(e, e, e, e)

    def __len__(self) -> int:
        return len(self.imsi)


@dataclass(frozen=True, slots=True, eq=False)
class DeviceUses:
    """SIMs seen in devices: one per (device, SIM, hour)."""

    imei: np.ndarray     # int64
    imsi: np.ndarray     # int64
    hour: np.ndarray     # int64, epoch hour

    @staticmethod
    def none() -> DeviceUses:
        e = np.empty(0, np.int64)
        return DeviceUses(e, e, e)

    def __len__(self) -> int:
        return len(self.imei)

    def merged(self, other: DeviceUses) -> DeviceUses:
        """Both, each (device, SIM, hour) once, ordered by device, SIM and hour."""
        if not len(other):
            return self
        q = np.unique(np.stack([np.r_[self.imei, other.imei], np.r_[self.imsi, other.imsi],
                                np.r_[self.hour, other.hour]], axis=1), axis=0)
        return DeviceUses(q[:, 0].copy(), q[:, 1].copy(), q[:, 2].copy())


@dataclass(frozen=True, slots=True, eq=False)
class FeatureFrame:
    """Feature values of some SIMs at their latest event time."""

    sims: np.ndarray     # SIM slots
    imsi: np.ndarray     # int64
    msisdn: np.ndarray
    at: np.ndarray       # int64 event time of each SIM's latest record
    values: np.ndarray   # float64 (n, len(FEATURES))
    activity: np.ndarray  # events in the 24 h window

    def __len__(self) -> int:
        return len(self.sims)

    def column(self, name: str) -> np.ndarray:
        return self.values[:, FEATURES.index(name)]


class FeatureEngine:
    """Per-SIM windows (1 h and 24 h of event time) over CDRs and registrations."""

    def __init__(self, lateness_s: int = 3600, utc_offset_h: int = 8,
                 code_senders: tuple[str, ...] = ("1069",), shared_cells: bool = True) -> None:
        if not 0 <= lateness_s < 24 * _HOUR:
            raise ValueError("lateness_s must be from 0 to less than 24 h")
        self.lateness_s = lateness_s
        self.utc_offset_h = utc_offset_h
        self.shared_cells = shared_cells
        # number ranges [lo, hi) of the verification-code senders' prefixes, at every length
        self._code_ranges = np.array([(int(p) * 10**k, (int(p) + 1) * 10**k)
                                      for p in code_senders for k in range(16 - len(p))],
                                     np.int64).reshape(-1, 2)
        # slot j only ever holds hours = j (mod 24), so the night slots are fixed
        self._night_slots = np.flatnonzero((np.arange(st.SLOTS) + utc_offset_h) % 24 < 6)
        self.sims = st.KeyIndex()
        self.imeis = st.KeyIndex()
        # MSISDN -> SIM slot, to know the SIMs of the network among a record's peers; an entry
        # whose SIM has changed number since is told by the SIM's own msisdn
        self.numbers = st.KeyIndex()
        self._number_sim = np.zeros(0, np.int64)
        self.sim_state = st.empty_sim_state(0)
        self.imei_state = st.empty_imei_state(0)
        self.cells: dict[str, int] = {}        # canonical cell name -> global cell id
        self._cell_names: list[str] = []       # ... and back (ids are given in order)
        # per cell id, its radio cell's id: the first id seen of that cell on any network
        # (see radio_cells); what the state holds wherever it notes a cell
        self._radio = np.zeros(0, np.int64)
        self._radio_first: dict[str, int] = {}
        self._cell_lut: tuple = (None, None)   # (batch cell table, its global ids)
        self.watermark = 0                     # newest event time seen
        self.observed_from = 0                 # oldest event time of the first batch (0: unknown)
        self.events = np.zeros(0, np.int32)    # per SIM: events in the 24 h window, kept
        # apart from the 1 KB records so that the activity gate reads 4 bytes per SIM
        self.voice_out = np.zeros(0, np.int32)  # ... and MO voice calls (the rig rules' callers)
        # What the rig rules ask about a few keys, without reading every SIM: the SIMs of a
        # device, of a power-on burst (by its key, see _burst_key), of a newest busiest cell.
        # Kept as records arrive; records written from outside (see _sim_slots) are indexed
        # when next asked.
        self._by_device = st.PairIndex(self._device_pair_valid)
        self._by_burst = st.PairIndex(self._burst_pair_valid)
        self._by_cell = st.PairIndex(self._cell_pair_valid)
        # ... and the SIMs that entered a cell at a time, among their newest PATH_INDEXED
        # steps (key: cell << 32 | time entered): who moved with a SIM
        self._by_step = st.PairIndex(self._step_pair_valid)
        self._external: list[np.ndarray] = []
        self._cell_of = np.zeros(0, np.int32)   # per SIM, its newest cell as indexed (-1 none)
        self.dirty = np.zeros(0, bool)         # SIMs touched since the last take_dirty()
        self.unsaved = np.zeros(0, bool)       # SIMs changed since the last checkpoint
        self.unsaved_imeis = np.zeros(0, bool)
        # recent attaches (event time, global cell, IMSI), newest `lateness + window` seconds:
        # a late attach is still compared with the ones it was close to
        self.attaches = np.zeros((0, 3), np.int64)

    # ---- intake ----------------------------------------------------------------------

    def _sim_slots(self, imsi: np.ndarray, external: bool = True) -> tuple[np.ndarray, int]:
        """Slots of ``imsi``, adding the unknown ones. Unless ``external`` is false (the
        engine's own intake, which keeps its indexes as it writes), the caller is taken to
        write those records itself: they are indexed anew when next asked."""
        slots, added = self.sims.lookup_or_add(imsi)
        if external and len(slots):
            self._external.append(slots)
        if added:
            self.sim_state = st.grow(self.sim_state, len(self.sims), st.empty_sim_state)
            self.events = _pad(self.events, len(self.sim_state))
            self.voice_out = _pad(self.voice_out, len(self.sim_state))
            self._cell_of = np.r_[self._cell_of, np.full(len(self.sim_state) - len(self._cell_of), -1, np.int32)]
            self.dirty = _pad(self.dirty, len(self.sim_state))
            self.unsaved = _pad(self.unsaved, len(self.sim_state))
        return slots, added

    def apply_registrations(self, batch: RegistrationBatch) -> np.ndarray:
        """Record activation time, number and cards-per-ID; returns the SIM slots."""
        if not len(batch):
            return np.empty(0, np.int64)
        slots, _ = self._sim_slots(batch.imsi, external=False)
        s = self.sim_state
        s["activated"][slots] = batch.activated_at
        s["msisdn"][slots] = batch.msisdn
        self._index_numbers(slots)
        self.unsaved[slots] = True
        self._id_keys_update(slots, batch.id_hash)
        return slots

    @staticmethod
    def id_key(id_hash: str) -> int:
        """The int64 key of an ID document hash."""
        return int.from_bytes(hashlib.blake2b(str(id_hash).encode(), digest_size=8).digest(),
                              "little", signed=True)

    def set_registrations(self, imsi: np.ndarray, msisdn: np.ndarray, activated_at: np.ndarray,
                          id_key: np.ndarray, id_cards: np.ndarray) -> np.ndarray:
        """Registrations with their cards-per-ID counted elsewhere (a scale-out worker holds
        only its partition's SIMs; the publisher counts over the whole population)."""
        if not len(imsi):
            return np.empty(0, np.int64)
        slots, _ = self._sim_slots(imsi, external=False)
        s = self.sim_state
        s["activated"][slots] = activated_at
        s["msisdn"][slots] = msisdn
        self._index_numbers(slots)
        s["id_key"][slots] = id_key
        s["id_cards"][slots] = np.minimum(id_cards, 65535)
        self.unsaved[slots] = True
        return slots

    def _index_numbers(self, slots: np.ndarray) -> None:
        """Point the numbers of ``slots`` (their current msisdn) at them."""
        numbers = self.sim_state["msisdn"][slots]
        has = numbers != 0
        if not has.any():
            return
        at, _ = self.numbers.lookup_or_add(numbers[has])
        self._number_sim = st.grow(self._number_sim, len(self.numbers), lambda n: np.zeros(n, np.int64))
        self._number_sim[at] = slots[has]

    def _sims_of_numbers(self, numbers: np.ndarray) -> np.ndarray:
        """The SIM slot that has each number now; -1 for numbers of no SIM seen here."""
        at = self.numbers.lookup(numbers)
        sim = np.where(at >= 0, self._number_sim[np.maximum(at, 0)] if len(self._number_sim) else -1, -1)
        return np.where((sim >= 0) & (self.sim_state["msisdn"][np.maximum(sim, 0)] == numbers), sim, -1)

    def _id_keys_update(self, slots: np.ndarray, id_hash: np.ndarray) -> None:
        s = self.sim_state
        s["id_key"][slots] = [self.id_key(h) for h in id_hash]
        has = np.flatnonzero(s["id_key"][: len(self.sims)] != 0)
        _, inv, counts = np.unique(s["id_key"][has], return_inverse=True, return_counts=True)
        cards = np.minimum(counts[inv], 65535)
        self.unsaved[has[s["id_cards"][has] != cards]] = True
        s["id_cards"][has] = cards

    def apply(self, batch: CdrBatch) -> Applied:
        """Fold a batch into the state. Records older than ``watermark - lateness`` (the
        watermark counting this batch's newest record) are refused, returned in ``late``, and
        change nothing. Callers cut input in event-time order first, as
        :meth:`detector.pipeline.Pipeline.feed` does, so that a batch spans less than that."""
        n = len(batch)
        if n == 0:
            return Applied(np.empty(0, np.int64), np.zeros(0, bool), 0)
        newest = int(batch.ts.max())
        horizon = max(self.watermark, newest) - self.lateness_s
        late = batch.ts < horizon
        keep = ~late
        b = batch.take(keep) if late.any() else batch
        if not len(b):
            return Applied(np.empty(0, np.int64), late, 0)
        self.watermark = max(self.watermark, newest)
        if not self.observed_from:
            self.observed_from = int(b.ts.min())

        sim, added = self._sim_slots(b.imsi, external=False)
        gcell = self._global_cells(b)
        hour = (b.ts // _HOUR).astype(np.int64)
        # One sort by (SIM, hour, cell) gives every grouping below: SIMs, (SIM, hour) slots
        # and (slot, cell) pairs are runs of it.
        order = _sort_order(gcell + 1, hour - hour.min(), sim)
        b, sim, hour, gcell = b.take(order), sim[order], hour[order], gcell[order]
        new_sim = np.r_[True, sim[1:] != sim[:-1]]
        new_key = new_sim | np.r_[False, hour[1:] != hour[:-1]]
        sim_start, key_start = np.flatnonzero(new_sim), np.flatnonzero(new_key)
        usims = sim[sim_start]
        s = self.sim_state
        self._advance_sims(usims, np.maximum.reduceat(hour, sim_start))
        latest = b.msisdn[np.r_[sim_start[1:], len(sim)] - 1]  # 0 when the record had none
        renumbered = (latest != 0) & (latest != s["msisdn"][usims])
        s["msisdn"][usims[renumbered]] = latest[renumbered]
        self._index_numbers(usims[renumbered])
        s["last_ts"][usims] = np.maximum(s["last_ts"][usims], np.maximum.reduceat(b.ts, sim_start))

        k_sim, k_slot = sim[key_start], hour[key_start] % st.SLOTS
        inv = np.cumsum(new_key) - 1          # each record's (SIM, hour) group
        slots = s["slot"]
        self._counters(slots, b, inv, len(key_start), k_sim, k_slot)
        mo_contact = (b.direction == Direction.MO) & (b.record_type != RecordType.DATA) & (b.peer != 0)
        callee_bits = np.where(mo_contact, _bits(b.peer, st.BITS_CALLEES), np.uint64(0))
        slots["callees"][k_sim, k_slot] |= np.bitwise_or.reduceat(callee_bits, key_start)
        has_cell = gcell >= 0
        cell_bits = np.where(has_cell, _bits(gcell, st.BITS_CELLS), np.uint64(0)).astype(np.uint32)
        slots["cells"][k_sim, k_slot] |= np.bitwise_or.reduceat(cell_bits, key_start)
        called_by = (b.direction == Direction.MT) & (b.record_type == RecordType.VOICE) & (b.peer != 0)
        caller_bits = np.where(called_by, _bits(b.peer, st.BITS_CALLERS), np.uint64(0)).astype(np.uint32)
        slots["callers"][k_sim, k_slot] |= np.bitwise_or.reduceat(caller_bits, key_start)
        # the busiest cell is a share of traffic: observations mark the cell, not its count
        traffic_cell = np.where(b.record_type >= RecordType.SIGNAL, -1, gcell)
        self._top_cells(slots, inv, traffic_cell, new_key, k_sim, k_slot)
        self._gaps(s, b, sim)
        self._devices(b, sim, hour)
        self.dirty[usims] = True
        self.unsaved[usims] = True
        self._sync_attaches(b, gcell)
        self._contacts(b, sim, hour)
        self._codes(s, b, sim)
        self._auths(s, b, sim)
        self._paths(b, sim, gcell)
        self._index_cells(usims)
        return Applied(usims, late, added)

    def _auths(self, s: np.ndarray, b: CdrBatch, sim: np.ndarray) -> None:
        """Decayed count and sum of the SIM's authentication latencies, each weighted by its
        age at the SIM's newest one (so batch boundaries do not matter)."""
        auth = np.flatnonzero(b.record_type == RecordType.AUTH)
        if not len(auth):
            return
        asim, ats, ms = sim[auth], b.ts[auth], b.duration[auth].astype(np.float64)
        order = _sort_order(ats - ats.min(), asim)
        asim, ats, ms = asim[order], ats[order], ms[order]
        first = np.r_[True, asim[1:] != asim[:-1]]
        usim, start = asim[first], np.flatnonzero(first)
        newest = np.maximum(np.maximum.reduceat(ats, start), s["last_auth"][usim])
        half_life = _AUTH_HALF_LIFE_H * _HOUR
        w = 0.5 ** ((newest[np.cumsum(first) - 1] - ats) / half_life)
        decay = np.where(s["last_auth"][usim] > 0,
                         0.5 ** ((newest - s["last_auth"][usim]) / half_life), 0.0)
        a = s["auth"][usim].astype(np.float64) * decay[:, None]
        a[:, 0] += np.add.reduceat(w, start)
        a[:, 1] += np.add.reduceat(w * ms, start)
        s["auth"][usim] = a
        s["last_auth"][usim] = newest

    def _paths(self, b: CdrBatch, sim: np.ndarray, gcell: np.ndarray) -> None:
        """Each SIM's last ``PATH`` distinct cells with the time it entered each: its records
        in time order, a step at each record in another cell than the one before. A record
        older than the SIM's newest step changes nothing (the steps after it are known), so
        that input in event-time order gives the same path whatever the batches."""
        has = np.flatnonzero(gcell >= 0)
        if not len(has):
            return
        ts, sm, cell = b.ts[has], sim[has], gcell[has]
        order = _sort_order(cell + 1, ts - ts.min(), sm)      # per SIM by time, then cell
        ts, sm, cell = ts[order], sm[order], cell[order]
        s = self.sim_state
        keep = ts >= s["path_at"][sm, -1]
        ts, sm, cell = ts[keep], sm[keep], cell[keep]
        if not len(ts):
            return
        first = np.r_[True, sm[1:] != sm[:-1]]
        before = np.where(first, s["path_cell"][sm, -1], np.r_[-1, cell[:-1]])
        step = cell != before
        if not step.any():
            return
        ts, sm, cell = ts[step], sm[step], cell[step]
        # per SIM its newest PATH steps, shifted in after the path it had
        start = np.flatnonzero(np.r_[True, sm[1:] != sm[:-1]])
        count = np.diff(np.r_[start, len(sm)])
        usim = sm[start]
        from_end = np.repeat(start + count, count) - np.arange(len(sm))   # 1 = newest
        k = np.minimum(count, st.PATH)
        width = st.PATH
        new_cell = np.full((len(usim), width), -1, np.int64)
        new_at = np.zeros((len(usim), width), np.int64)
        fits = from_end <= width
        row = np.repeat(np.arange(len(usim)), count)[fits]
        col = (np.repeat(k, count)[fits] - from_end[fits])       # left-aligned, oldest first
        new_cell[row, col], new_at[row, col] = cell[fits], ts[fits]
        both_cell = np.concatenate([s["path_cell"][usim].astype(np.int64), new_cell], axis=1)
        both_at = np.concatenate([s["path_at"][usim].astype(np.int64), new_at], axis=1)
        take = k[:, None] + np.arange(width)
        rows = np.arange(len(usim))[:, None]
        s["path_cell"][usim] = both_cell[rows, take]
        s["path_at"][usim] = both_at[rows, take]
        added = from_end <= st.PATH_INDEXED
        self._by_step.add(_step_key(cell[added], ts[added]), sm[added])

    def auth_latency(self, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(mean authentication latency in ms, decayed number of authentications) per SIM;
        0 and 0 for a SIM never seen authenticating."""
        a = self.sim_state["auth"][sims].astype(np.float64)
        mean = np.divide(a[:, 1], a[:, 0], out=np.zeros(len(a)), where=a[:, 0] > 0)
        return mean, a[:, 0]

    def _sync_attaches(self, b: CdrBatch, gcell: np.ndarray) -> None:
        """Bursts of attaches: per attach, the other SIMs attaching in the same cell within
        ``SYNC_WINDOW_S`` (how many, and a bitmap of which). Each SIM keeps its latest burst
        and the one before, so that the same SIMs powering on together again can be seen.
        Attaches of earlier batches still in the buffer are counted again with the new ones,
        so the result does not depend on how the input was cut into batches."""
        new = (b.record_type == RecordType.ATTACH) & (gcell >= 0)
        if not new.any():
            return
        old = self.attaches
        added = np.unique(np.column_stack([b.ts[new], gcell[new], b.imsi[new]]), axis=0)
        added = added[~np.isin(_rows(added), _rows(old))]     # a repeated attach changes nothing
        if not len(added):
            return
        buf = np.concatenate([old, added])
        fresh = np.r_[np.zeros(len(old), bool), np.ones(len(added), bool)]
        self.attaches = buf[buf[:, 0] >= self.watermark - self.lateness_s - SYNC_WINDOW_S]
        order = np.lexsort((buf[:, 2], buf[:, 0], buf[:, 1]))    # by cell, then time
        ts, cell, imsi, fresh = buf[order, 0], buf[order, 1], buf[order, 2], fresh[order]
        n = len(ts)
        same = np.ones(n, bool)
        bits = np.zeros(n, np.uint64)
        changed = fresh.copy()              # new attaches and those a new one is close to
        me = _bits(imsi, 64)
        for d in range(1, n):               # neighbours d places apart, while any is close
            close = (cell[d:] == cell[:-d]) & (ts[d:] - ts[:-d] <= SYNC_WINDOW_S) & same[:n - d]
            if not close.any():
                break
            same[:n - d] = close
            near = close & (imsi[d:] != imsi[:-d])
            bits[:-d] |= np.where(near, me[d:], 0)
            bits[d:] |= np.where(near, me[:-d], 0)
            changed[:-d] |= near & fresh[d:]
            changed[d:] |= near & fresh[:-d]
        others = np.minimum(np.round(linear_count(bits, 64)), 65535).astype(np.int64) * (bits != 0)
        # bursts without a new attach were noted before: noting them again would only mark
        # their SIMs for rescoring and rewriting
        hit = (others > 0) & changed
        if hit.any():
            self._note_bursts(imsi[hit], ts[hit], cell[hit], others[hit], bits[hit])

    def _note_bursts(self, imsi, ts, cell, others, bits) -> None:
        """Fold bursts into the SIMs' latest/previous burst, oldest first per SIM: a burst
        in the latest's cell within an hour of it is the same one seen again (merged), a
        later one replaces it and the latest becomes the previous (a box switched off and on
        again, or moved, within the hour powers on with its companions in a new burst)."""
        order = np.lexsort((ts, imsi))
        imsi, ts, cell, others, bits = imsi[order], ts[order], cell[order], others[order], bits[order]
        sims = self.sims.lookup(imsi)
        s = self.sim_state
        rank = np.arange(len(sims))
        rank -= np.maximum.accumulate(np.where(np.r_[True, sims[1:] != sims[:-1]], rank, 0))
        for k in range(int(rank.max()) + 1):
            r = rank == k
            sm, t, c, n, bb = sims[r], ts[r], cell[r], others[r], bits[r]
            cur_t = s["sync_ts"][sm]
            again = (cur_t > 0) & (np.abs(t - cur_t) < _HOUR) & (c == s["sync_cell"][sm])
            later = ~again & (t > cur_t)
            g, a = sm[again], again
            s["sync_bits"][g] |= bb[a]
            s["sync_n"][g] = np.maximum(s["sync_n"][g], n[a])
            s["sync_ts"][g] = np.maximum(cur_t[a], t[a])
            g, a = sm[later], later
            s["prev_sync_ts"][g], s["prev_sync_bits"][g] = s["sync_ts"][g], s["sync_bits"][g]
            s["sync_n"][g], s["sync_cell"][g], s["sync_ts"][g], s["sync_bits"][g] = n[a], c[a], t[a], bb[a]
            touched = sm[again | later]
            self.dirty[touched] = True
            self.unsaved[touched] = True
            self._by_burst.add(self._burst_keys(touched), touched)

    def _contacts(self, b: CdrBatch, sim: np.ndarray, hour: np.ndarray) -> None:
        """Calls and SMS between two SIMs of the network, either way: each end remembers the
        other (``mates``, the latest :data:`st.MATES`), and SIMs that powered on together
        (same cell, same burst) also mark each other in ``talk_bits``. A box whose SIMs call
        and text each other to look like people shows itself this way; phones that happened
        to switch on together rarely know each other."""
        contact = np.flatnonzero(_is_contact(b))
        if not len(contact):
            return
        other = self._sims_of_numbers(b.peer[contact])
        a = sim[contact]
        found = (other >= 0) & (other != a)
        if not found.any():
            return
        a, other, h = a[found], other[found], hour[contact[found]]
        imsi = self.sims.keys_by_slot
        owner, mate, at = np.r_[a, other], np.r_[imsi[other], imsi[a]], np.r_[h, h]
        order = _sort_order(mate, owner)
        owner, mate, at = owner[order], mate[order], at[order]
        start = _runs(owner, mate)
        self._remember(owner[start], mate[start], np.maximum.reduceat(at, start), "mates", "mate_hour")
        touched = np.unique(owner)
        self.unsaved[touched] = True
        self._burst_contacts(a, other)

    def _burst_contacts(self, a: np.ndarray, other: np.ndarray) -> None:
        """``talk_bits`` of the pairs (``a``, ``other``) in contact that share a burst of the
        last day."""
        s = self.sim_state
        since = self.watermark - 24 * _HOUR - self.lateness_s   # bursts of the last day
        same = (s["sync_ts"][a] > since) & (s["sync_ts"][other] > since) & \
            (s["sync_cell"][a] == s["sync_cell"][other]) & \
            (np.abs(s["sync_ts"][a] - s["sync_ts"][other]) <= 4 * SYNC_WINDOW_S)
        a, other = a[same], other[same]
        if not len(a):
            return
        imsi = self.sims.keys_by_slot
        touched = np.union1d(a, other)
        before = s["talk_bits"][touched].copy()
        np.bitwise_or.at(s["talk_bits"], a, _bits(imsi[other], 64))
        np.bitwise_or.at(s["talk_bits"], other, _bits(imsi[a], 64))
        self._wake_bursts(touched[s["talk_bits"][touched] != before])

    def _codes(self, s: np.ndarray, b: CdrBatch, sim: np.ndarray) -> None:
        """When each SIM last received an SMS from a verification-code sender."""
        mt_sms = np.flatnonzero((b.record_type == RecordType.SMS) & (b.direction == Direction.MT))
        if not len(mt_sms) or not len(self._code_ranges):
            return
        peer = b.peer[mt_sms]
        lo, hi = self._code_ranges[:, 0], self._code_ranges[:, 1]
        code = ((peer[:, None] >= lo) & (peer[:, None] < hi)).any(axis=1)
        if not code.any():
            return
        got = sim[mt_sms[code]]
        first = np.unique(got[s["code_ts"][got] < s["sync_ts"][got]])   # first since its burst
        np.maximum.at(s["code_ts"], got, b.ts[mt_sms[code]])
        self._wake_bursts(first[s["code_ts"][first] >= s["sync_ts"][first]])

    def _burst_keys(self, sims: np.ndarray) -> np.ndarray:
        """The key (cell, time) of each SIM's latest burst, as :func:`_burst_key`."""
        s = self.sim_state
        return s["sync_cell"][sims].astype(np.int64) << 32 | s["sync_ts"][sims]

    # ---- indexes (see __init__) --------------------------------------------------------------

    def _device_pair_valid(self, imei: np.ndarray, sims: np.ndarray) -> np.ndarray:
        """Whether each SIM's device table still holds that device (however long ago it was
        seen: a device seen again is not added again)."""
        return (self.sim_state["imei"][sims] == imei[:, None]).any(axis=1)

    def _burst_pair_valid(self, keys: np.ndarray, sims: np.ndarray) -> np.ndarray:
        """Whether each SIM's latest burst has that key and is of the last day."""
        return (self._burst_keys(sims) == keys) & \
            (self.sim_state["sync_ts"][sims] > self.watermark - 24 * _HOUR - self.lateness_s)

    def _cell_pair_valid(self, cells: np.ndarray, sims: np.ndarray) -> np.ndarray:
        return self._cell_of[sims] == cells     # kept as the newest cell at every change

    def _step_pair_valid(self, keys: np.ndarray, sims: np.ndarray) -> np.ndarray:
        """Whether the step is still one of the SIM's newest ``PATH_INDEXED``."""
        return (self._steps(sims) == keys[:, None]).any(axis=1)

    def _steps(self, sims: np.ndarray) -> np.ndarray:
        """The keys of each SIM's newest ``PATH_INDEXED`` steps, (n, PATH_INDEXED)."""
        s = self.sim_state
        cols = slice(st.PATH - st.PATH_INDEXED, None)
        return _step_key(s["path_cell"][sims, cols], s["path_at"][sims, cols])

    def _index(self, slots: np.ndarray) -> None:
        """(Re)build what is kept beside the records of ``slots`` from the records."""
        s = self.sim_state
        cnt = s["slot"]["cnt"][slots]
        self.events[slots] = _slot_events(cnt).sum(axis=1)
        self.voice_out[slots] = cnt[:, :, st.VOICE_OUT].sum(axis=1)
        imei = s["imei"][slots]
        r, c = np.nonzero(imei)
        self._by_device.add(imei[r, c], slots[r])
        burst = s["sync_ts"][slots] > 0
        self._by_burst.add(self._burst_keys(slots[burst]), slots[burst])
        steps = self._steps(slots)
        r, c = np.nonzero(self.sim_state["path_cell"][slots, st.PATH - st.PATH_INDEXED:] >= 0)
        self._by_step.add(steps[r, c], slots[r])
        self._index_cells(slots)

    def _index_cells(self, sims: np.ndarray) -> None:
        """Index the SIMs whose newest busiest cell changed under their new cell."""
        cell = self.newest_cell(sims)
        moved = cell != self._cell_of[sims]
        sims, cell = sims[moved], cell[moved]
        self._cell_of[sims] = cell
        self._by_cell.add(cell[cell >= 0], sims[cell >= 0])

    def _refresh(self) -> None:
        """Index the records written from outside since the last call (see _sim_slots)."""
        if self._external:
            slots = np.unique(np.concatenate(self._external))
            self._external = []
            self._index(slots)

    def _burst_reach(self, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per SIM, the range [lo, hi] of burst keys (cell, time) that its latest burst's
        SIMs have: its own within ``4 * SYNC_WINDOW_S``."""
        q = self._burst_keys(sims)
        reach = 4 * SYNC_WINDOW_S       # as when burst partners are linked into one rig
        return q - reach, q + reach

    def burst_mates(self, sims: np.ndarray) -> np.ndarray:
        """The SIMs with a burst in the last day that is one of the latest bursts of ``sims``
        (their companions, and ``sims`` themselves when theirs is in the last day),
        ascending; read from the burst index, not from every SIM."""
        self._refresh()
        if not len(sims):
            return np.empty(0, np.int64)
        return self._by_burst.in_ranges(*self._burst_reach(sims))

    def _wake_bursts(self, sims: np.ndarray) -> None:
        """Mark for rescoring every SIM of the bursts of ``sims``: what one SIM of a burst
        does (its first code, a call to a companion) is evidence about all of them."""
        if not len(sims):
            return
        self.dirty[self.burst_mates(sims)] = True

    def burst_members(self, sims: np.ndarray, which) -> np.ndarray:
        """Per SIM, how many SIMs of its latest burst (itself included) are marked in
        ``which``: a mask over all SIM slots, or a function that tells, for an array of SIM
        slots, which of them are (asked only of the SIMs of these bursts); 0 for a SIM
        without a burst in the last day."""
        out = np.zeros(len(sims), np.int64)
        mine = self.sim_state["sync_ts"][sims] > self.watermark - 24 * _HOUR - self.lateness_s
        if not mine.any():
            return out
        lo, hi = self._burst_reach(sims[mine])
        self._refresh()
        cand = self._by_burst.in_ranges(lo, hi)
        marked = cand[which(cand) if callable(which) else which[cand]]
        keys = np.sort(self._burst_keys(marked))
        out[mine] = np.searchsorted(keys, hi, "right") - np.searchsorted(keys, lo, "left")
        return out

    def burst_contacts(self, sims: np.ndarray) -> np.ndarray:
        """Per SIM, how many SIMs of its latest burst it has been in contact with (calls or
        SMS either way; an estimate from the bitmaps)."""
        s = self.sim_state
        common = s["talk_bits"][sims] & s["sync_bits"][sims]
        return np.where(common != 0, np.round(linear_count(common, 64)), 0).astype(np.int64)

    def repeated_bursts(self, sims: np.ndarray) -> np.ndarray:
        """Per SIM, how many SIMs of its latest burst were also in the burst before (an
        estimate from the bitmaps): the same SIMs powering on together again."""
        s = self.sim_state
        both = (s["sync_ts"][sims] > 0) & (s["prev_sync_ts"][sims] > 0)
        common = s["sync_bits"][sims] & s["prev_sync_bits"][sims]
        return np.where(both & (common != 0), np.round(linear_count(common, 64)), 0).astype(np.int64)

    # ---- read side: what the rig rules, the rig book and the allow-list read ----------------
    # Every reader outside this package goes through these (the record layout is the engine's).

    def newest_hour(self, sims: np.ndarray) -> np.ndarray:
        """Each SIM's newest event hour (epoch hours); -1 for none yet."""
        return self.sim_state["last_hour"][sims].astype(np.int64)

    def last_seen(self, sims: np.ndarray) -> np.ndarray:
        """Event time of each SIM's newest record."""
        return self.sim_state["last_ts"][sims]

    def imsis(self, sims: np.ndarray) -> np.ndarray:
        """IMSI (int64) of each SIM slot."""
        return self.sims.keys_by_slot[sims]

    def msisdns(self, sims: np.ndarray) -> np.ndarray:
        """Each SIM's number (0 when unknown)."""
        return self.sim_state["msisdn"][sims]

    def id_keys(self, sims: np.ndarray) -> np.ndarray:
        """Each SIM's ID-document key (:meth:`id_key`; 0 when unknown)."""
        return self.sim_state["id_key"][sims]

    def newest_cell(self, sims: np.ndarray) -> np.ndarray:
        """Per SIM, the busiest (radio) cell of its newest hour; -1 when unknown."""
        s = self.sim_state
        last = s["last_hour"][sims].astype(np.int64)
        return np.where(last >= 0, s["slot"]["top_cell"][sims, last % st.SLOTS], -1)

    def hourly_cells(self, sims: np.ndarray) -> np.ndarray:
        """Per SIM, the busiest cell of each hour of its 24 h window, (n, 24); -1 for none."""
        return self.sim_state["slot"]["top_cell"][sims]

    def devices(self, sims: np.ndarray) -> np.ndarray:
        """Per SIM, its recent devices' IMEIs, (n, IMEI_SLOTS); 0 for an empty place."""
        return self.sim_state["imei"][sims]

    def newest_device(self, sims: np.ndarray) -> np.ndarray:
        """Per SIM, the IMEI of the device it was last seen in (0 when none)."""
        s = self.sim_state
        newest = np.argmax(s["imei_hour"][sims], axis=1)
        return s["imei"][sims, newest]

    def device_users(self, imeis: np.ndarray) -> np.ndarray:
        """The SIMs that used one of ``imeis`` within the last 24 h, ascending (from the
        device index: the cost follows the devices asked about, not the network)."""
        self._refresh()
        imeis = np.unique(np.asarray(imeis, np.int64))
        imeis = imeis[imeis != 0]
        sims = self._by_device.of_keys(imeis)
        s = self.sim_state
        recent = np.isin(s["imei"][sims], imeis) & (s["imei_hour"][sims] >= self.watermark // _HOUR - 23)
        return sims[recent.any(axis=1)]

    def sims_in_cells(self, cells: np.ndarray) -> np.ndarray:
        """The SIMs whose newest hour's busiest cell is one of ``cells``, ascending (from
        the cell index)."""
        self._refresh()
        cells = np.asarray(cells, np.int64)
        return self._by_cell.of_keys(cells[cells >= 0])

    def recent_cells(self, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per SIM, the last ``PATH`` distinct (radio) cells it was seen in, oldest first,
        and the time it entered each, both (n, PATH) int64; -1 and 0 where it has fewer."""
        s = self.sim_state
        return s["path_cell"][sims].astype(np.int64), s["path_at"][sims].astype(np.int64)

    def entered(self, cells: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(i, SIM) of the SIMs that entered ``cells[i]`` at a time within [``lo[i]``,
        ``hi[i]``] as one of their newest ``PATH_INDEXED`` steps, ordered by i then SIM
        (from the step index: the cost follows the steps asked about)."""
        self._refresh()
        cells = np.asarray(cells, np.int64)
        lo, hi = np.maximum(np.asarray(lo, np.int64), 0), np.asarray(hi, np.int64)
        ok = np.flatnonzero(cells >= 0)
        i, sims = self._by_step.matches(_step_key(cells[ok], lo[ok]), _step_key(cells[ok], hi[ok]))
        return ok[i], sims

    def bursts(self, sims: np.ndarray) -> Bursts:
        """Each SIM's latest power-on burst and the time of the one before."""
        s = self.sim_state
        return Bursts(s["sync_cell"][sims].astype(np.int64), s["sync_ts"][sims],
                      s["sync_n"][sims].astype(np.int64), s["prev_sync_ts"][sims])

    def burst_talkers(self, sims: np.ndarray) -> np.ndarray:
        """Whether each SIM called, texted or heard from a SIM of its latest burst."""
        s = self.sim_state
        return (s["talk_bits"][sims] & s["sync_bits"][sims]) != 0

    def last_code(self, sims: np.ndarray) -> np.ndarray:
        """Event time of each SIM's newest SMS from a verification-code sender; 0 = none."""
        return self.sim_state["code_ts"][sims]

    def code_since_burst(self, sims: np.ndarray) -> np.ndarray:
        """Whether each SIM received a verification code since its latest burst."""
        s = self.sim_state
        return (s["code_ts"][sims] >= s["sync_ts"][sims]) & (s["sync_ts"][sims] > 0)

    def cell_names(self) -> list[str]:
        """Cell names by global cell id (do not modify). Ids are given in order; the list is
        rebuilt only when cells were added since the last call, not at every look-up (the
        rig rules name cells at every tick)."""
        if len(self._cell_names) != len(self.cells):
            self._cell_names = list(self.cells)
        return self._cell_names

    def network_contacts(self, sims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The SIMs of the network each of ``sims`` called, texted or heard from in the last
        24 h and that are held here, as pairs (index into ``sims``, slot of the other)."""
        s = self.sim_state
        recent = (s["mates"][sims] != 0) & (s["mate_hour"][sims] >= self.watermark // _HOUR - 23)
        row, col = np.nonzero(recent)
        other = self.sims.lookup(s["mates"][sims][row, col])
        held = other >= 0
        return row[held], other[held]

    def calls_out_24h(self, sims: np.ndarray) -> np.ndarray:
        """MO voice calls in each SIM's 24 h window."""
        self._refresh()
        return self.voice_out[sims].astype(np.int64)

    def callers_outside(self, sims: np.ndarray, group: np.ndarray) -> np.ndarray:
        """Per SIM, about how many numbers other than those of the ``group`` SIMs called it in
        its 24 h window (set bits of its callers' bitmap that no group number hashes to)."""
        s = self.sim_state
        heard = np.bitwise_or.reduce(s["slot"]["callers"][sims], axis=1)
        ours = np.bitwise_or.reduce(_bits(s["msisdn"][group], st.BITS_CALLERS).astype(np.uint32)) \
            if len(group) else np.uint32(0)
        return _popcount(heard & ~ours).astype(np.int64)

    def callees_outside(self, sims: np.ndarray, circle: np.ndarray) -> np.ndarray:
        """Per SIM, about how many numbers other than those of the ``circle`` SIMs it called or
        texted in its 24 h window: a linear count (Whang et al. 1990) over the bits of its
        callees' bitmap that no circle number hashes to (a number outside the circle falls on
        one of those as often as on any bit, so their share still empty gives the count)."""
        s = self.sim_state
        made = np.bitwise_or.reduce(s["slot"]["callees"][sims], axis=1)
        numbers = s["msisdn"][circle]
        ours = np.bitwise_or.reduce(_bits(numbers[numbers != 0], st.BITS_CALLEES)) \
            if (numbers != 0).any() else np.uint64(0)
        free = float(st.BITS_CALLEES - int(_popcount(np.asarray([ours], np.uint64))[0]))
        zeros = free - _popcount(made & ~ours).astype(np.float64)
        return -st.BITS_CALLEES * np.log(np.maximum(zeros, 1.0) / max(free, 1.0))

    def contacted(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether SIM ``a[i]`` called or texted SIM ``b[i]``'s number in its 24 h window (its
        callees' bitmap has that number's bit; now and then a yes is another number's)."""
        s = self.sim_state
        made = np.bitwise_or.reduce(s["slot"]["callees"][a], axis=1)
        return (made & _bits(s["msisdn"][b], st.BITS_CALLEES)) != 0

    def same_place(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Whether SIMs ``a[i]`` and ``b[i]`` had the same busiest cell in some hour of their
        24 h windows: together in one place at one time, not just in the same area."""
        s = self.sim_state
        la, lb = s["last_hour"][a].astype(np.int64), s["last_hour"][b].astype(np.int64)
        # slot k holds the same hour in both windows when that hour, in the window that ends
        # first (at m), is within the later one's: (m - k) mod 24 <= 23 - |la - lb|
        apart = np.abs(la - lb)
        near = apart < st.SLOTS
        out = np.zeros(len(a), bool)
        a, b, la, lb, apart = a[near], b[near], la[near], lb[near], apart[near]
        ca = s["slot"]["top_cell"][a]
        both = (ca == s["slot"]["top_cell"][b]) & (ca >= 0)
        aligned = (np.minimum(la, lb)[:, None] - np.arange(st.SLOTS)) % st.SLOTS <= (st.SLOTS - 1 - apart)[:, None]
        out[near] = (both & aligned).any(axis=1)
        return out

    @staticmethod
    def _advance(s: np.ndarray, owners: np.ndarray, new_last: np.ndarray,
                 n_slots: int = st.SLOTS) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Move each owner (unique) to its newest hour; returns the (record, slot) pairs of
        the hours it skipped, for the caller to clear, and whether the owner had an hour
        before (else its slots are still empty)."""
        old_last = s["last_hour"][owners].astype(np.int64)
        step = np.where(old_last < 0, n_slots, new_last - old_last)
        moving = step > 0
        rows = owners[moving]
        # slot j is cleared when it lies within the `step` hours after old_last
        offset = (np.arange(n_slots)[None, :] - (old_last[moving, None] + 1)) % n_slots
        r, c = np.nonzero(offset < np.minimum(step[moving], n_slots)[:, None])
        s["last_hour"][rows] = new_last[moving]
        return rows[r], c, old_last[moving][r] >= 0

    def _advance_sims(self, sims: np.ndarray, new_last: np.ndarray) -> None:
        rows, c, used = self._advance(self.sim_state, sims, new_last)
        slots = self.sim_state["slot"]
        cleared = slots["cnt"][rows[used], c[used]]
        self._add_per_sim(rows[used], -_slot_events(cleared), -cleared[:, st.VOICE_OUT].astype(np.int64))
        _void(slots)[rows, c] = _void(st.EMPTY_SIM_SLOT)

    def _add_per_sim(self, sims: np.ndarray, events: np.ndarray, voice_out: np.ndarray) -> None:
        """Add to the 24 h columns of ``sims``, which come grouped (each SIM's rows together,
        as the batch's sort leaves them): one sum per SIM instead of ``np.add.at``."""
        if not len(sims):
            return
        start = np.flatnonzero(np.r_[True, sims[1:] != sims[:-1]])
        usims = sims[start]
        self.events[usims] += np.add.reduceat(events, start).astype(self.events.dtype)
        self.voice_out[usims] += np.add.reduceat(voice_out, start).astype(self.voice_out.dtype)

    def _counters(self, slots: np.ndarray, b: CdrBatch, inv: np.ndarray, n_keys: int,
                  k_sim: np.ndarray, k_slot: np.ndarray) -> None:
        rt = b.record_type
        klass = _KLASS[rt, b.direction]
        width = st.N_COUNTERS + 1
        counts = np.bincount(inv * width + klass, minlength=n_keys * width)
        counts = counts.reshape(n_keys, width)[:, : st.N_COUNTERS]
        answered = (rt == RecordType.VOICE) & (b.direction == Direction.MO) & (b.result == Result.ANSWERED)
        counts[:, st.VOICE_OUT_ANSWERED] = np.bincount(inv, weights=answered, minlength=n_keys)
        old = slots["cnt"][k_sim, k_slot]
        cnt = np.minimum(old.astype(np.int64) + counts, 65535)
        slots["cnt"][k_sim, k_slot] = cnt
        self._add_per_sim(k_sim, _slot_events(cnt) - _slot_events(old),
                          cnt[:, st.VOICE_OUT] - old[:, st.VOICE_OUT])
        dur = np.where(answered, b.duration, 0).astype(np.float64)
        slots["dur_sum"][k_sim, k_slot] += np.bincount(inv, weights=dur, minlength=n_keys)
        slots["dur_sq"][k_sim, k_slot] += np.bincount(inv, weights=dur * dur, minlength=n_keys)

    def _global_cells(self, b: CdrBatch) -> np.ndarray:
        # A block's cell table is shared by every chunk cut from it: map it once.
        if self._cell_lut[0] is not b.cells:
            self._cell_lut = (b.cells, self.intern_cells(b.cells))
        return self._cell_lut[1][b.cell]

    def intern_cells(self, names: list[str]) -> np.ndarray:
        """The radio-cell ids of canonical cell ``names`` (a new name gets a cell id), and -1
        last, for an index of -1 (no cell): the look-up table of a batch's cell indices."""
        ids = np.array([self.cells.setdefault(c, len(self.cells)) for c in names], np.int64)
        return np.r_[self.radio_cells()[ids], -1]

    def radio_key(self, name: str) -> str:
        """What a cell name is compared by: the radio cell it names on any network
        (``shared_cells``, :func:`detector.ids.radio_cell`), or the name itself."""
        return radio_cell(name) if self.shared_cells else name

    def radio_cells(self) -> np.ndarray:
        """Per cell id, the id of its radio cell: the first id seen with its ``radio_key``.
        SIMs of several networks in one box camp on one shared cell under their own networks'
        ids; compared by radio cell they are in one place. Extended only for cells added
        since the last call (do not modify)."""
        names = self.cell_names()
        if len(self._radio) < len(names):
            new = [self._radio_first.setdefault(self.radio_key(n), i)
                   for i, n in enumerate(names[len(self._radio):], start=len(self._radio))]
            self._radio = np.r_[self._radio, np.array(new, np.int64)]
        return self._radio

    @staticmethod
    def _top_cells(slots: np.ndarray, inv: np.ndarray, cell: np.ndarray, new_key: np.ndarray,
                   k_sim: np.ndarray, k_slot: np.ndarray) -> None:
        """Keep each hour's most used cell (merged across batches: same cell adds up,
        a busier new cell replaces it). Records come sorted by (slot, cell)."""
        has = cell >= 0
        if not has.any():
            return
        inv, cell = inv[has], cell[has]
        start = _runs(inv, cell)
        key, c = inv[start], cell[start]
        n = np.diff(np.r_[start, len(inv)])
        order = _sort_order(n, key)             # per key, busiest last
        last = np.r_[key[order][1:] != key[order][:-1], True]
        key, c, n = key[order][last], c[order][last], n[order][last]
        rs, cs = k_sim[key], k_slot[key]
        cur, cur_n = slots["top_cell"][rs, cs], slots["top_n"][rs, cs].astype(np.int64)
        same = cur == c
        slots["top_n"][rs, cs] = np.minimum(np.where(same, cur_n + n, np.maximum(cur_n, n)), 65535)
        slots["top_cell"][rs, cs] = np.where(same | (n > cur_n), c, cur)

    def _gaps(self, s: np.ndarray, b: CdrBatch, sim: np.ndarray) -> None:
        """Decayed moments of the gaps between a SIM's successive MO calls. Each gap is
        weighted by its age at the SIM's newest call, so the result does not depend on
        how the calls were cut into batches."""
        calls = np.flatnonzero((b.record_type == RecordType.VOICE) & (b.direction == Direction.MO))
        if not len(calls):
            return
        csim, cts = sim[calls], b.ts[calls]
        order = _sort_order(cts - cts.min(), csim)
        csim, cts = csim[order], cts[order]
        first = np.r_[True, csim[1:] != csim[:-1]]
        prev = np.where(first, s["last_mo"][csim], np.r_[0, cts[:-1]])
        gap = (cts - prev).astype(np.float64)
        valid = (prev > 0) & (gap > 0) & (gap <= _GAP_CAP_S)
        usim, start = csim[first], np.flatnonzero(first)
        newest = np.maximum.reduceat(cts, start)
        newest = np.maximum(newest, s["last_mo"][usim])
        half_life = _GAP_HALF_LIFE_H * _HOUR
        age = newest[np.cumsum(first) - 1] - cts
        w = np.where(valid, 0.5 ** (age / half_life), 0.0)
        old_age = np.maximum(newest - s["last_mo"][usim], 0)
        decay = np.where(s["last_mo"][usim] > 0, 0.5 ** (old_age / half_life), 0.0)
        g = s["gap"][usim].astype(np.float64) * decay[:, None]
        g[:, 0] += np.add.reduceat(w, start)
        g[:, 1] += np.add.reduceat(w * gap, start)
        g[:, 2] += np.add.reduceat(w * gap * gap, start)
        s["gap"][usim] = g
        s["last_mo"][usim] = newest

    def _devices(self, b: CdrBatch, sim: np.ndarray, hour: np.ndarray) -> None:
        has = b.imei != 0
        if not has.any():
            return
        sim, imei, hour, imsi = sim[has], b.imei[has], hour[has], b.imsi[has]
        dev, added = self.imeis.lookup_or_add(imei)
        if added:
            self.imei_state = st.grow(self.imei_state, len(self.imeis), st.empty_imei_state)
            self.unsaved_imeis = _pad(self.unsaved_imeis, len(self.imei_state))
        self.unsaved_imeis[dev] = True
        self._device_sims(dev, hour, imsi)
        # SIM side: the most recent IMEI_SLOTS devices, each with the hour last seen
        order = _sort_order(dev, sim)
        ss, dd = sim[order], dev[order]
        start = _runs(ss, dd)
        phour = np.maximum.reduceat(hour[order], start)
        self._by_device.add(*self._remember(ss[start], imei[order][start], phour, "imei", "imei_hour"))

    def _device_sims(self, dev: np.ndarray, hour: np.ndarray, imsi: np.ndarray) -> None:
        """Device side: which SIMs each device carried, per hour."""
        d = self.imei_state
        slot = hour % st.SLOTS
        order = _sort_order(slot, dev)
        dev, slot = dev[order], slot[order]
        dev_start = _runs(dev)
        rows, c, _ = self._advance(d, dev[dev_start], np.maximum.reduceat(hour[order], dev_start))
        _void(d["slot"])[rows, c] = _void(st.EMPTY_IMEI_SLOT)
        start = _runs(dev, slot)
        d["slot"]["sims"][dev[start], slot[start]] |= np.bitwise_or.reduceat(
            _bits(imsi[order], st.BITS_CALLEES), start)

    def _remember(self, psim: np.ndarray, pkey: np.ndarray, phour: np.ndarray, keys: str,
                  hours: str) -> tuple[np.ndarray, np.ndarray]:
        """Per SIM, the most recent keys (devices, mates) with the hour each was last seen, in
        the fixed-size columns ``keys``/``hours`` of its record; (``psim``, ``pkey``) pairs
        are unique. Returns the (keys, SIMs) newly written (for the device index)."""
        s = self.sim_state
        table, seen = s[keys][psim], s[hours][psim]
        width = table.shape[1]
        match = table == pkey[:, None]
        known = match.any(axis=1)
        if known.any():
            r = np.flatnonzero(known)
            c = match[r].argmax(axis=1)
            s[hours][psim[r], c] = np.maximum(seen[r, c], phour[r])
        new = ~known
        if not new.any():
            return np.empty(0, np.int64), np.empty(0, np.int64)
        nsim, nkey, nhour = psim[new], pkey[new], phour[new]
        # per SIM, newest first (ties: lowest key first)
        order = _sort_order(nkey, nhour.max() - nhour, nsim)
        nsim, nkey, nhour = nsim[order], nkey[order], nhour[order]
        first = np.r_[True, nsim[1:] != nsim[:-1]]
        rank = np.arange(len(nsim)) - np.maximum.accumulate(np.where(first, np.arange(len(nsim)), 0))
        fits = rank < width
        nsim, nkey, nhour, rank = nsim[fits], nkey[fits], nhour[fits], rank[fits]
        oldest_first = np.argsort(s[hours][nsim], axis=1, kind="stable")
        col = oldest_first[np.arange(len(nsim)), rank]
        s[keys][nsim, col] = nkey
        s[hours][nsim, col] = nhour
        return nkey, nsim

    def restore_clock(self, watermark: int, observed_from: int | None = None) -> None:
        """The event-time clock of a checkpoint. Without the time watching began (a
        checkpoint from before it was kept, or one that does not keep it) the network counts
        as watched since long ago: a restart does not start the first-start wait again."""
        self.watermark = int(watermark)
        self.observed_from = int(observed_from if observed_from is not None
                                 else 1 if self.watermark else 0)

    def take_dirty(self) -> np.ndarray:
        """SIM slots touched since the last call, and forget them."""
        d = np.flatnonzero(self.dirty)
        self.dirty[d] = False
        return d

    # ---- features ----------------------------------------------------------------------

    def activity(self, sims: np.ndarray) -> np.ndarray:
        """Events in each SIM's 24 h window (cheap: no other feature is computed)."""
        return self.events[sims].astype(np.int64)

    def features(self, sims: np.ndarray) -> FeatureFrame:
        """Feature values of ``sims`` over the window that ends at each SIM's latest hour."""
        sims = np.asarray(sims)
        if len(sims) <= _FEATURE_CHUNK:
            return self._features(sims)
        # in chunks, so that the (n, 24) temporaries stay in the CPU cache
        parts = [self._features(sims[i:i + _FEATURE_CHUNK])
                 for i in range(0, len(sims), _FEATURE_CHUNK)]
        return FeatureFrame(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                               for f in fields(FeatureFrame)})

    def _features(self, sims: np.ndarray) -> FeatureFrame:
        s = _void(self.sim_state)[sims].view(st.SIM_STATE)
        rows = np.arange(len(s))
        slot = s["slot"]
        last = s["last_hour"].astype(np.int64)
        cur_slot = last % st.SLOTS
        cnt = slot["cnt"]                                     # (n, 24, 6) uint16
        tot = cnt.sum(axis=1, dtype=np.int64).astype(np.float64)    # (n, 6)
        cur = cnt[rows, cur_slot].astype(np.float64)
        # 1 h window: the current hour plus the part of the previous hour still inside it
        frac = 1.0 - (s["last_ts"] % _HOUR) / _HOUR
        voice_out_1h = cur[:, st.VOICE_OUT] + cnt[rows, (cur_slot - 1) % st.SLOTS, st.VOICE_OUT] * frac

        voice_out, voice_in = tot[:, st.VOICE_OUT], tot[:, st.VOICE_IN]
        sms_out, sms_in, data = tot[:, st.SMS_OUT], tot[:, st.SMS_IN], tot[:, st.DATA]
        answered = tot[:, st.VOICE_OUT_ANSWERED]
        events = voice_out + voice_in + sms_out + sms_in + data
        contacts = voice_out + sms_out

        callees_24 = np.bitwise_or.reduce(slot["callees"], axis=1)
        distinct_24 = np.minimum(linear_count(callees_24, st.BITS_CALLEES), contacts)
        distinct_1 = np.minimum(linear_count(slot["callees"][rows, cur_slot], st.BITS_CALLEES),
                                cur[:, st.VOICE_OUT] + cur[:, st.SMS_OUT])
        cells_24 = np.bitwise_or.reduce(slot["cells"], axis=1)
        distinct_cells = linear_count(cells_24, st.BITS_CELLS) * (cells_24 > 0)

        dominant = _dominant(slot["top_cell"], slot["top_n"])
        dominant_share = np.divide(dominant, events, out=np.zeros_like(events), where=events > 0)

        dur_sum, dur_sq = slot["dur_sum"].sum(axis=1), slot["dur_sq"].sum(axis=1)
        dur_mean = np.divide(dur_sum, answered, out=np.zeros_like(answered), where=answered > 0)
        dur_var = np.divide(dur_sq, answered, out=np.zeros_like(answered), where=answered > 0) - dur_mean**2
        dur_cv = np.divide(np.sqrt(np.maximum(dur_var, 0)), dur_mean, out=np.zeros_like(dur_mean),
                           where=(dur_mean > 0) & (answered > 1))
        g = s["gap"].astype(np.float64)
        g_mean = np.divide(g[:, 1], g[:, 0], out=np.zeros(len(g)), where=g[:, 0] > 0)
        g_var = np.divide(g[:, 2], g[:, 0], out=np.zeros(len(g)), where=g[:, 0] > 0) - g_mean**2
        # few gaps say nothing about regularity: report 1 (a Poisson-like caller) until 3 exist
        gap_cv = np.where(g[:, 0] >= 3, np.sqrt(np.maximum(g_var, 0)) /
                          np.maximum(g_mean, 1e-9), 1.0)

        night = _slot_events(cnt[:, self._night_slots]).sum(axis=1).astype(np.float64)
        night_share = np.divide(night, events, out=np.zeros_like(events), where=events > 0)

        recent = (s["imei"] != 0) & (s["imei_hour"] > last[:, None] - st.SLOTS)
        distinct_imeis = recent.sum(axis=1).astype(np.float64)
        sims_per_imei = self._sims_per_imei(s["imei"], recent)

        age = np.where(s["activated"] > 0, (s["last_ts"] - s["activated"]) / 86400.0, 3650.0)
        values = np.column_stack([
            voice_out_1h, voice_out, voice_in, voice_out / (voice_in + 1.0),
            distinct_1, distinct_24,
            np.divide(contacts - distinct_24, contacts, out=np.zeros_like(contacts), where=contacts > 0),
            sms_out, sms_in, data, distinct_cells, dominant_share, distinct_imeis, sims_per_imei,
            np.divide(answered, voice_out, out=np.ones_like(voice_out), where=voice_out > 0),
            dur_mean, dur_cv, gap_cv, night_share, np.clip(age, 0, 3650),
            s["id_cards"].astype(np.float64),
            np.where(s["sync_ts"] > s["last_ts"] - 24 * _HOUR, s["sync_n"], 0).astype(np.float64),
        ])
        return FeatureFrame(sims=sims, imsi=self.sims.keys_by_slot[sims],
                            msisdn=s["msisdn"], at=s["last_ts"], values=values, activity=events)

    def _sims_per_imei(self, imei: np.ndarray, recent: np.ndarray) -> np.ndarray:
        out = np.zeros(len(imei))
        if not recent.any():
            return out
        r, c = np.nonzero(recent)
        dev = self.imeis.lookup(imei[r, c])
        ok = dev >= 0
        bitmap = np.bitwise_or.reduce(self.imei_state["slot"]["sims"][dev[ok]], axis=1)
        est = linear_count(bitmap, st.BITS_CALLEES)
        np.maximum.at(out, r[ok], np.round(est))
        return out

    # ---- across engines: what a scale-out's worker and rig stage move between them --------
    # A worker's engine holds one partition's SIMs; the rig stage's holds the SIMs the
    # workers summarise. The records travel whole, with their cells as names.

    def sims_of_numbers(self, numbers: np.ndarray) -> np.ndarray:
        """The slot of the SIM held here that has each number now; -1 for other numbers."""
        return self._sims_of_numbers(np.asarray(numbers, np.int64))

    def contacts_elsewhere(self, batch: CdrBatch) -> Contacts:
        """The contacts (calls, SMS) of ``batch``, applied, whose peer is no SIM held here
        (a scale-out worker's: a SIM of another partition, or no SIM of the network): one
        per SIM and peer, at its newest hour, with the SIM's number."""
        rows = np.flatnonzero(_is_contact(batch))
        rows = rows[self._sims_of_numbers(batch.peer[rows]) < 0]
        if not len(rows):
            return Contacts.none()
        sim = self.sims.lookup(batch.imsi[rows])
        ok = sim >= 0
        rows, sim = rows[ok], sim[ok]
        peer, hour = batch.peer[rows], batch.ts[rows] // _HOUR
        order = np.lexsort((-hour, peer, sim))
        sim, peer, hour = sim[order], peer[order], hour[order]
        first = np.r_[True, (sim[1:] != sim[:-1]) | (peer[1:] != peer[:-1])] if len(sim) else np.zeros(0, bool)
        sim, peer, hour = sim[first], peer[first], hour[first]
        return Contacts(self.sims.keys_by_slot[sim], self.sim_state["msisdn"][sim], peer, hour)

    @staticmethod
    def device_uses(batch: CdrBatch) -> DeviceUses:
        """The (device, SIM, hour) of the records of ``batch`` that name a device, each once:
        what :meth:`apply` adds to the devices' SIM bitmaps (a scale-out worker sends them
        to the rig stage, where a device's SIMs of every partition meet)."""
        has = batch.imei != 0
        if not has.any():
            return DeviceUses.none()
        return DeviceUses.none().merged(DeviceUses(batch.imei[has], batch.imsi[has], batch.ts[has] // _HOUR))

    def note_device_uses(self, uses: DeviceUses) -> np.ndarray:
        """Add SIMs seen in devices elsewhere (other engines' :meth:`device_uses`) to the
        devices' SIM bitmaps, as :meth:`apply` adds its records'; returns the device slots
        changed. The SIMs' own device tables are their records' and stay as they are."""
        if not len(uses):
            return np.empty(0, np.int64)
        dev, added = self.imeis.lookup_or_add(np.asarray(uses.imei, np.int64))
        if added:
            self.imei_state = st.grow(self.imei_state, len(self.imeis), st.empty_imei_state)
            self.unsaved_imeis = _pad(self.unsaved_imeis, len(self.imei_state))
        self.unsaved_imeis[dev] = True
        self._device_sims(dev, np.asarray(uses.hour, np.int64), np.asarray(uses.imsi, np.int64))
        return np.unique(dev)

    def sims_per_imei(self, sims: np.ndarray) -> np.ndarray:
        """The ``sims_per_imei_24h`` feature of ``sims`` from the device bitmaps held here
        (a rig stage's hold every partition's SIMs; a worker's only its own)."""
        s = self.sim_state[np.asarray(sims, np.int64)]
        recent = (s["imei"] != 0) & (s["imei_hour"] > s["last_hour"].astype(np.int64)[:, None] - st.SLOTS)
        return self._sims_per_imei(s["imei"], recent)

    def note_contacts(self, a: np.ndarray, b: np.ndarray, hours: np.ndarray) -> np.ndarray:
        """Remember contacts between SIMs held here that reached this engine other than as
        records (a rig stage joins the contacts between SIMs of different partitions): each
        SIM ``a[i]`` keeps ``b[i]`` among its ``mates``, the newest :data:`st.MATES` of all
        (ties: lowest IMSI), as :meth:`apply` would have (which notes both ends: pass both
        ways for that); returns the SIMs whose records changed."""
        a, b, hours = (np.asarray(x, np.int64) for x in (a, b, hours))
        keep = a != b
        a, b, hours = a[keep], b[keep], hours[keep]
        if not len(a):
            return np.empty(0, np.int64)
        s, imsi = self.sim_state, self.sims.keys_by_slot
        touched = np.unique(a)
        held, held_hour = s["mates"][touched], s["mate_hour"][touched]
        r, c = np.nonzero(held != 0)
        owner = np.r_[touched[r], a]
        mate = np.r_[held[r, c], imsi[b]]
        hour = np.r_[held_hour[r, c].astype(np.int64), hours]
        order = np.lexsort((-hour, mate, owner))              # per (owner, mate): newest first
        owner, mate, hour = owner[order], mate[order], hour[order]
        first = np.r_[True, (owner[1:] != owner[:-1]) | (mate[1:] != mate[:-1])]
        owner, mate, hour = owner[first], mate[first], hour[first]
        order = np.lexsort((mate, -hour, owner))              # per owner: newest first
        owner, mate, hour = owner[order], mate[order], hour[order]
        start = np.r_[True, owner[1:] != owner[:-1]]
        rank = np.arange(len(owner)) - np.maximum.accumulate(np.where(start, np.arange(len(owner)), 0))
        fits = rank < st.MATES
        s["mates"][touched] = 0
        s["mate_hour"][touched] = -1
        s["mates"][owner[fits], rank[fits]] = mate[fits]
        s["mate_hour"][owner[fits], rank[fits]] = hour[fits]
        self.unsaved[touched] = True
        return touched

    def hold_numbers(self, imsi: np.ndarray, msisdn: np.ndarray) -> np.ndarray:
        """Hold SIMs known only by their number (no record of their own yet: a rig stage's
        partners of the SIMs it holds), so that they count as SIMs of the network; SIMs
        held already are left as they are. Returns the slots of the SIMs added."""
        imsi, msisdn = np.asarray(imsi, np.int64), np.asarray(msisdn, np.int64)
        new = self.sims.lookup(imsi) < 0
        if not new.any():
            return np.empty(0, np.int64)
        imsi, first = np.unique(imsi[new], return_index=True)
        slots, _ = self._sim_slots(imsi, external=False)
        self.sim_state["msisdn"][slots] = msisdn[new][first]
        self._index_numbers(slots)
        self.unsaved[slots] = True
        return slots

    def portable_records(self, sims: np.ndarray) -> tuple[np.ndarray, list[str]]:
        """The records of ``sims`` as bytes for another engine (:meth:`take_records`), with
        their cells (hourly top cells, the power-on burst's cell, the last cells it moved
        through) as indices into the cell names returned: cell ids are each engine's own."""
        records = self.sim_state[np.asarray(sims, np.int64)].copy()
        top, sync, path = records["slot"]["top_cell"], records["sync_cell"], records["path_cell"]
        synced = _has_sync_cell(records)
        used = np.unique(np.r_[top[top >= 0], sync[synced], path[path >= 0]])
        records["slot"]["top_cell"] = np.where(top >= 0, np.searchsorted(used, top), -1)
        records["sync_cell"] = np.where(synced, np.searchsorted(used, sync), sync)
        records["path_cell"] = np.where(path >= 0, np.searchsorted(used, path), -1)
        names = self.cell_names()
        return records.view(np.uint8).ravel().copy(), [names[i] for i in used]

    @staticmethod
    def portable_problem(data: np.ndarray, n: int, n_cells: int) -> str | None:
        """Why ``data`` is not ``n`` records of :meth:`portable_records` with a table of
        ``n_cells`` cells, or None."""
        if len(data) != n * st.SIM_STATE.itemsize:
            return f"{len(data)} bytes of records for {n} SIMs of {st.SIM_STATE.itemsize} bytes"
        records = np.frombuffer(np.ascontiguousarray(data, np.uint8).tobytes(), st.SIM_STATE)
        top = records["slot"]["top_cell"]
        if len(top) and (top.min() < -1 or top.max() >= n_cells):
            return f"a top_cell index outside its table of {n_cells} cells"
        sync = records["sync_cell"][records["sync_ts"] > 0]
        if len(sync) and (sync.min() < -1 or sync.max() >= n_cells):
            return f"a sync_cell index outside its table of {n_cells} cells"
        path = records["path_cell"]
        if path.size and (path.min() < -1 or path.max() >= n_cells):
            return f"a path_cell index outside its table of {n_cells} cells"
        return None

    def take_records(self, imsi: np.ndarray, data: np.ndarray, cells: list[str]) -> np.ndarray:
        """Hold the records ``data`` of another engine's :meth:`portable_records` for SIMs
        ``imsi`` (replacing those held), their cells renamed into this engine's table;
        returns their slots."""
        records = np.frombuffer(np.ascontiguousarray(data, np.uint8).tobytes(), st.SIM_STATE).copy()
        lut = self.intern_cells(cells)
        top = records["slot"]["top_cell"]
        records["slot"]["top_cell"] = lut[np.where(top >= 0, top, len(lut) - 1)]
        path = records["path_cell"]
        records["path_cell"] = lut[np.where(path >= 0, path, len(lut) - 1)]
        synced = _has_sync_cell(records)   # an unset one stays as the engine leaves it
        records["sync_cell"] = np.where(synced, lut[np.where(synced, records["sync_cell"], 0)],
                                        records["sync_cell"])
        slots, _ = self._sim_slots(np.asarray(imsi, np.int64))   # indexed when next asked
        self.sim_state[slots] = records
        self._index_numbers(slots)
        self.unsaved[slots] = True
        return slots

    # ---- checkpoints -------------------------------------------------------------------

    def take_unsaved(self) -> tuple[np.ndarray, np.ndarray]:
        """(SIM slots, IMEI slots) changed since the last call, and forget them."""
        sims, imeis = np.flatnonzero(self.unsaved), np.flatnonzero(self.unsaved_imeis)
        self.unsaved[sims] = False
        self.unsaved_imeis[imeis] = False
        return sims, imeis

    def mark_unsaved(self, sims: np.ndarray, imeis: np.ndarray) -> None:
        """Undo :meth:`take_unsaved` after a checkpoint that did not commit."""
        self.unsaved[sims] = True
        self.unsaved_imeis[imeis] = True

    def export_sims(self, slots: np.ndarray) -> tuple[list[int], list[bytes]]:
        return _export(self.sims, self.sim_state, slots)

    def export_imeis(self, slots: np.ndarray) -> tuple[list[int], list[bytes]]:
        return _export(self.imeis, self.imei_state, slots)

    def import_state(self, sim_keys: list[int], sim_blobs: list[bytes], imei_keys: list[int],
                     imei_blobs: list[bytes]) -> None:
        """Load checkpointed records (into an engine that has not seen them)."""
        if sim_keys:
            slots, _ = self._sim_slots(np.array(sim_keys, np.int64), external=False)
            self.sim_state[slots] = np.frombuffer(b"".join(sim_blobs), st.SIM_STATE)
            self._index(slots)
            self._index_numbers(slots)
        if imei_keys:
            slots, _ = self.imeis.lookup_or_add(np.array(imei_keys, np.int64))
            self.imei_state = st.grow(self.imei_state, len(self.imeis), st.empty_imei_state)
            self.unsaved_imeis = _pad(self.unsaved_imeis, len(self.imei_state))
            self.imei_state[slots] = np.frombuffer(b"".join(imei_blobs), st.IMEI_STATE)

    # ---- size ----------------------------------------------------------------------------

    def state_bytes(self) -> dict[str, float]:
        """Bytes of the feature state, indexes and columns beside the records included."""
        n_sims, n_imeis = len(self.sims), len(self.imeis)
        per_sim_columns = self.events.itemsize + self.voice_out.itemsize + self._cell_of.itemsize
        indexes = self.sims.nbytes + self.numbers.nbytes + len(self.numbers) * self._number_sim.itemsize + \
            self._by_device.nbytes + self._by_burst.nbytes + self._by_cell.nbytes + self._by_step.nbytes
        parts = {"sim_records": n_sims * st.SIM_STATE.itemsize, "sim_columns": n_sims * per_sim_columns,
                 "indexes": indexes, "devices": n_imeis * st.IMEI_STATE.itemsize + self.imeis.nbytes}
        total = sum(parts.values())
        return {"sims": n_sims, "imeis": n_imeis, "bytes": total,
                "bytes_per_sim": total / n_sims if n_sims else 0.0,
                "sim_record_bytes": st.SIM_STATE.itemsize,
                "parts_per_sim": {k: round(v / n_sims, 1) if n_sims else 0.0 for k, v in parts.items()}}


def _step_key(cell: np.ndarray, at: np.ndarray) -> np.ndarray:
    """(cell, time entered) of a step as one sortable int64 (times fit 32 bits: see
    :data:`detector.features.state.SIM_STATE`)."""
    return np.asarray(cell, np.int64) << 32 | np.asarray(at, np.int64)


def _is_contact(b: CdrBatch) -> np.ndarray:
    """Which records are contacts with another number: calls and SMS either way."""
    return (b.record_type != RecordType.DATA) & (b.record_type < RecordType.SIGNAL) & (b.peer != 0)


def _has_sync_cell(records: np.ndarray) -> np.ndarray:
    """Which SIM records name a power-on burst's cell (unset: no burst yet, or no cell)."""
    return (records["sync_ts"] > 0) & (records["sync_cell"] >= 0)


def _burst_key(records: np.ndarray) -> np.ndarray:
    """(cell, time) of each SIM record's latest burst as one sortable int64."""
    return records["sync_cell"].astype(np.int64) << 32 | records["sync_ts"]


def _rows(a: np.ndarray) -> np.ndarray:
    """Each row of a 2-D int64 array as one opaque value (for ``np.isin`` on rows)."""
    return np.ascontiguousarray(a).view(np.dtype((np.void, a.dtype.itemsize * a.shape[1]))).ravel()


def _pad(a: np.ndarray, n: int) -> np.ndarray:
    return np.concatenate([a, np.zeros(n - len(a), a.dtype)]) if n > len(a) else a


def _void(a: np.ndarray) -> np.ndarray:
    """Records as opaque bytes: copying them skips numpy's field-by-field structured copy."""
    return a.view(np.dtype((np.void, a.dtype.itemsize)))


def _slot_events(cnt: np.ndarray) -> np.ndarray:
    """Events in each row of slot counters (..., N_COUNTERS)."""
    return cnt.sum(axis=-1, dtype=np.int64) - cnt[..., st.VOICE_OUT_ANSWERED]


def _export(index: st.KeyIndex, state: np.ndarray, slots: np.ndarray) -> tuple[list[int], list[bytes]]:
    raw = state[slots].tobytes()
    size = state.dtype.itemsize
    return index.keys_by_slot[slots].tolist(), [raw[i:i + size] for i in range(0, len(raw), size)]


def _dominant(top: np.ndarray, top_n: np.ndarray) -> np.ndarray:
    """Per row, the largest total of ``top_n`` over slots that share a ``top`` cell."""
    # Sort each row by cell (count in the low bits), then total each run of one cell as a
    # difference of running sums at the run's end.
    packed = np.sort((top.astype(np.int64) << 16) | top_n, axis=1)
    cells, counts = packed >> 16, packed & 0xFFFF
    total = counts.cumsum(axis=1)
    run_end = np.ones(cells.shape, bool)
    run_end[:, :-1] = cells[:, 1:] != cells[:, :-1]
    before = np.zeros_like(total)
    before[:, 1:] = np.maximum.accumulate(np.where(run_end, total, 0), axis=1)[:, :-1]
    runs = np.where(run_end & (cells >= 0), total - before, 0)
    return runs.max(axis=1, initial=0).astype(np.float64)
