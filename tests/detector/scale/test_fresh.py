"""Which fetched messages a worker applies: each stream sequence above its checkpoint once,
in stream order, whatever a fetch holds."""

from types import SimpleNamespace

from hypothesis import given, strategies as st

from detector.scale.worker import fresh_messages


def _msg(seq: int):
    return SimpleNamespace(metadata=SimpleNamespace(sequence=SimpleNamespace(stream=seq)), data=b"")


def test_a_message_delivered_twice_in_one_fetch_is_applied_once():
    """An original delivery left from a fetch that timed out and its redelivery after
    ack_wait, in one fetch, behind newer messages."""
    msgs = [_msg(s) for s in (7, 8, 5, 6, 5, 6, 9)]
    assert [m.metadata.sequence.stream for m in fresh_messages(msgs, 4)] == [5, 6, 7, 8, 9]


@given(st.lists(st.integers(1, 50), max_size=40), st.integers(0, 50))
def test_fresh_messages_are_the_new_sequences_once_in_order(seqs, last):
    got = [m.metadata.sequence.stream for m in fresh_messages([_msg(s) for s in seqs], last)]
    assert got == sorted({s for s in seqs if s > last})
