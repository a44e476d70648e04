"""The rules as the rig book runs them: one signature, one tuple, the documented order."""

import re
import typing

import detector.rigs
from detector.flags import Flag
from detector.rigs import RULES
from detector.rigs.tick import Tick
from detector.testing import cdr_batch as calls, gateway_rows, imei, imsi
from tests.detector.rigs.cases import run


def documented_order() -> list[str]:
    """The rule modules in the numbered list of the package's docstring."""
    return re.findall(r"^\d+\. :mod:`~detector\.rigs\.(\w+)`", detector.rigs.__doc__, re.MULTILINE)


def test_the_rules_are_listed_in_the_documented_order():
    assert [m.__name__.rsplit(".", 1)[1] for m in RULES] == documented_order()
    assert len(documented_order()) == 10


def test_every_rule_module_finds_flags_from_a_tick():
    for rule in RULES:
        assert typing.get_type_hints(rule.find) == {"tick": Tick, "return": list[Flag]}, rule.__name__
        assert rule.__doc__, f"{rule.__name__} says what it looks for and why"


def test_the_book_runs_every_rule_once_a_tick_in_that_order(pipe, monkeypatch):
    """Each rule sees the flags of the rules before it (the SIMs they took are not flagged
    again), so the order is part of what is found."""
    ran: list[tuple[str, int]] = []
    for rule in RULES:
        def find(tick, rule=rule, inner=rule.find):
            ran.append((rule.__name__.rsplit(".", 1)[1], len(tick.found)))
            return inner(tick)
        monkeypatch.setattr(rule, "find", find)
    sims = [int(imsi(100 + i)) for i in range(8)]
    ports = [int(imei(900 + p, tac="86000001")) for p in range(4)]
    flags = run(pipe, calls(gateway_rows(sims, ports, "460-00-200-7", hours=1)))
    ticks = len(ran) // len(RULES)
    assert ticks >= 1 and len(ran) == ticks * len(RULES)
    assert [name for name, _ in ran] == documented_order() * ticks
    # a tick's rules read one list of its flags, which only grows from rule to rule
    for k in range(ticks):
        seen = [n for _, n in ran[k * len(RULES):(k + 1) * len(RULES)]]
        assert seen == sorted(seen)
    assert flags
