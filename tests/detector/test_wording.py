"""Counts in words: singular for one, plural otherwise, never '(s)'."""

from hypothesis import given
from hypothesis import strategies as st

from detector.wording import IRREGULAR, counted, plural


def test_one_takes_the_singular_and_other_counts_the_plural():
    assert counted(1, "cell") == "1 cell"
    assert counted(0, "cell") == "0 cells"
    assert counted(2, "entry") == "2 entries"
    assert counted(3, "SMS") == "3 SMS"
    assert counted(5, "person", "people") == "5 people"
    assert plural("file") == "files"


@given(st.integers(min_value=-10**6, max_value=10**9),
       st.sampled_from(["cell", "device", "SIM", "file", *IRREGULAR]))
def test_a_count_always_leads_and_agrees(n, noun):
    text = counted(n, noun)
    number, word = text.split(" ", 1)
    assert int(number) == n and "(s)" not in text
    assert word == (noun if n == 1 else plural(noun))
