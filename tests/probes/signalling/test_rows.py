"""Row.firsts (a mapper's fields picked in one step) agrees with Row.first, field by field."""

from hypothesis import given, strategies as st

from probes.signalling.tshark import AGGREGATOR, SEPARATOR, FieldIndex, Row, parse_fields_output

names = st.text(alphabet="abcdefgh._", min_size=1, max_size=6)
# Values as TShark prints them: anything but the separators, occurrences joined by US.
occurrence = st.text(st.characters(blacklist_characters=SEPARATOR + AGGREGATOR + "\r\n"),
                     max_size=8)
value = st.lists(occurrence, max_size=3).map(AGGREGATOR.join)


@given(st.lists(names, min_size=1, max_size=8, unique=True).flatmap(
    lambda fields: st.tuples(st.just(fields), st.lists(value, min_size=len(fields),
                                                       max_size=len(fields)))),
       st.lists(names, min_size=1, max_size=6))
def test_firsts_is_first_of_each_name(fields_and_values, asked):
    fields, values = fields_and_values
    asked = tuple(asked) + tuple(fields[:2])        # names the run lacks, and names it has
    row = Row(values, FieldIndex(fields))
    assert row.firsts(asked) == [row.first(n) for n in asked]
    plain = Row(row.columns, dict(row.index))       # an index that is a plain dict
    assert plain.firsts(asked) == row.firsts(asked)


def test_firsts_takes_the_first_occurrence_and_none_for_empty_or_unknown():
    fields = ["a", "b", "c"]
    (row,) = parse_fields_output(SEPARATOR.join(["1" + AGGREGATOR + "2", "", "x"]), fields)
    assert row.firsts(("a", "b", "c", "zz")) == ["1", None, "x", None]
    assert row.firsts(("c",)) == ["x"]                # one name: still a list
