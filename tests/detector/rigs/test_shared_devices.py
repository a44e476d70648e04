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
