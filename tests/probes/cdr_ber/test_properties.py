"""Properties of the reader on arbitrary input: it never stops on bad bytes, and every
quarantined chunk says where it was and why."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.records import Rejected
from probes.cdr_ber import iter_decoded, samples, schema
from probes.cdr_ber.mapping import BerCdr

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
RECORDS = [schema.encode(b()) for b in (samples.mo_call, samples.mt_sms, samples.pgw)]
HEADERED = samples.cdr_file(RECORDS)
# octets below 0x80 other than 0x00 are universal or application tags: never a record's start
NOT_A_RECORD = st.binary(min_size=1, max_size=40).map(
    lambda b: bytes((x % 0x7F) + 1 for x in b))


def check_positions(items, data):
    last = -1
    for item in items:
        where = item.line if isinstance(item, Rejected) else item.offset
        assert 0 <= where < len(data)
        assert where > last                 # in file order, each place once
        last = where
        if isinstance(item, Rejected):
            assert item.reason and item.source == "p.ber"
            assert item.raw and len(item.raw) <= 2 * 32 + 20


@SETTINGS
@given(st.binary(max_size=600))
def test_arbitrary_bytes_never_crash(data):
    check_positions(list(iter_decoded(data, "p.ber")), data)


@SETTINGS
@given(st.binary(max_size=300), st.integers(0, len(HEADERED)))
def test_damaged_32297_files_never_crash(noise, at):
    data = HEADERED[:at] + noise + HEADERED[at:]
    check_positions(list(iter_decoded(data, "p.ber")), data)


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(range(len(RECORDS))),
                          st.one_of(st.just(b""), NOT_A_RECORD)), min_size=1, max_size=6))
def test_garbage_between_records_is_one_rejection_at_its_offset(plan):
    data, expect_records, expect_rejects, pos = b"", [], [], 0
    for index, garbage in plan:
        if garbage:
            expect_rejects.append(pos)
            data += garbage
            pos += len(garbage)
        expect_records.append(pos)
        data += RECORDS[index]
        pos += len(RECORDS[index])
    items = list(iter_decoded(data, "p.ber"))
    check_positions(items, data)
    assert [i.offset for i in items if isinstance(i, BerCdr)] == expect_records
    rejected = [i for i in items if isinstance(i, Rejected)]
    assert [r.line for r in rejected] == expect_rejects
    assert all("octets that are not a record" in r.reason for r in rejected)


@SETTINGS
@given(st.integers(1, sum(map(len, RECORDS)) - 1))
def test_a_cut_keeps_every_whole_record_before_it(cut):
    data = b"".join(RECORDS)[:cut]
    items = list(iter_decoded(data, "p.ber"))
    check_positions(items, data)
    whole, pos = [], 0
    for r in RECORDS:
        if pos + len(r) <= cut:
            whole.append(pos)
        pos += len(r)
    assert [i.offset for i in items if isinstance(i, BerCdr)] == whole
    if cut not in (sum(map(len, RECORDS[:k])) for k in range(len(RECORDS) + 1)):
        assert isinstance(items[-1], Rejected)
