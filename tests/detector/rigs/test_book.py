"""The rig book: rigs from flagged SIMs, their ids, what the store is to save."""

from detector.rigs.book import rig_id_for
from detector.testing import START, cdr_batch as calls, gateway_rows, imei, imsi
from tests.detector.rigs.cases import HOUR, power_on, run


def test_sims_rotating_over_shared_ports_form_one_rig(pipe):
    sims = [int(imsi(100 + i)) for i in range(8)]
    ports = [int(imei(900 + p, tac="86000001")) for p in range(4)]
    flags = run(pipe, calls(gateway_rows(sims, ports, "460-00-200-7")))
    assert set(flags) == {str(s) for s in sims}
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in sims} and rig.devices == {str(p) for p in ports}
    assert {f.rig_id for f in flags.values()} == {rig.id}
    assert "rotate over 4 shared devices" in rig.summary()
    assert rig.cells == {"460-00-200-7"}


def test_a_rig_still_at_work_is_to_be_saved_again_without_a_new_flag(pipe):
    """The store's row of a rig shows its active window: once saved, a rig is not saved
    again until it changes, and its members' later records change it."""
    sims = [int(imsi(130 + i)) for i in range(4)]
    ports = [int(imei(930 + p, tac="86000001")) for p in range(2)]
    run(pipe, calls(gateway_rows(sims, ports, "460-00-200-8", hours=3)))
    [rig] = pipe.rigs.unsaved_rigs()
    pipe.rigs.saved([rig])
    assert pipe.rigs.unsaved_rigs() == []
    later = [(t + 4 * HOUR, *rest) for t, *rest in gateway_rows(sims, ports, "460-00-200-8", hours=1)]
    assert run(pipe, calls(later)) == {}
    [again] = pipe.rigs.unsaved_rigs()
    assert again.id == rig.id and again.last > rig.last


def test_rig_ids_do_not_show_the_imsi():
    rid = rig_id_for("460001234567890")
    assert rid.startswith("rig-") and "460001234567890" not in rid and len(rid) == 14


def test_restored_rigs_keep_their_ids_and_lone_sims_can_still_join(pipe):
    from detector.flags import Flag
    a, b, lone = "460000000000501", "460000000000502", "460000000000503"
    rid = rig_id_for(b)   # the rig was founded by b
    book = pipe.rigs
    book.restore([Flag(a, "1", 0.7, 200, (), rig_id=rid), Flag(b, "2", 0.7, 100, (), rig_id=rid),
                  Flag(lone, "3", 0.7, 300, ())])
    assert book.rig_of(a) == book.rig_of(b) == rid
    assert book.rig_of(lone) == ""
    book._union(lone, a)   # a later link (shared device, hot cell, registration)
    assert book.rig_of(lone) == rid   # the older rig keeps its id


def test_sims_flagged_for_their_traffic_that_powered_on_together_are_a_rig_that_says_so(pipe):
    """Two SIMs, each in a device of its own, flagged for their traffic; they powered on
    together in one cell, which is what makes them one rig, and its summary says so."""
    sims = [int(imsi(680 + i)) for i in range(2)]
    devs = [int(imei(680 + i, tac="86000001")) for i in range(2)]
    rows = power_on(sims, devs, START - 120, "460-00-530-7")
    for k, (s, d) in enumerate(zip(sims, devs)):
        rows += gateway_rows([s], [d], "460-00-530-7", victim0=8613500000000 + 100000 * k)
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(s) for s in sims}
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in sims}
    assert "SIMs power on together in cell 460-00-530-7" in rig.summary()


def test_a_checkpoint_builds_only_the_rigs_whose_sims_changed(pipe):
    """A checkpoint's pass over the rigs follows what changed: a rig none of whose SIMs had a
    record, a flag or new evidence since the last checkpoint is not even built."""
    book = pipe.rigs
    gangs = {cell: ([int(imsi(k + i)) for i in range(4)], [int(imei(k + p, tac="86000001")) for p in range(2)])
             for cell, k in (("460-00-200-11", 140), ("460-00-200-12", 160))}
    rows = [row for cell, (sims, ports) in gangs.items() for row in gateway_rows(sims, ports, cell, hours=3)]
    run(pipe, calls(sorted(rows)))
    first = book.unsaved_rigs()
    assert len(first) == 2
    book.saved(first)
    assert book.unsaved_rigs() == []          # as the store has them now
    built = []
    whole = book._built
    book._built = lambda roots: built.append(sorted(roots)) or whole(roots)
    sims, ports = gangs["460-00-200-11"]
    later = [(t + 4 * HOUR, *rest) for t, *rest in gateway_rows(sims, ports, "460-00-200-11", hours=1)]
    run(pipe, calls(later))
    [again] = book.unsaved_rigs()
    assert again.sims == {str(s) for s in sims}
    assert [len(roots) for roots in built] == [1]           # the other rig was not looked at
    book.saved([again])
    assert book.unsaved_rigs() == [] and [len(roots) for roots in built] == [1, 1]


def test_what_the_checkpoints_saved_is_every_rig_as_it_is(pipe):
    """Saving only the unsaved rigs at every checkpoint leaves the store holding every rig
    as the book has it, whatever arrives between checkpoints."""
    book, stored = pipe.rigs, {}
    rows = []
    for k, cell in enumerate(("460-00-200-21", "460-00-200-22", "460-00-200-23")):
        sims = [int(imsi(200 + 10 * k + i)) for i in range(3 + k)]
        ports = [int(imei(200 + 10 * k + p, tac="86000001")) for p in range(2)]
        rows += [(t + k * 2 * HOUR, *rest) for t, *rest in gateway_rows(sims, ports, cell, hours=4)]
    rows.sort()
    for i in range(0, len(rows), max(1, len(rows) // 9)):
        run(pipe, calls(rows[i:i + max(1, len(rows) // 9)]))
        changed = book.unsaved_rigs()
        stored.update((r.id, r.summary()) for r in changed)
        book.saved(changed)
    assert stored == {r.id: r.summary() for r in book.rigs()} and len(stored) == 3
