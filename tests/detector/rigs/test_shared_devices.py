"""Shared devices: SIMs in a device of a flagged SIM, now or earlier in the day."""

from detector.testing import START, cdr_batch as calls, gateway_rows, imei, imsi
from tests.detector.rigs.cases import HOUR, run


def test_a_sim_in_a_device_of_a_sim_flagged_earlier_joins_its_rig(pipe):
    """A gateway's ports take new SIMs a day after its first were flagged: a new SIM with one
    kind of evidence (SMS in) in one of those devices is a rig member; the same SIM behaviour
    in a phone of its own is not flagged."""
    gateway = [int(imsi(400 + i)) for i in range(4)]
    ports = [int(imei(400 + p, tac="86000003")) for p in range(4)]
    first = run(pipe, calls(gateway_rows(gateway, ports, "460-00-400-1")))
    assert set(first) == {str(s) for s in gateway}
    newcomer, control = int(imsi(410)), int(imsi(411))
    rows = []
    for sim, dev in ((newcomer, ports[0]), (control, int(imei(411, tac="35209900")))):
        for k in range(40):      # SMS from a bank's number through the next day
            rows.append((START + 30 * HOUR + k * 600, sim, dev, "460-00-400-1", 95588, 1, 1, 4, 0))
    later = run(pipe, calls(rows))
    assert set(later) == {str(newcomer)}
    assert later[str(newcomer)].kind == "rig_member"
    assert later[str(newcomer)].reasons[0] == "shares a device (IMEI) with a flagged SIM"
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(s) for s in gateway + [newcomer]}


def test_a_sim_that_left_a_port_before_the_port_was_flagged_joins_its_rig(pipe):
    """A SIM bank rotates SIMs through a gateway's port: the port's first SIM worked an hour,
    too briefly to be flagged, and went quiet; when the port's next SIM is flagged, the first
    is found through the device. A SIM as busy in another device stays unflagged."""
    port, other_dev = int(imei(920, tac="86000005")), int(imei(921, tac="86000005"))
    first, nxt, control = int(imsi(920)), int(imsi(921)), int(imsi(922))
    early = gateway_rows([first], [port], "460-00-580-1", hours=1) + \
        gateway_rows([control], [other_dev], "460-00-580-2", hours=1, victim0=8613700000000)
    assert not run(pipe, calls(early))
    later = 2 * HOUR
    flags = run(pipe, calls([(t + later, *rest) for t, *rest in
                             gateway_rows([nxt], [port], "460-00-580-1", hours=3, victim0=8613710000000)]))
    assert set(flags) == {str(nxt), str(first)}
    assert flags[str(first)].kind == "rig_member"
    assert flags[str(first)].reasons[0] == "shares a device (IMEI) with a flagged SIM"
    assert flags[str(first)].flagged_at >= flags[str(nxt)].flagged_at   # when the link was seen
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(first), str(nxt)}


def test_a_sim_that_appears_in_a_port_of_a_rig_joins_it_at_its_first_record(pipe):
    """A gateway's next card joins its rig at the first tick after its first call, with no
    traffic to judge; one call from a phone of its own flags nothing."""
    gateway = [int(imsi(430 + i)) for i in range(4)]
    ports = [int(imei(430 + p, tac="86000003")) for p in range(4)]
    run(pipe, calls(gateway_rows(gateway, ports, "460-00-430-1")))
    [rig] = pipe.rigs.rigs()
    newcomer, control = int(imsi(440)), int(imsi(441))
    t = START + 30 * HOUR
    rows = [(t, newcomer, ports[2], "460-00-430-1", 8613900000001, 0, 0, 1, 40),
            (t + 5, control, int(imei(441, tac="35209900")), "460-00-430-1", 8613900000002, 0, 0, 1, 40)]
    joined = run(pipe, calls(rows))
    assert set(joined) == {str(newcomer)}
    flag = joined[str(newcomer)]
    assert flag.kind == "rig_member" and flag.flagged_at == t
    assert flag.reasons[0] == "shares a device (IMEI) with a flagged SIM"
    assert flag.rig_id == rig.id
    assert pipe.rigs.rigs()[0].sims == {str(s) for s in gateway + [newcomer]}


def test_one_record_in_the_phone_of_a_lone_suspect_is_not_enough(pipe):
    """A device of one flagged SIM that no other flagged SIM shares is not a rig's: a SIM
    appearing there still needs traffic and evidence of its own."""
    lone, phone = int(imsi(450)), int(imei(450, tac="86000003"))
    flags = run(pipe, calls(gateway_rows([lone], [phone], "460-00-450-1")))
    assert set(flags) == {str(lone)} and pipe.rigs.rigs() == []
    newcomer = int(imsi(451))
    t = START + 30 * HOUR
    assert run(pipe, calls([(t, newcomer, phone, "460-00-450-1", 8613900000003, 0, 0, 1, 40)])) == {}


def test_a_phone_whose_imei_one_rig_sim_copied_is_no_port(pipe):
    """A box that copies a real phone's IMEI onto one of its SIMs: the phone's owner, one
    call in that device, is no rig member (a rig's port is a device two of its SIMs used)."""
    gateway = [int(imsi(460 + i)) for i in range(4)]
    ports = [int(imei(460 + p, tac="86000003")) for p in range(4)]
    phone = int(imei(469, tac="35209900"))
    rows = gateway_rows(gateway, ports, "460-00-460-1")
    t0 = rows[0][0]
    rows.append((t0 + 60, gateway[0], phone, "460-00-460-1", 8613900000009, 0, 0, 1, 40))
    run(pipe, calls(sorted(rows)))
    assert len(pipe.rigs.rigs()) == 1
    owner = int(imsi(470))
    t = START + 30 * HOUR
    assert run(pipe, calls([(t, owner, phone, "460-00-461-1", 8613900000010, 0, 0, 1, 40)])) == {}
