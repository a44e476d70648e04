"""Bulk siblings: the cards of a bulk registration one of whose cards is flagged for its use."""

from detector.rigs.bulk_siblings import used_like_a_rig
from detector.testing import START, cdr_batch as calls, gateway_rows, imei, imsi
from tests.detector.rigs.cases import HOUR, registrations, run


def test_a_flagged_card_brings_its_bulk_registration_with_it(pipe):
    cards = [int(imsi(400 + i)) for i in range(10)]
    pipe.register(registrations(cards, "bad5eed" * 3, 898600200000000000, "CH0666", START - 3 * HOUR))
    in_gateway = cards[:4]
    ports = [int(imei(800 + p, tac="86000003")) for p in range(4)]
    rows = gateway_rows(in_gateway, ports, "460-00-500-2", rotate_s=10**9)  # fixed SIM per port
    flags = run(pipe, calls(rows))
    assert set(flags) == {str(c) for c in cards}
    unused = [flags[str(c)] for c in cards[4:]]
    assert {f.kind for f in unused} == {"bulk_registration"}
    assert "10 cards on one ID document with consecutive ICCIDs from channel CH0666" in unused[0].reasons[0]
    [rig] = pipe.rigs.rigs()
    assert rig.sims == {str(c) for c in cards}
    assert "consecutive ICCIDs" in rig.summary()


def test_a_card_flagged_for_its_registration_does_not_bring_its_account(pipe):
    from detector.features.catalog import FEATURES
    from detector.flags import Flag
    ref = pipe.scorer.model.manifest["reference"]
    typical = {f: ref[f]["p50"] for f in FEATURES}

    def flag(**extreme):
        values = dict(typical, **{k: ref[k]["p99"] * 10 + 10 for k in extreme})
        return Flag("460000000000601", "1", 0.7, START, (), features=values)

    scorer = pipe.scorer
    # a busy sales person on a 12-card company account: fan-out and the account itself
    assert not used_like_a_rig(scorer, flag(distinct_callees_1h=1, cards_on_id=1))
    # a card in a gateway: its own use is rig-like twice over
    assert used_like_a_rig(scorer, flag(voice_out_24h=1, out_in_ratio_24h=1, cards_on_id=1))
    assert used_like_a_rig(scorer, Flag("460000000000602", "2", 0.7, START, (), kind="rig"))
